"""docs/AUDIT.md is a checklist of true claims: every `file.py:line` (`text`) pointer lands on
that text (pointers that wrap across a line of the Markdown too), every test it names exists,
and every security claim in it and in README.md names a test.

    python tests/test_audit_doc.py --fix    # rewrite each pointer's line number in place
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AUDIT_PATH = ROOT / "docs" / "AUDIT.md"
AUDIT = AUDIT_PATH.read_text(encoding="utf-8")
# Whitespace (a line break included) may sit between the parts of a pointer.
POINTER = re.compile(r"`([\w/]+\.py):(\d+)`\s+\(`([^`]+)`\)")
LOOSE = re.compile(r"[\w/]+\.py:\d+")
TEST_NAME = re.compile(r"`(test_\w+)`")


def source(path: str) -> Path:
    return ROOT / path if path == "missy.py" else ROOT / "missy_providers" / path


def pointers(text: str) -> list[tuple[str, str, str]]:
    return POINTER.findall(text)


def defined_tests() -> set[str]:
    return {m for f in (ROOT / "tests").glob("test_*.py")
            for m in re.findall(r"^(?:async )?def (test_\w+)", f.read_text(encoding="utf-8"),
                                re.M)}


@pytest.mark.parametrize("path, line, text", pointers(AUDIT),
                         ids=[f"{p}:{n}" for p, n, _ in pointers(AUDIT)])
def test_every_pointer_lands_on_what_it_names(path: str, line: str, text: str) -> None:
    lines = source(path).read_text(encoding="utf-8").splitlines()
    assert text in lines[int(line) - 1], f"{path}:{line} is now: {lines[int(line) - 1]!r}"


def test_every_pointer_is_well_formed() -> None:
    """A pointer the checker cannot read (a wrapped one, a missing text) would go unchecked:
    every `x.py:N` in the document is part of a full pointer."""
    loose = LOOSE.findall(AUDIT)
    assert len(loose) == len(pointers(AUDIT)) >= 40


def test_wrapped_pointers_are_checked_too() -> None:
    wrapped = "see `core/http.py:1`\n(`the text`) here"
    assert pointers(wrapped) == [("core/http.py", "1", "the text")]


def test_every_named_test_exists() -> None:
    named = set(TEST_NAME.findall(AUDIT))
    assert len(named) >= 40
    assert named - defined_tests() == set()


CLAIM = re.compile(r"\b(never|refus\w*|secrets?|scrub\w*|0600|fails? closed|"
                   r"redact\w*|sanitiz\w*|escaped|control characters|clear text)\b", re.I)


def claims(doc: str, start: str) -> list[str]:
    """The paragraphs and list items after ``start`` that make a security claim (prose, not
    code, tables or headings)."""
    body = doc[doc.index(start):]
    pieces = re.split(r"\n\s*\n|\n(?=- )", body)
    return [p for p in pieces if CLAIM.search(p) and
            not p.lstrip().startswith(("```", "|", "#", "$", "    ", "missy_providers/"))
            and "```" not in p]


def test_every_security_claim_in_audit_md_names_a_test() -> None:
    defined = defined_tests()
    for paragraph in claims(AUDIT, "## 1."):
        named = set(TEST_NAME.findall(paragraph))
        assert named, f"a claim without its test: {paragraph[:300]}"
        assert named <= defined, named - defined


def test_every_security_claim_in_the_readme_names_a_test() -> None:
    """In the README, a claim names its test, or the question of docs/AUDIT.md that does."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    defined = defined_tests()
    missing = []
    for paragraph in claims(readme, "## The two commands"):
        named = set(TEST_NAME.findall(paragraph))
        assert named <= defined, named - defined
        if not named and not re.search(r"AUDIT\.md[^.]*question \d+", paragraph):
            missing.append(paragraph[:160])
    assert missing == []


def fix() -> int:
    """Point every pointer at the line that holds its text (the nearest to the old line)."""
    def moved(match: re.Match[str]) -> str:
        path, line, text = match.group(1), int(match.group(2)), match.group(3)
        lines = source(path).read_text(encoding="utf-8").splitlines()
        found = [i + 1 for i, s in enumerate(lines) if text in s]
        if not found:
            print(f"not found: {path} ({text})", file=sys.stderr)
            return match.group(0)
        best = min(found, key=lambda n: abs(n - line))
        return match.group(0).replace(f"{path}:{line}`", f"{path}:{best}`", 1)

    AUDIT_PATH.write_text(POINTER.sub(moved, AUDIT), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(fix() if "--fix" in sys.argv else 0)
