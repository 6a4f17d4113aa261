"""Every file and directory the package creates or writes goes through here: files 0600,
directories 0700, never through a symlink; a write that fails is an error, never skipped.

The writers: the audit log and the call log (appended), ``missy config init`` (created,
exclusively unless forced), the Codex ``auth.json`` (replaced atomically) and the TLS key log
(created here, then appended to by OpenSSL, only with ``network.tls_key_log``). A log or a
config may hold hosts, paths and keys, so nobody but the owner may read them, and a symlink
planted at the path cannot redirect the write. Also here: the checks of files a config names.
"""

from __future__ import annotations

import os

from .secret import Secret

PRIVATE_MODE = 0o600
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024


def ca_bundle_problem(path: str) -> str | None:
    """Why ``path`` is not a usable PEM bundle, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_BUNDLE_BYTES)
    except FileNotFoundError:
        return "the CA bundle file does not exist"
    except IsADirectoryError:
        return "the CA bundle is a directory; give a PEM file"
    except OSError as exc:
        return f"cannot read the CA bundle ({type(exc).__name__})"
    if PEM_CERTIFICATE not in head:
        return "the CA bundle holds no PEM certificate ('-----BEGIN CERTIFICATE-----')"
    return None


def writable_file_problem(path: str, what: str) -> str | None:
    """Why ``path`` cannot be appended to (a missing or read-only directory), or None."""
    if os.path.isdir(path):
        return f"the {what} is a directory; give a file path"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"the {what}'s directory {directory} does not exist"
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return f"the {what} is not writable"
    elif not os.access(directory, os.W_OK | os.X_OK):
        return f"the {what}'s directory {directory} is not writable"
    return None




def private_file_problem(path: str, what: str, *, group_read: bool = False) -> str | None:
    """Why ``path`` cannot hold a credential (a TLS client key, an API key file), or None: it
    must be a regular file that only its owner may read (no group or other permission).
    ``group_read``: a systemd credential, which systemd makes 0400 and opens to the unit's
    user with an ACL (``exec-credential.c``), shown as the group's read bit: then only a
    group write bit or any permission for others is refused."""
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"the {what} does not exist"
    except OSError as exc:
        return f"cannot read the {what} ({type(exc).__name__})"
    if not stat.S_ISREG(info.st_mode):
        return f"the {what} is not a regular file"
    if info.st_mode & (0o037 if group_read else 0o077):
        return (f"the {what} is readable or writable by others (mode "
                f"{stat.S_IMODE(info.st_mode):o}); chmod 600 it")
    return None


def read_private(path: str, what: str, *, group_read: bool = False) -> str:
    """The text of a file only its owner may read (see :func:`private_file_problem`), without
    its trailing newline; OSError or ValueError (the reason, never the content) otherwise."""
    problem = private_file_problem(path, what, group_read=group_read)
    if problem:
        raise ValueError(problem)
    with open(path, encoding="utf-8") as f:
        return f.read(65536).rstrip("\r\n")


def _open_private(path: str, flags: int) -> int:
    # O_NOFOLLOW is absent on Windows, where creating a symlink needs privileges anyway.
    return os.open(path, flags | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), PRIVATE_MODE)


def append_private(path: str, text: str) -> None:
    """Append ``text`` in one ``write`` (O_APPEND: lines from many threads or processes do not
    interleave), creating the file 0600 if it is new. An existing file others can read or
    write is tightened to 0600 first; one that is not ours to tighten is a PermissionError
    (the caller fails closed: nothing is written where others can read it)."""
    fd = _open_private(path, os.O_APPEND | os.O_CREAT)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE_MODE)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def ensure_private(path: str) -> None:
    """Create ``path`` 0600 if it does not exist (never through a symlink); an existing file
    is tightened to 0600."""
    fd = _open_private(path, os.O_APPEND | os.O_CREAT)
    try:
        os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)


def discard_stdout() -> None:
    """Point standard output at /dev/null: the reader of a pipe went away (``| head``), and
    what is still buffered must not fail again, as a traceback, when Python exits."""
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def make_private_dir(path: str) -> None:
    """Create directory ``path`` and each missing parent 0700 (``os.makedirs`` gives its mode
    to the last one only: the parents would follow the umask); existing ones are left as
    they are."""
    missing: list[str] = []
    head = os.path.abspath(path)
    while not os.path.isdir(head):
        missing.append(head)
        head = os.path.dirname(head)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:  # made meanwhile by another process: its mode is its own
            if not os.path.isdir(directory):
                raise


def create_private(path: str, text: str, *, overwrite: bool = False) -> None:
    """Write a new file 0600; an existing one is an error (FileExistsError) unless
    ``overwrite``, and then it is truncated in place, its mode tightened to 0600."""
    fd = _open_private(path, os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL))
    try:
        os.fchmod(fd, PRIVATE_MODE)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def write_json_private(path: str, data: object) -> None:
    """Replace the JSON file ``path`` with ``data`` (see :func:`replace_private`), its
    directory made 0700 if missing. Secrets in ``data`` are revealed here, into the file (a
    refreshed login token written back for the tool that owns it)."""
    import json

    def reveal(value: object) -> str:
        if type(value) is Secret:  # exactly (the class is final)
            return value.reveal()
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    make_private_dir(os.path.dirname(os.path.abspath(path)))
    replace_private(path, json.dumps(data, indent=2, default=reveal))


def replace_private(path: str, text: str) -> None:
    """Replace ``path`` atomically (a temp file beside it, then rename) with mode 0600: a
    reader sees the old file or the new one, never half of either."""
    import tempfile  # only when a file is replaced (a Codex token refresh)

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".missy-", dir=directory)
    try:
        os.fchmod(fd, PRIVATE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class JsonlAppender:
    """A JSON Lines log (the audit log, the call log): one record a line, each line one
    ``O_APPEND`` write, so lines from many threads never interleave. A write that fails is a
    ConfigError naming the key, and the caller's action does not go ahead (fail closed)."""

    def __init__(self, path: str, key: tuple[str, ...]) -> None:
        self.path, self.key = path, key

    def __call__(self, record: dict[str, object]) -> None:
        import json

        from .errors import ConfigError

        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        try:
            append_private(self.path, line)
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path} ({type(exc).__name__}); nothing was "
                              "sent", self.key) from None

    def __repr__(self) -> str:
        return f"JsonlAppender({self.path!r})"
