"""The trusted core, derived from the code: which modules hold which power, by reading the AST.

A module holds a power when it can open sockets or TLS, reveal a secret, read the environment,
create or write files, import dynamically, decide egress, or count a call's sends and deadline.
The core is every module that holds one, plus every module of the package they import (so the
core can be audited without reading anything else). Names are followed through aliases
(``import os as o``, ``from os import environ as e``), through strings built of constants
(``"_val" + "ue"``, ``"{0._value}".format``) and through the stdlib's side doors to the same
powers (``operator.attrgetter``, ``sys.modules[...]``, ``io.FileIO``, logging's file and socket
handlers, ``/proc/``); a name computed at run time (``getattr(x, name)``) is itself flagged
outside the core. What it catches is names, aliases and the side doors it knows: a reviewer
reading a diff outside the core still looks for deliberate obfuscation (docs/AUDIT.md
question 10).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "missy_providers"
MODULES = sorted(PACKAGE.rglob("*.py"))
SOURCES = [*MODULES, ROOT / "missy.py"]

NETWORK_MODULES = frozenset({"socket", "ssl", "select", "selectors", "http.client",
                             "http.server", "urllib.request", "ftplib", "smtplib", "poplib",
                             "imaplib", "nntplib", "telnetlib", "socketserver", "xmlrpc",
                             "multiprocessing", "webbrowser"})
# asyncio may be imported (the facade runs calls on threads), never asked to connect.
SOCKET_METHODS = frozenset({"create_connection", "open_connection", "start_server",
                            "create_server", "create_datagram_endpoint", "sock_connect",
                            "create_unix_connection", "open_unix_connection",
                            "create_unix_server", "start_tls", "socketpair", "fromfd"})
ENV_NAMES = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv",
                       "expanduser", "expandvars"})
# A Secret's plaintext, and every core function that returns it (a core function that touches
# the plaintext and returns something else is in REVEALS_WITHOUT_RETURNING, with what it
# returns: test_every_core_function_that_touches_plaintext_is_classified).
SECRET_NAMES = frozenset({"reveal", "_value", "render", "_forms", "_forms_cache", "rendered",
                          "encode_body", "frame_request", "_signing_key"})
REVEALS_WITHOUT_RETURNING = {
    "core/files.py:write_json_private": "writes it to a 0600 file; returns None",
    "core/headers.py:header_value_problem": "returns why a value cannot be a header value "
                                            "(its length or the position of a bad character)",
    "core/http.py:PolicyHTTPClient.request": "sends it; returns the server's Response",
    "core/http.py:_signed": "returns the SigV4 signature headers, not the secret key",
    "core/secret.py:Secret.__init__": "stores it",
    "core/secret.py:Secret.same_value": "returns a bool (a constant-time comparison)",
    "core/secret.py:Secret.jwt_claims": "returns a JWT's decoded claims (expiry, account), "
                                        "never its signature",
    "core/secret.py:scrub": "returns the text with every secret replaced by [REDACTED]",
    "core/secret.py:_holds": "returns a bool",
    "core/sigv4.py:sign": "returns the SigV4 signature headers, not the secret key",
}
# Names that create, change or remove files whatever object they are called on ...
WRITE_CALLS = frozenset({"makedirs", "mkdir", "chmod", "fchmod", "lchmod", "chown",
                         "fchown", "rename", "renames", "removedirs", "unlink", "rmdir",
                         "symlink", "symlink_to", "hardlink_to", "write_text", "write_bytes",
                         "touch", "mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile",
                         "SpooledTemporaryFile", "TemporaryDirectory", "fdopen", "copyfile",
                         "copytree", "rmtree", "mkfifo", "mknod", "utime", "keylog_filename",
                         "make_archive", "unpack_archive"})
# ... and names that do so only on a module (``str.replace``, ``list.remove`` are harmless).
OS_ONLY_WRITE = frozenset({"open", "write", "replace", "pwrite", "writev", "remove", "copy",
                           "copy2", "move", "link", "truncate", "ftruncate"})
IMPORT_MODULES = frozenset({"importlib", "runpy", "pkgutil", "zipimport", "imp"})
IMPORT_NAMES = frozenset({"__import__", "import_module", "spec_from_file_location",
                          "module_from_spec", "exec_module", "load_module", "find_spec",
                          "find_module", "meta_path", "path_hooks"})
# Counting a call's sends and time: only the core counts, and a budget is made only by the
# core's own formula (CallBudget.for_call, for_chain), never with a number of one's own.
BUDGET_COUNTERS = frozenset({"take_send", "sends", "max_sends", "deadline", "refreshes"})
REFLECTION = frozenset({"getattr", "setattr", "delattr", "__getattribute__", "vars",
                        "attrgetter", "methodcaller", "__setattr__", "__delattr__"})
# Stdlib classes that open a file or a socket on their own.
FILE_CLASSES = frozenset({"FileIO", "FileHandler", "RotatingFileHandler",
                          "TimedRotatingFileHandler", "WatchedFileHandler"})
SOCKET_CLASSES = frozenset({"SocketHandler", "DatagramHandler", "SysLogHandler",
                            "HTTPHandler", "SMTPHandler"})
# Attributes whose assignment changes where a client may send.
EGRESS_ATTRIBUTES = frozenset({"policy", "_policy"})
WRITE_MODES = set("wax+")
FILE_MODULES = frozenset({"sqlite3", "dbm", "zipfile", "tarfile", "mailbox"})


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


class _Aliases(ast.NodeVisitor):
    """Local names bound to a module (``import os as o``) or to a name from one (``from os
    import environ as e``)."""

    def __init__(self) -> None:
        self.modules: dict[str, str] = {}  # local name -> module
        self.names: dict[str, tuple[str, str]] = {}  # local name -> (module, name)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.modules[alias.asname or alias.name.split(".")[0]] = \
                alias.name if alias.asname else alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            for alias in node.names:
                self.names[alias.asname or alias.name] = (node.module, alias.name)


def imported_modules(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    out: list[tuple[str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, node))
            out += [(f"{node.module}.{a.name}", node) for a in node.names]
    return out


def _mode(node: ast.Call, index: int) -> str:
    arg = node.args[index] if len(node.args) > index else next(
        (k.value for k in node.keywords if k.arg == "mode"), None)
    if arg is None:
        return "r"
    return str(arg.value) if isinstance(arg, ast.Constant) else "w"  # computed: assume writes


def folded(node: ast.AST) -> str | None:
    """The string an expression of constants spells (``"_val" + "ue"``, ``f"{'a'}b"``,
    ``"".join(["a", "b"])``), or None."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = folded(node.left), folded(node.right)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.JoinedStr):
        parts = [folded(v.value if isinstance(v, ast.FormattedValue) else v)
                 for v in node.values]
        return "".join(p for p in parts if p is not None) if None not in parts else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            node.func.attr == "join" and len(node.args) == 1 and \
            isinstance(node.args[0], (ast.List, ast.Tuple)):
        glue = folded(node.func.value)
        parts = [folded(e) for e in node.args[0].elts]
        return glue.join(p for p in parts if p is not None) \
            if glue is not None and None not in parts else None
    return None


def format_fields(text: str) -> list[str]:
    """The attribute and key names a format string reaches (``"{0._value}"`` → ``_value``)."""
    import string

    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f]
    except ValueError:
        return []
    return [part for field in fields for part in re.split(r"[.\[\]]", field) if part]


def powers(path: Path) -> dict[str, list[int]]:
    """Each power ``path`` holds, with the lines that show it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = _Aliases()
    aliases.visit(tree)
    found: dict[str, list[int]] = {}

    def flag(power: str, node: ast.AST) -> None:
        found.setdefault(power, []).append(getattr(node, "lineno", 0))

    def module_of(node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return aliases.modules.get(node.id, "")
        if isinstance(node, ast.Attribute):  # os.path
            base = module_of(node.value)
            return f"{base}.{node.attr}" if base else ""
        return ""

    for node in ast.walk(tree):  # from .core.headers import rendered: a plaintext door
        if isinstance(node, ast.ImportFrom) and \
                any(alias.name in SECRET_NAMES for alias in node.names):
            flag("secret", node)
    for name, node in imported_modules(tree):
        top = name.split(".")[0]
        if name in NETWORK_MODULES or top in ("socket", "ssl", "select", "selectors") or \
                name.startswith(("http.client", "urllib.request", "xmlrpc", "urllib.robotparser",
                                 "xml.sax", "xml.dom", "wsgiref")):  # URLs, or a listener
            flag("network", node)
        if top in FILE_MODULES:
            flag("files", node)  # they create and write the files they are given
        if name.startswith(("logging.handlers", "logging.config")):
            flag("network", node)  # socket handlers; dictConfig builds any handler
            flag("files", node)
        if top in IMPORT_MODULES and not name.startswith("importlib.resources"):
            flag("dynamic import", node)
        leaf = name.rpartition(".")[2]
        if leaf in ENV_NAMES and name.startswith(("os", "posix")):
            flag("environment", node)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Name)):
            attr = node.attr if isinstance(node, ast.Attribute) else node.id
            if attr in ENV_NAMES:
                flag("environment", node)
            if attr in SECRET_NAMES and isinstance(node, ast.Attribute):
                flag("secret", node)
            if attr in IMPORT_NAMES:
                flag("dynamic import", node)
            if attr in SOCKET_METHODS and isinstance(node, ast.Attribute):
                flag("network", node)
            if attr in WRITE_CALLS and isinstance(node, ast.Attribute):
                flag("files", node)
            if attr in BUDGET_COUNTERS and isinstance(node, ast.Attribute) and \
                    (attr == "take_send" or isinstance(node.ctx, (ast.Store, ast.Del))):
                flag("budget", node)
            if attr == "Decision":
                flag("egress", node)
        spelled = folded(node)
        if spelled is not None:
            # getattr(x, "reveal"), attrgetter("_val" + "ue"), "{0._value}".format(x),
            # sys.modules["importlib"]: the name, spelled as a string, is the same power.
            for name in {spelled, *format_fields(spelled)}:
                for names, power in ((SECRET_NAMES, "secret"), (IMPORT_NAMES, "dynamic import"),
                                     (IMPORT_MODULES, "dynamic import"),
                                     (ENV_NAMES, "environment")):
                    if name in names:
                        flag(power, node)
            if "/proc/" in spelled:  # /proc/self/environ is the environment, and more
                flag("environment", node)
        if isinstance(node, ast.Attribute) and node.attr in EGRESS_ATTRIBUTES and \
                isinstance(node.ctx, (ast.Store, ast.Del)):
            flag("egress", node)
        if isinstance(node, ast.Attribute) and node.attr == "__dict__":
            flag("reflection", node)  # x.__dict__[name]: every attribute by name
        if isinstance(node, ast.Attribute) and node.attr == "modules" and \
                module_of(node.value) == "sys":
            flag("dynamic import", node)  # sys.modules[...] reaches any loaded module
        if isinstance(node, (ast.Attribute, ast.Name)):
            attr = node.attr if isinstance(node, ast.Attribute) else node.id
            imported = aliases.names.get(attr, ("", ""))[1] if isinstance(node, ast.Name) \
                else attr
            if imported in FILE_CLASSES:
                flag("files", node)
            if imported in SOCKET_CLASSES:
                flag("network", node)
            if isinstance(node, ast.Name) and aliases.names.get(node.id) == ("time", "sleep"):
                flag("budget", node)
        if isinstance(node, ast.Attribute) and node.attr in OS_ONLY_WRITE and \
                module_of(node.value) in ("os", "posix", "shutil", "io"):
            if node.attr != "open" or module_of(node.value) in ("os", "posix"):
                flag("files", node)
        if isinstance(node, ast.Name) and node.id in aliases.names:
            module, name = aliases.names[node.id]
            if module in ("os", "posix", "shutil", "tempfile") and \
                    name in WRITE_CALLS | OS_ONLY_WRITE:
                flag("files", node)
        if isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname == "open" and (isinstance(func, ast.Name) or
                                    module_of(func.value) in ("io", "builtins")):
                if WRITE_MODES & set(_mode(node, 1)):
                    flag("files", node)
            elif fname == "open" and isinstance(func, ast.Attribute):  # Path(...).open("w")
                if WRITE_MODES & set(_mode(node, 0)):
                    flag("files", node)
            name_arg = 0 if fname in ("attrgetter", "methodcaller") else 1
            if fname in REFLECTION and len(node.args) > name_arg and \
                    folded(node.args[name_arg]) is None:
                flag("reflection", node)
            if fname == "vars" or (fname in REFLECTION and not node.args):
                flag("reflection", node)  # vars(x)[name]: every attribute by name
            if fname in ("setattr", "__setattr__", "delattr", "__delattr__") and \
                    len(node.args) > 1:
                # setattr(budget, "max_sends", n) is the store it spells.
                if folded(node.args[1]) in BUDGET_COUNTERS:
                    flag("budget", node)
                if folded(node.args[1]) in EGRESS_ATTRIBUTES:
                    flag("egress", node)
            if fname == "sleep" and isinstance(func, ast.Attribute) and \
                    module_of(func.value) == "time":
                flag("budget", node)
            if fname == "CallBudget":
                flag("budget", node)
            if fname == "basicConfig" and any(k.arg in ("filename", "handlers", None)
                                              for k in node.keywords):
                flag("files", node)  # logging.basicConfig(filename=...) opens a file
    return found


# Running code or a process: no module of the package may (the core included). Modules that
# do nothing else, and the names that do it whatever module they come from.
EXEC_MODULES = frozenset({"pickle", "marshal", "subprocess", "ctypes", "shelve", "pty", "code",
                          "codeop", "timeit", "builtins", "_posixsubprocess", "cffi", "pdb",
                          "bdb", "cProfile", "profile", "pydoc", "trace", "doctest", "runpy",
                          "multiprocessing", "idlelib"})
EXEC_NAMES = frozenset({"eval", "exec", "compile", "__import__", "system", "popen", "fork",
                        "forkpty", "execl", "execle", "execlp", "execlpe", "execv", "execve",
                        "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe",
                        "spawnv", "spawnve", "spawnvp", "spawnvpe", "posix_spawn",
                        "posix_spawnp", "ProcessPoolExecutor", "startfile"})
# Of those, the builtins a bare name reaches (re.compile and a method named exec are fine).
EXEC_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "__builtins__"})
# Methods that start a process whatever object they are called on (an event loop's).
EXEC_METHODS = frozenset({"create_subprocess_shell", "create_subprocess_exec",
                          "subprocess_exec", "subprocess_shell"})


def executes(path: Path) -> list[int]:
    """The lines where ``path`` could run code or start a process: an import of a module for
    it, a name for it taken from a module (``os.system``, ``from os import execv as e``,
    ``import os as o; o.popen``), a bare builtin call, or such a name spelled as a string for
    ``getattr``/``attrgetter``/``methodcaller``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = _Aliases()
    aliases.visit(tree)
    found: list[int] = []
    for name, node in imported_modules(tree):
        if name.split(".")[0] in EXEC_MODULES or name.rpartition(".")[2] in EXEC_NAMES:
            found.append(node.lineno)
    def root(node: ast.expr) -> str:
        while isinstance(node, ast.Attribute):
            node = node.value
        return node.id if isinstance(node, ast.Name) else ""

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in EXEC_NAMES - {"compile"} and \
                root(node.value) in aliases.modules:
            found.append(node.lineno)  # os.system, o.execv, os.path.os.system
        elif isinstance(node, ast.Attribute) and node.attr in EXEC_METHODS:
            found.append(node.lineno)  # loop.subprocess_exec, asyncio.create_subprocess_shell
        elif isinstance(node, ast.Name) and node.id in EXEC_BUILTINS:
            found.append(node.lineno)  # eval(...), e = eval, map(exec, ...)
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            index = 0 if fname in ("attrgetter", "methodcaller") else 1
            if fname in REFLECTION and len(node.args) > index and \
                    folded(node.args[index]) in EXEC_NAMES:
                found.append(node.lineno)
    return sorted(found)


def package_imports(path: Path) -> set[Path]:
    """The package's own modules that ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[Path] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            parts = node.module.split(".") if node.module else []
            target = base.joinpath(*parts)
            candidates = [target.with_suffix(".py"), target / "__init__.py"]
            if not node.module:
                candidates = [base / f"{a.name}.py" for a in node.names]
            else:
                candidates += [target / f"{a.name}.py" for a in node.names]
            out |= {c for c in candidates if c.exists()}
    return out


def derived_core() -> dict[Path, dict[str, list[int]]]:
    """The core: modules that hold a power, closed under the package imports they make.
    Each with its powers (empty for a module in it only because the core imports it)."""
    held = {m: p for m in MODULES if (p := powers(m))}
    core = dict(held)
    todo = list(held)
    while todo:
        for imported in package_imports(todo.pop()):
            if imported not in core:
                core[imported] = held.get(imported, {})
                todo.append(imported)
    return core


def functions_touching_plaintext() -> dict[str, set[str]]:
    """Every core function (``core/x.py:Class.name``) whose body names a Secret's plaintext
    (a SECRET_NAMES attribute, import or spelled string), with the names it uses."""
    found: dict[str, set[str]] = {}

    def visit(node: ast.AST, module: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, module, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = set()
                for sub in ast.walk(child):
                    if isinstance(sub, ast.Attribute) and sub.attr in SECRET_NAMES:
                        names.add(sub.attr)
                    elif isinstance(sub, ast.Name) and sub.id in SECRET_NAMES:
                        names.add(sub.id)
                    spelled = folded(sub)
                    if spelled is not None:
                        names |= {spelled, *format_fields(spelled)} & SECRET_NAMES
                if names:
                    found[f"{module}:{prefix}{child.name}"] = names

    for module in derived_core():
        visit(ast.parse(module.read_text(encoding="utf-8")), str(module.relative_to(PACKAGE)),
              "")
    return found


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def fix_audit_table(audit: Path) -> None:
    """Rewrite docs/AUDIT.md question 10's line counts and totals from the code (a module
    that joined or left the core is for a person to add or remove, with its why)."""
    text = audit.read_text(encoding="utf-8")
    core = derived_core()

    def row(match: re.Match[str]) -> str:
        path = PACKAGE / match.group(1)
        return f"| `{match.group(1)}` | {line_count(path)} |" if path.exists() else match.group(0)

    text = re.sub(r"^\| `(core/[\w/]+\.py)` \| \d+(?:,\d{3})* \|", row, text, flags=re.M)
    total = sum(line_count(m) for m in core)
    runtime = sum(line_count(s) for s in SOURCES)
    text = re.sub(r"The core: \*\*\d+ files, [\d,]+ lines\*\*, of a package of [\d,]+ runtime",
                  f"The core: **{len(core)} files, {total:,} lines**, of a package of "
                  f"{runtime:,} runtime", text)
    audit.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    import sys

    if "--fix" in sys.argv:
        fix_audit_table(ROOT / "docs" / "AUDIT.md")
    else:  # the core as derived: what docs/AUDIT.md question 10 must list
        derived = derived_core()
        for module, held in sorted(derived.items()):
            print(f"{rel(module):40} {line_count(module):5}  {', '.join(sorted(held)) or '-'}")
        print(f"{len(derived)} files, {sum(map(line_count, derived)):,} lines of "
              f"{sum(map(line_count, SOURCES)):,} runtime")
