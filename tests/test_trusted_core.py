"""The trusted core is small by rule: derived from the code, it must equal the list in
docs/AUDIT.md, whose line counts are today's (docs/AUDIT.md question 10)."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest
from core_audit import (
    MODULES,
    PACKAGE,
    REVEALS_WITHOUT_RETURNING,
    ROOT,
    SECRET_NAMES,
    SOURCES,
    derived_core,
    functions_touching_plaintext,
    line_count,
    package_imports,
    powers,
    rel,
)

AUDIT = (ROOT / "docs" / "AUDIT.md").read_text(encoding="utf-8")
CORE_ROW = re.compile(r"^\| `(core/[\w/]+\.py)` \| (\d+(?:,\d{3})*) \| ([^|]+) \|$", re.M)
TOTAL = re.compile(r"The core: \*\*(\d+) files, (\d+(?:,\d{3})*) lines\*\*, of a package of "
                   r"(\d+(?:,\d{3})*) runtime lines")


def documented_core() -> dict[str, int]:
    section = AUDIT[AUDIT.index("## 10."):]
    return {path: int(count.replace(",", "")) for path, count, _ in CORE_ROW.findall(section)}


def test_the_core_is_what_the_code_says_and_what_audit_md_lists() -> None:
    derived = {str(p.relative_to(PACKAGE)) for p in derived_core()}
    assert derived == set(documented_core()), "docs/AUDIT.md question 10 lists another set"
    # The folder holds exactly the core (and its package docstring).
    folder = {str(p.relative_to(PACKAGE)) for p in (PACKAGE / "core").glob("*.py")}
    assert folder - {"core/__init__.py"} == derived


def test_nothing_outside_the_core_holds_a_power() -> None:
    core = derived_core()
    outside = {rel(s): powers(s) for s in SOURCES if s not in core}
    held = {path: sorted(p) for path, p in outside.items() if p}
    # missy.py (the CLI) is outside the package; it holds none either.
    assert held == {}


def test_every_core_function_that_touches_plaintext_is_classified() -> None:
    """A core function that reads a Secret's plaintext either returns it (its name is a
    secret name: code outside the core that uses it holds the power) or returns something
    else, said in REVEALS_WITHOUT_RETURNING. A new one is a decision a reviewer sees."""
    touching = functions_touching_plaintext()
    unclassified = [f for f in touching if f.rpartition(".")[2].rpartition(":")[2]
                    not in SECRET_NAMES and f not in REVEALS_WITHOUT_RETURNING]
    assert unclassified == []
    assert set(REVEALS_WITHOUT_RETURNING) <= set(touching), "a stale entry"
    # The doors the audit found: each is flagged wherever it is used outside the core.
    assert {"core/headers.py:rendered", "core/wire.py:frame_request",
            "core/wire.py:encode_body"} <= set(touching)


def test_the_core_imports_nothing_of_the_package_outside_it() -> None:
    core = derived_core()
    for module in core:
        assert package_imports(module) <= set(core), rel(module)


def test_line_counts_and_total_are_computed() -> None:
    documented = documented_core()
    for path, count in documented.items():
        assert line_count(PACKAGE / path) == count, f"{path}: doc says {count}"
    match = TOTAL.search(AUDIT)
    assert match is not None, "docs/AUDIT.md states the core's size"
    files, lines = int(match.group(1)), int(match.group(2).replace(",", ""))
    assert files == len(documented)
    assert lines == sum(documented.values())
    assert int(match.group(3).replace(",", "")) == sum(line_count(s) for s in SOURCES)


def test_every_power_of_each_core_module_is_documented() -> None:
    section = AUDIT[AUDIT.index("## 10."):]
    rows = {path: why for path, _, why in CORE_ROW.findall(section)}
    for module, held in derived_core().items():
        why = rows[str(module.relative_to(PACKAGE))]
        for power in held:
            assert power in why, f"{rel(module)} holds '{power}', its row says: {why}"


# --- the derivation is not fooled by a rename or an alias ----------------------------------

DISGUISES = {
    "network": ["import socket as s", "from ssl import create_default_context as ctx",
                "import http.client", "import urllib.request as u",
                "async def f(loop):\n    await loop.create_connection(None)"],
    "secret": ["def f(k):\n    return k.reveal()", "def f(k):\n    r = k.reveal\n    return r()",
               "def f(k):\n    return k._value", "def f(k):\n    return getattr(k, 'reveal')()",
               "def f(k):\n    return '{0._value}'.format(k)",
               "def f(k):\n    return '{0[x]._value!r}'.format([k])",
               "import operator\nf = operator.attrgetter('_val' + 'ue')",
               "def f(k):\n    return getattr(k, ''.join(['rev', 'eal']))()",
               "def f(k):\n    return getattr(k, f\"{'_val'}ue\")",
               "def f(k):\n    return k._forms()",
               "from .core.headers import rendered\ndef f(s):\n    return rendered(s)",
               "from .core import headers\ndef f(s):\n    return headers.rendered(s)",
               "from .core.wire import frame_request as fr",
               "from .core.wire import encode_body"],
    "environment": ["import os as o\nx = o.environ", "from os import environ as e",
                    "from os import getenv", "import os\nx = os.path.expanduser('~')",
                    "import posix\nx = posix.environ", "x = 'environ'",
                    "x = open('/proc/self/' + 'env' + 'iron', 'rb').read()",
                    "x = open('/proc/%d/environ' % 1).read()"],
    "files": ["open('x', 'w')", "open('x', mode='a')", "def f(m):\n    open('x', m)",
              "import os as o\no.makedirs('d')", "import os\nos.open('x', 0)",
              "from os import replace\nreplace('a', 'b')", "import pathlib\n"
              "pathlib.Path('x').write_text('')", "import shutil\nshutil.move('a', 'b')",
              "import tempfile as t\nt.mkstemp()", "def f(p):\n    p.open('wb')",
              "def f(ctx):\n    ctx.keylog_filename = 'x'",
              "import io\nio.FileIO('x', 'w' + 'b')", "from io import FileIO as F\nF('x', 'wb')",
              "import logging\nlogging.FileHandler('x')",
              "import logging.handlers as h\nh.WatchedFileHandler('x')",
              "from logging.config import dictConfig",
              "import logging\nlogging.basicConfig(filename='x.log')", "import sqlite3",
              "import zipfile", "from tarfile import open as topen",
              "import shutil\nshutil.make_archive('x', 'zip')"],
    "dynamic import": ["import importlib", "from importlib import import_module",
                       "x = __import__('os')", "import runpy",
                       "import sys\nx = sys.modules['import' + 'lib']",
                       "import operator\nf = operator.methodcaller('import_' + 'module', 'os')"],
    "budget": ["def f(b):\n    b.take_send('p')", "def f(b):\n    b.sends = 0",
               "def f(b):\n    b.deadline = 0", "CallBudget(1, 99)",
               "import time as t\nt.sleep(1)", "from time import sleep as pause\npause(1)",
               "def f(b):\n    setattr(b, 'max_' + 'sends', 10)",
               "def f(b):\n    object.__setattr__(b, 'deadline', 0)"],
    "egress": ["Decision(True, 'ok')", "def f(c, p):\n    c.policy = p",
               "def f(c, p):\n    setattr(c, '_policy', p)"],
    "reflection": ["def f(o, n):\n    return getattr(o, n)",
                   "def f(o, n):\n    setattr(o, n, 1)",
                   "import operator\ndef f(n):\n    return operator.attrgetter(n)",
                   "def f(o, n):\n    return vars(o)[n]", "def f(o, n):\n    return o.__dict__[n]",
                   "def f(o, n, v):\n    object.__setattr__(o, n, v)"],
    "network (stdlib side doors)": ["import logging.handlers as h\nh.SocketHandler('h', 1)",
                                    "import urllib.robotparser",
                                    "from xml.sax import parse", "import xml.dom.minidom",
                                    "from xml.dom import pulldom",
                                    "from wsgiref.simple_server import make_server",
                                    "from logging.handlers import SysLogHandler"],
}


@pytest.mark.parametrize("power, code", [(p, c) for p, codes in DISGUISES.items()
                                          for c in codes])
def test_a_disguised_power_is_still_found(tmp_path: Path, power: str, code: str) -> None:
    module = tmp_path / "m.py"
    module.write_text(textwrap.dedent(code) + "\n")
    assert power.split(" (")[0] in powers(module), code


@pytest.mark.parametrize("code", [
    "x = 'a'.replace('a', 'b')", "x = [1]\nx.remove(1)", "d = {}\ne = d.copy()",
    "open('x')", "open('x', 'rb')", "import os\nx = os.path.join('a', 'b')",
    "def f(k):\n    return k.same_value(k)", "import asyncio\nasyncio.get_running_loop()",
    "def f(b):\n    return b.remaining()", "def f(b):\n    return b.take_refresh()",
    "policy = 'policy'", "def f(p):\n    p.add_parser('policy')", "x = 'deadline passed'",
    "x = '{0} of {1}'.format(1, 2)", "import logging\nlog = logging.getLogger('x')",
    "def f(o):\n    return getattr(o, 'na' + 'me')", "import __main__",
])
def test_harmless_look_alikes_are_not_powers(tmp_path: Path, code: str) -> None:
    module = tmp_path / "m.py"
    module.write_text(code + "\n")
    assert powers(module) == {}


def test_every_module_is_read() -> None:
    assert len(MODULES) >= 30
    for module in MODULES:
        ast.parse(module.read_text(encoding="utf-8"))  # nothing the derivation cannot read


def test_every_request_outside_the_core_belongs_to_a_call() -> None:
    """PolicyHTTPClient.request without ``budget=`` is a call of its own (one send, its own
    timeout): the package's own requests always pass their call's budget, so none escapes
    the call's count and deadline (docs/AUDIT.md question 9)."""
    core = derived_core()
    unbudgeted = []
    for source in SOURCES:
        if source in core:
            continue
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "request" and \
                    not any(k.arg == "budget" for k in node.keywords):
                unbudgeted.append(f"{rel(source)}:{node.lineno}")
    assert unbudgeted == []
    calls = [rel(s) for s in SOURCES if s not in core and ".request(" in s.read_text()]
    assert calls, "the package sends through request() somewhere outside the core"
