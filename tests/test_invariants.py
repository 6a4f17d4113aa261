"""The invariants an auditor relies on (docs/AUDIT.md), checked rather than promised."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "missy_providers"
MODULES = sorted(PACKAGE.rglob("*.py"))
SOURCES = [*MODULES, ROOT / "missy.py"]
NETWORK_MODULES = {"socket", "ssl", "http.client", "urllib.request"}
FORBIDDEN_MODULES = {"pickle", "marshal", "subprocess", "ctypes", "shelve"}
FORBIDDEN_CALLS = {"eval", "exec", "__import__", "compile"}
FORBIDDEN_ATTRIBUTES = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execve"),
                        ("os", "spawnv"), ("os", "fork")}
# What module-level code may call when a module is imported: constructors of constants.
IMPORT_TIME_CALLS = {"frozenset", "set", "dict", "tuple", "range", "map", "chr", "namedtuple",
                     "getLogger", "Timeouts", "NullHandler", "addHandler", "dataclass", "field",
                     "NetworkPolicy", "compile", "WeakSet",
                     "JSONEncoder", "count", "Trace", "ContextVar", "get_logger",
                     "ProcessEnvironment",
                     "object"}  # re.compile (the builtin is forbidden above)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def imported_modules(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    out: list[tuple[str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, node))
    return out


def parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def test_every_module_is_checked() -> None:
    assert len(MODULES) >= 15
    assert ROOT / "missy_providers" / "core" / "http.py" in MODULES


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_only_http_py_imports_network_modules(path: Path) -> None:
    tree = ast.parse(path.read_text())
    network = {name for name, _ in imported_modules(tree)
               if name in NETWORK_MODULES or name.split(".")[0] in ("socket", "ssl")}
    if path == PACKAGE / "core" / "http.py":
        assert network == {"socket", "ssl"}
    else:
        assert network == set(), f"{rel(path)} imports {network}"


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_no_code_execution_or_process_spawning(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad_imports = {n for n, _ in imported_modules(tree) if n.split(".")[0] in FORBIDDEN_MODULES}
    assert bad_imports == set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{rel(path)}:{node.lineno}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) not in FORBIDDEN_ATTRIBUTES, \
                f"{rel(path)}:{node.lineno}"


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_only_third_party_import_is_yaml_inside_the_loader(path: Path) -> None:
    tree = ast.parse(path.read_text())
    up = parents(tree)
    for name, node in imported_modules(tree):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in ("missy_providers", "missy"):
            continue
        assert top == "yaml", f"{rel(path)} imports third-party {name!r}"
        assert path == PACKAGE / "config.py"
        scope = up[node]
        while not isinstance(scope, (ast.FunctionDef, ast.Module)):
            scope = up[scope]
        assert isinstance(scope, ast.FunctionDef) and scope.name == "read_config_file"


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_module_level_code_does_no_io(path: Path) -> None:
    """At import, a module may only import, define, and build constants."""
    tree = ast.parse(path.read_text())
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                             ast.ClassDef)):
            continue
        if isinstance(stmt, ast.If):  # `if TYPE_CHECKING:` blocks: never run
            assert ast.unparse(stmt.test) == "TYPE_CHECKING", f"{rel(path)}:{stmt.lineno}"
            continue
        # A lambda's body runs when it is called, not at import.
        inside_lambdas = {id(n) for lam in ast.walk(stmt) if isinstance(lam, ast.Lambda)
                          for n in ast.walk(lam.body)}
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and id(node) not in inside_lambdas:
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                assert name in IMPORT_TIME_CALLS, \
                    f"{rel(path)}:{node.lineno} calls {ast.unparse(func)} at import"


def test_import_opens_no_socket_and_reads_no_file(tmp_path: Path) -> None:
    """Import the package and every module under an audit hook: the only files opened are the
    modules' own code; no socket is created, nothing is spawned."""
    script = f"""
import sys
events = []
def hook(event, args):
    if event == "open" or event.startswith(("socket.", "subprocess.", "os.system", "os.exec")):
        events.append((event, str(args[0]) if args else ""))
sys.addaudithook(hook)
sys.path.insert(0, {str(ROOT)!r})
import missy_providers
import missy_providers.config, missy_providers.core.errors, missy_providers.core.http
import missy_providers.limits, missy_providers.core.policy, missy_providers.registry
import missy_providers.retry, missy_providers.router, missy_providers.streams
import missy_providers.types, missy_providers.providers.anthropic
import missy_providers.providers.codex, missy_providers.providers.ollama
import missy_providers.providers.openai
import json
print(json.dumps(events))
"""
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout)
    code_suffixes = (".py", ".pyc", ".so", ".zip")
    other = [e for e in events if not (e[0] == "open" and e[1].endswith(code_suffixes))]
    assert other == []
    assert not any(e[0].startswith("socket.") for e in events)


def test_import_is_lazy() -> None:
    """`import missy_providers` loads neither yaml, ssl, http.client nor any provider."""
    code = ("import sys; import missy_providers; "
            "print(sorted(m for m in ('yaml', 'ssl', 'http.client', 'socket', "
            "'missy_providers.registry', 'missy_providers.providers.base') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stderr


def test_public_names_resolve() -> None:
    import missy_providers

    for name in missy_providers.__all__:
        assert getattr(missy_providers, name) is not None
    with pytest.raises(AttributeError):
        _ = missy_providers.NoSuchThing  # type: ignore[attr-defined]


def test_vendored_copy_runs_with_the_standard_library_only(tmp_path: Path) -> None:
    """The README's vendoring recipe: copy two paths, run isolated, without site-packages."""
    shutil.copy(ROOT / "missy.py", tmp_path / "missy.py")
    shutil.copytree(PACKAGE, tmp_path / "missy_providers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "cfg.json").write_text(json.dumps({
        "providers": {"ollama": {"model": "llama3.2"},
                      "claude": {"name": "anthropic", "model": "claude-sonnet-4-6",
                                 "api_key": "$VENDORED_KEY"}},
        "network": {"allowed_hosts": ["api.example.com"]}}))
    run = [sys.executable, "-I", "-S", "missy.py"]
    env = {"VENDORED_KEY": "sk-vendored", "PATH": "/usr/bin:/bin"}
    listing = subprocess.run([*run, "providers", "--config", "cfg.json"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "ollama (default)" in listing.stdout and "env VENDORED_KEY" in listing.stdout
    assert "sk-vendored" not in listing.stdout
    policy = subprocess.run([*run, "policy", "check", "https://api.example.com/x",
                             "--config", "cfg.json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert policy.returncode == 0 and policy.stdout.startswith("allowed")
    no_yaml = subprocess.run([sys.executable, "-I", "-S", "-c", "import yaml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert no_yaml.returncode != 0  # really no third-party packages in that interpreter


# --- invariants a rename cannot fool (docs/AUDIT.md, question 1) ----------------------------

# The only dynamic imports: fixed tables of the package's own modules.
DYNAMIC_IMPORTS = {("missy_providers/__init__.py", "__getattr__"),
                   ("missy_providers/registry.py", "provider_class")}


def enclosing_function(node: ast.AST, up: dict[ast.AST, ast.AST]) -> str:
    while node in up:
        node = up[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node.name
    return "<module>"


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_every_dynamic_import_is_declared(path: Path) -> None:
    """importlib.import_module / __import__ / importlib.util: only in the two fixed tables,
    never with a name that could be socket, ssl or http.client."""
    tree = ast.parse(path.read_text())
    up = parents(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__", "spec_from_file_location",
                    "module_from_spec", "find_spec"):
            where = (rel(path), enclosing_function(node, up))
            assert where in DYNAMIC_IMPORTS, f"{rel(path)}:{node.lineno}: undeclared {name}"
            if node.args and isinstance(node.args[0], ast.Constant):
                assert str(node.args[0].value).lstrip(".").split(".")[0] not in \
                    ("socket", "ssl", "http", "urllib")


def test_dynamic_import_tables_name_only_our_modules() -> None:
    import missy_providers
    from missy_providers.registry import PROVIDER_CLASSES

    assert all(v.startswith("missy_providers.providers.") for v in PROVIDER_CLASSES.values())
    lazy = missy_providers._LAZY
    assert all(not m.startswith(("socket", "ssl", "http.client")) for m in lazy.values())


WRITE_MODES = set("wax+")


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_only_files_py_writes_files(path: Path) -> None:
    """open() for writing, os.open, renames, removals and temp files: only in files.py."""
    tree = ast.parse(path.read_text())
    writer = path == PACKAGE / "core" / "files.py"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value.id if isinstance(func, ast.Attribute) and \
            isinstance(func.value, ast.Name) else ""
        if name == "open" and owner in ("", "io", "builtins"):
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            text = mode.value if isinstance(mode, ast.Constant) else "r"
            if mode is not None and not isinstance(mode, ast.Constant):
                text = "w"  # a computed mode: assume the worst
            assert writer or not WRITE_MODES & set(str(text)), \
                f"{rel(path)}:{node.lineno} opens for writing"
        if (owner, name) in {("os", "open"), ("os", "replace"), ("os", "rename"),
                             ("os", "remove"), ("os", "unlink"), ("os", "write"),
                             ("tempfile", "mkstemp"), ("shutil", "move")}:
            assert writer, f"{rel(path)}:{node.lineno} calls {owner}.{name}"
        if name in ("write_text", "write_bytes"):
            assert writer, f"{rel(path)}:{node.lineno} calls {name}"


MUTATORS = {"append", "extend", "update", "add", "pop", "clear", "setdefault", "insert",
            "remove", "discard", "popitem", "__setitem__"}


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_no_module_level_mutable_state(path: Path) -> None:
    """No `global` statement, and no module-level name bound to a dict, list or set is ever
    changed: every decision is made from values passed in (policy, config, client)."""
    tree = ast.parse(path.read_text())
    mutable = set()
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else \
            [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        value = getattr(stmt, "value", None)
        if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp,
                              ast.SetComp)):
            mutable |= {t.id for t in targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        assert not isinstance(node, ast.Global), f"{rel(path)}:{node.lineno} uses global"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and node.func.value.id in mutable:
            assert node.func.attr not in MUTATORS, \
                f"{rel(path)}:{node.lineno} changes module-level {node.func.value.id}"
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            for target in getattr(node, "targets", None) or [getattr(node, "target", None)]:
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                    assert target.value.id not in mutable, \
                        f"{rel(path)}:{node.lineno} changes module-level {target.value.id}"
