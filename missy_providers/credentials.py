"""Credentials that change while the process runs, read when a call needs them: a key or token
in a file that something outside keeps fresh (``api_key_file``, a systemd credential, Azure's
``token_file``), and a host's own callback (``credential_provider=``).

Each is a :class:`Renewable`: ``current(budget)`` is the credential to send now, as a Secret;
``renew(rejected, budget)`` is asked once in a call, after the server refused ``rejected`` (a
401), and says whether another credential is now current, which the call then sends once more
(``CallBudget.sends_for``: one send more for such a provider). Both end by the call's
deadline: the lock is waited for, and the fetch (the host's code, or a file read) runs on a
thread of its own and is waited for, within ``budget`` (CallBudget.locked, .wait_for). Nothing
here reveals a credential: the core does, when it frames the request.
"""

from __future__ import annotations

import contextvars
import math
import os
import threading
import time
from collections.abc import Callable, Mapping

from .core.errors import AuthenticationError
from .core.files import private_file_problem, read_private
from .core.headers import header_value_problem
from .core.secret import Secret, get_logger

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    # What a host's callback returns: (bearer token, expiry as a Unix time in seconds, or
    # None when it does not expire); azure-identity's AccessToken(token, expires_on) is one.
    CredentialCallback = Callable[[str], Any]

    from .config import _Problems
    from .core.wire import CallBudget

log = get_logger(__name__)

SYSTEMD_PREFIX = "credentials:"
# A host's token is fetched again this long before the expiry it gave (clocks differ, and a
# request takes time): never sent in its last minute.
EXPIRY_MARGIN_SECONDS = 60.0


def key_file_path(value: str, env: Mapping[str, str]) -> tuple[str, bool, str]:
    """``api_key_file`` as (path, whether it is a systemd credential, where it comes from for
    display): a path (``~`` expanded), or ``credentials:NAME`` for ``$CREDENTIALS_DIRECTORY/
    NAME``, the directory systemd makes for a unit's ``LoadCredential=NAME:...``. ValueError
    (the reason) when it names no file."""
    from .core.env import expand_user

    if not value.startswith(SYSTEMD_PREFIX):
        path = expand_user(value)
        return path, False, f"file {path}"
    name = value[len(SYSTEMD_PREFIX):]
    if not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise ValueError("credentials:NAME takes a credential's name (a file name in "
                         "$CREDENTIALS_DIRECTORY, without '/')")
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        raise ValueError(f"{value} is read from $CREDENTIALS_DIRECTORY, which is not set "
                         f"(systemd sets it for a unit with LoadCredential={name}:...)")
    return os.path.join(directory, name), True, f"systemd credential {name}"


def key_file_problem(path: str, systemd: bool, what: str) -> str | None:
    """Why a key file cannot be used, or None: only its owner may read it (a systemd
    credential as systemd makes it: see core.files.private_file_problem)."""
    return private_file_problem(path, what, group_read=systemd)


def credential_files(ptype: str, good: Mapping[str, Any], env: Mapping[str, str],
                     problems: _Problems, path: tuple[str, ...]) -> dict[str, Any]:
    """A provider's ``api_key_file`` and Azure's ``token_file`` as config values: each a file
    only its owner may read (checked here, read when a call needs it); "source" says where
    the credential comes from."""
    from .core.env import expand_user

    out: dict[str, Any] = {}
    keys = [k for k in ("api_key", "api_keys") if k in good]
    if "api_key_file" in good:
        if keys and ptype != "bedrock":  # (Bedrock's sources are checked in aws_auth)
            problems.add(f"give {' or '.join(keys)} or api_key_file, not both", *path,
                         "api_key_file")
        try:
            file, systemd, source = key_file_path(good["api_key_file"], env)
        except ValueError as exc:
            problems.add(str(exc), *path, "api_key_file")
            return out
        if problem := key_file_problem(file, systemd, "api key file"):
            problems.add(f"{problem} ({file})", *path, "api_key_file")
        out.update(key_file=file, key_file_systemd=systemd, source=source)
    if "token_file" in good:
        others = keys + (["api_key_file"] if "api_key_file" in good else [])
        if others:
            problems.add(f"give {' or '.join(others)} or token_file, not both", *path,
                         "token_file")
        file = expand_user(good["token_file"])
        if problem := key_file_problem(file, False, "token file"):
            problems.add(f"{problem} ({file})", *path, "token_file")
        out.update(token_file=file, source=f"token file {file}")
    return out


class _Fetch:
    """One fetch of a credential, on a thread of its own, so that a call waits for it no
    longer than its deadline. Neither the host's callback nor a file read that blocks can be
    interrupted: it finishes in the background, and the next caller takes its outcome rather
    than starting another (one such thread at most per credential, even for a callback that
    never returns). Runs in a copy of the caller's context (contextvars)."""

    __slots__ = ("done", "value", "error")

    def __init__(self, fetch: Callable[[], Any], name: str) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._run, fetch), name=name,
                         daemon=True).start()

    def _run(self, fetch: Callable[[], Any]) -> None:
        try:
            self.value = fetch()
        except BaseException as exc:  # handed to the caller that takes the outcome
            self.error = exc
        finally:
            self.done.set()

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class Renewable:
    """A credential read when needed: :meth:`current` fetches it when there is none or it is
    stale; :meth:`renew` fetches it again after the server refused ``rejected``. Thread-safe
    (calls that find the same stale credential fetch once), and bounded by each call's
    deadline (``budget``): waiting for another call's fetch, or for a fetch of its own, ends
    with a RequestTimeout naming the deadline's limit as it passes. ``bearer``: sent as
    ``Authorization: Bearer`` (else as the provider sends its key); ``source``: where it
    comes from, for display."""

    bearer = False
    source = ""
    renews = True  # renew() may find another credential (one more send: CallBudget)

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._lock = threading.Lock()
        self._held: Any = None
        self._pending: _Fetch | None = None  # a fetch a caller stopped waiting for

    def available(self) -> bool:
        """Whether a call could get a credential, without getting one (no I/O but a stat)."""
        return True

    def current(self, budget: CallBudget) -> Any:
        """The credential to send now (a Secret; an AWS profile's: AwsCredentials)."""
        with budget.locked(self._lock, self.provider, self._waiting()):
            if self._held is None or self._pending is not None or self._stale():
                late = self._pending is not None
                self._held = self._fetched(budget)
                if late and self._stale():  # a fetch that ended late has expired meanwhile
                    self._held = self._fetched(budget)
            return self._held

    def renew(self, rejected: Any, budget: CallBudget) -> bool:
        """After the server refused ``rejected``: whether another credential is current now."""
        with budget.locked(self._lock, self.provider, self._waiting()):
            if self._pending is None and self._held is not None and \
                    not self._same(self._held, rejected):
                return True  # another call fetched a new one already
            self._held = self._fetched(budget)
            return not self._same(self._held, rejected)

    def _waiting(self) -> str:
        return f"waiting for the credential from {self.source}"

    def _fetched(self, budget: CallBudget) -> Any:
        """(Under the lock.) What :meth:`_fetch` gives, waited for within ``budget``: the
        fetch a caller before stopped waiting for, else a new one."""
        pending = self._pending
        if pending is None:
            pending = self._pending = _Fetch(self._fetch, f"missy-credential-{self.provider}")
        budget.wait_for(pending.done, self.provider, self._waiting())
        self._pending = None
        return pending.outcome()

    def _stale(self) -> bool:
        return False

    def _fetch(self) -> Any:
        raise NotImplementedError

    def _same(self, held: Any, other: Any) -> bool:
        return isinstance(other, Secret) and held.same_value(other)

    def _checked(self, value: Any, what: str) -> Secret:
        """``value`` as a Secret, if it can be sent in a header (never quoted if it cannot)."""
        if not isinstance(value, str) or not value:
            raise AuthenticationError(f"{what} gave no credential ({type(value).__name__})",
                                      provider=self.provider)
        if problem := header_value_problem(value, credential=True):
            raise AuthenticationError(f"{what}: {problem}", provider=self.provider)
        return Secret(value, origin=self.source)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r})"


class WatchedFile(Renewable):
    """A credential in a file something outside keeps fresh: read at the first call, again
    when the file changed (its modification time, size or inode: an atomic rename is a new
    inode), and once after the server refused what was read."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider)
        self.path = path
        self._stamp: tuple[int, int, int] | None = None

    def available(self) -> bool:
        return os.path.isfile(self.path)

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size, info.st_ino

    def _stale(self) -> bool:
        return self._signature() != self._stamp

    def _fetch(self) -> Any:
        stamp = self._signature()
        held = self._read()
        self._stamp = stamp
        return held

    def _read(self) -> Any:
        raise NotImplementedError


class KeyFile(WatchedFile):
    """A key or token alone in a file only its owner may read."""

    def __init__(self, provider: str, path: str, source: str, *, what: str = "api_key_file",
                 systemd: bool = False, bearer: bool = False) -> None:
        super().__init__(provider, path)
        self.source, self.what, self.systemd, self.bearer = source, what, systemd, bearer

    def _read(self) -> Secret:
        try:
            text = read_private(self.path, self.what, group_read=self.systemd)
        except (OSError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
            raise AuthenticationError(f"cannot read {self.what} {self.path}: {reason}",
                                      provider=self.provider) from None
        log.info("%s: read the credential in %s", self.provider, self.path)
        return self._checked(text, f"{self.what} {self.path}")


class HostCallback(Renewable):
    """A host's ``credential_provider``: called with the provider's name when there is no
    token yet or it has expired (or expires within EXPIRY_MARGIN_SECONDS), and once more
    after a 401. Its exception is reported by type only: its text may hold a secret."""

    bearer = True

    def __init__(self, provider: str, callback: CredentialCallback) -> None:
        super().__init__(provider)
        if not callable(callback):
            from .core.errors import UsageError

            raise UsageError(f"credential_provider for {provider!r} must be callable, got "
                             f"{type(callback).__name__}")
        self.callback = callback
        self.source = "credential_provider (the host's code)"
        self._expires: float | None = None

    def _stale(self) -> bool:
        return self._expires is not None and \
            self._expires - EXPIRY_MARGIN_SECONDS <= time.time()

    def _fetch(self) -> Secret:
        what = f"credential_provider for {self.provider!r}"
        try:
            result = self.callback(self.provider)
        except Exception as exc:
            raise AuthenticationError(f"{what} raised {type(exc).__name__}",
                                      provider=self.provider) from None
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise AuthenticationError(f"{what} must return (token, expires_at), got "
                                      f"{type(result).__name__}", provider=self.provider)
        token, expires = result
        if expires is not None and (isinstance(expires, bool) or
                                    not isinstance(expires, (int, float))):
            raise AuthenticationError(f"{what}: expires_at must be a Unix time in seconds or "
                                      f"None, got {type(expires).__name__}",
                                      provider=self.provider)
        held = self._checked(token, what)
        if expires is not None:
            try:
                expires = float(expires)
            except Exception:  # an int past any float, or a number type of the host's own
                expires = math.nan  # refused just below, naming no value
            if not math.isfinite(expires):
                raise AuthenticationError(f"{what}: expires_at must be a finite Unix time in "
                                          "seconds or None (no expiry)", provider=self.provider)
            if expires <= time.time():
                # Sent, it would only be refused (a 401, then one more fetch): never sent.
                raise AuthenticationError(f"{what} returned a token whose expires_at has "
                                          "passed: return a current one",
                                          provider=self.provider)
        self._expires = expires
        return held


def callbacks_for(credential_provider: Any, names: list[str]) -> dict[str, Any]:
    """``credential_provider=`` as {provider name: callback}: one callable for every provider,
    or a mapping by name (a name that is not configured is a UsageError)."""
    from .core.errors import UsageError

    if credential_provider is None:
        return {}
    if isinstance(credential_provider, Mapping):
        unknown = sorted(set(credential_provider) - set(names))
        if unknown:
            raise UsageError(f"credential_provider names {unknown[0]!r}, which is not a "
                             f"configured provider ({', '.join(names) or 'none'})")
        return dict(credential_provider)
    return dict.fromkeys(names, credential_provider)
