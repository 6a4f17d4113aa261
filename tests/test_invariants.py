"""The invariants an auditor relies on (docs/AUDIT.md), checked rather than promised."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from core_audit import MODULES, PACKAGE, ROOT, SOURCES, executes, imported_modules, rel

# What module-level code may call when a module is imported: constructors of constants.
IMPORT_TIME_CALLS = {"frozenset", "set", "dict", "tuple", "range", "map", "chr", "namedtuple",
                     "getLogger", "Timeouts", "NullHandler", "addHandler", "dataclass", "field",
                     "NetworkPolicy", "compile", "WeakSet",
                     "JSONEncoder", "JSONDecoder", "count", "Trace", "ContextVar", "get_logger",
                     "MappingProxyType", "ProcessEnvironment", "RoundTrip",
                     "object"}  # re.compile (the builtin is forbidden above)


def parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_no_code_execution_or_process_spawning(path: Path) -> None:
    assert executes(path) == [], rel(path)  # core_audit.executes: modules, names, aliases


@pytest.mark.parametrize("code", [
    "import os\nos.execlp('sh', 'sh')", "import os\nos.posix_spawn('/bin/sh', ['sh'], {})",
    "import os\nos.spawnl(os.P_WAIT, '/bin/sh', 'sh')", "import os as o\no.system('id')",
    "from os import system\nsystem('id')", "from os import popen as p\np('id')",
    "import builtins\nbuiltins.eval('1')", "def f(b):\n    getattr(b, 'ev' + 'al')('1')",
    "import operator\nf = operator.methodcaller('sys' + 'tem', 'id')",
    "import timeit\ntimeit.timeit('1', number=1)", "import code", "import pty\npty.spawn('sh')",
    "from concurrent.futures import ProcessPoolExecutor", "import os\nos.fork()",
    "eval('1')", "exec('x = 1')", "compile('1', 'f', 'eval')", "__import__('os')",
    "import subprocess", "import pickle",
    "import asyncio\nasyncio.create_subprocess_shell('id')",
    "def f(loop):\n    loop.subprocess_exec(object, 'id')", "import os\nos.path.os.system('id')",
    "e = eval", "x = list(map(exec, ['1']))", "import functools\nf = functools.partial(eval)",
    "x = __builtins__['eval']", "import pdb\npdb.run('1')", "import cProfile",
    "import pydoc\npydoc.pipepager('x', 'sh')", "import runpy", "import multiprocessing",
])
def test_a_disguised_way_to_run_code_is_still_found(tmp_path: Path, code: str) -> None:
    module = tmp_path / "m.py"
    module.write_text(code + "\n")
    assert executes(module) != []


def test_running_code_is_told_from_its_harmless_namesakes(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import re\nPATTERN = re.compile('x')\nrole = 'system'\n"
                      "def f(cursor):\n    cursor.exec()\n")
    assert executes(module) == []


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_only_third_party_import_is_yaml_inside_the_loader(path: Path) -> None:
    tree = ast.parse(path.read_text())
    up = parents(tree)
    for name, node in imported_modules(tree):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in ("missy_providers", "missy", "__main__"):
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
        if isinstance(stmt, ast.If) and path.name == "__main__.py" and \
                ast.unparse(stmt) == "if __name__ == '__main__':\n    sys.exit(main())":
            continue  # `python -m missy_providers` runs the CLI; importing the module does not
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
    # Every error a public call can raise can be caught by its public name.
    from missy_providers.core import errors

    raised = {name for name, value in vars(errors).items()
              if isinstance(value, type) and issubclass(value, errors.MissyError)}
    assert raised <= set(missy_providers.__all__)


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


MUTATORS = {"append", "extend", "update", "add", "pop", "clear", "setdefault", "insert",
            "remove", "discard", "popitem", "__setitem__"}
STATE_CALLS = {"ContextVar", "addHandler", "setLoggerClass", "setLogRecordFactory",
               "basicConfig", "addaudithook", "setrecursionlimit", "set_int_max_str_digits",
               "Lock", "RLock"}  # a lock shared by every caller in the process
AUDIT = (ROOT / "docs" / "AUDIT.md").read_text(encoding="utf-8")


def process_wide_state(path: Path, root: Path = PACKAGE) -> set[str]:
    """What a module keeps or changes for the whole process: module-level or class-level
    containers that are changed, module-level calls that install state (a ContextVar, a log
    handler), and any use of ``globals()``. A ``global`` statement fails outright."""
    tree = ast.parse(path.read_text())
    name = str(path.relative_to(root))
    mutable: dict[str, str] = {}  # name (or Class.attr) -> how it is shown
    containers = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp,
                  ast.Call)
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else \
            [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        if isinstance(getattr(stmt, "value", None), containers[:-1]):
            mutable |= {t.id: t.id for t in targets if isinstance(t, ast.Name)}
        if isinstance(stmt, ast.ClassDef):
            for item in stmt.body:
                item_targets = item.targets if isinstance(item, ast.Assign) else \
                    [item.target] if isinstance(item, ast.AnnAssign) else []
                if isinstance(getattr(item, "value", None), containers):
                    mutable |= {f"{stmt.name}.{t.id}": f"{stmt.name}.{t.id}"
                                for t in item_targets if isinstance(t, ast.Name)}
    found: set[str] = set()

    def dotted(node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            return f"{dotted(node.value)}.{node.attr}"
        return ""

    for node in ast.walk(tree):
        assert not isinstance(node, ast.Global), f"{rel(path)}:{node.lineno} uses global"
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "globals":
                found.add(f"{name}: globals()")
            if isinstance(func, ast.Attribute) and func.attr in MUTATORS and \
                    dotted(func.value) in mutable:
                found.add(f"{name}: {mutable[dotted(func.value)]}")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            for target in getattr(node, "targets", None) or [getattr(node, "target", None)]:
                if isinstance(target, ast.Subscript) and dotted(target.value) in mutable:
                    found.add(f"{name}: {mutable[dotted(target.value)]}")
    for stmt in tree.body:  # module level: what runs at import
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else \
                    getattr(func, "id", "")
                if called in STATE_CALLS and not isinstance(stmt, (ast.FunctionDef,
                                                                   ast.ClassDef)):
                    found.add(f"{name}: {called}")
    return found


def test_process_wide_state_is_what_audit_md_lists() -> None:
    """Every piece of process-wide state is listed in docs/AUDIT.md question 8, and nothing
    else is there: derived from the code, not promised."""
    found = set().union(*(process_wide_state(p) for p in MODULES))
    section = AUDIT[AUDIT.index("## 8."):AUDIT.index("## 9.")]
    listed = set(re.findall(r"^- state `([^`]+)`", section, re.M))
    assert found == listed


@pytest.mark.parametrize("code, expected", [
    ("X = []\ndef f():\n    X.append(1)", {"m.py: X"}),
    ("X = {}\ndef f():\n    X['a'] = 1", {"m.py: X"}),
    ("class C:\n    s = set()\n    def f(self):\n        C.s.add(1)", {"m.py: C.s"}),
    ("import weakref\nclass C:\n    s = weakref.WeakSet()\n    def f(self):\n"
     "        C.s.add(self)", {"m.py: C.s"}),
    ("def f():\n    globals()['x'] = 1", {"m.py: globals()"}),
    ("import contextvars\nV = contextvars.ContextVar('v')", {"m.py: ContextVar"}),
    ("import logging\nlogging.getLogger('x').addHandler(None)", {"m.py: addHandler"}),
    ("import threading\nL = threading.Lock()", {"m.py: Lock"}),
    ("X = (1, 2)\nY = frozenset()", set()),
])
def test_process_wide_state_is_found(tmp_path: Path, code: str, expected: set[str]) -> None:
    module = tmp_path / "m.py"
    module.write_text(code + "\n")
    assert process_wide_state(module, tmp_path) == expected
