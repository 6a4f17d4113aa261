"""docs/AUDIT.md is a checklist of true claims: every `file.py:line` (`text`) pointer lands on
that text, every test it names exists, and its line counts are today's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AUDIT = (ROOT / "docs" / "AUDIT.md").read_text(encoding="utf-8")
POINTER = re.compile(r"`([\w/]+\.py):(\d+)` \(`([^`]+)`\)")
TEST_NAME = re.compile(r"`(test_\w+)`")
COUNT = re.compile(r"`([\w/]+\.py)` (\d+(?:,\d{3})*)")
POINTERS = POINTER.findall(AUDIT)


def source(path: str) -> Path:
    return ROOT / path if path == "missy.py" else ROOT / "missy_providers" / path


@pytest.mark.parametrize("path, line, text", POINTERS, ids=[f"{p}:{n}" for p, n, _ in POINTERS])
def test_every_pointer_lands_on_what_it_names(path: str, line: str, text: str) -> None:
    lines = source(path).read_text(encoding="utf-8").splitlines()
    assert text in lines[int(line) - 1], f"{path}:{line} is now: {lines[int(line) - 1]!r}"


def test_every_named_test_exists() -> None:
    defined = {m for f in (ROOT / "tests").glob("test_*.py")
               for m in re.findall(r"^def (test_\w+)", f.read_text(encoding="utf-8"), re.M)}
    named = set(TEST_NAME.findall(AUDIT))
    assert len(named) >= 30
    assert named - defined == set()


def test_line_counts_are_current() -> None:
    section = AUDIT[AUDIT.index("## 10."):]
    counts = COUNT.findall(section)
    assert len(counts) >= 10
    for path, count in counts:
        actual = len(source(path).read_text(encoding="utf-8").splitlines())
        assert actual == int(count.replace(",", "")), f"{path}: {actual} lines, doc says {count}"


def test_there_are_ten_questions() -> None:
    assert re.findall(r"^## (\d+)\. ", AUDIT, re.M) == [str(i) for i in range(1, 11)]
