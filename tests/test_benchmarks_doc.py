"""BENCHMARKS.md's ratios are computed from the numbers beside them, not typed in."""

from __future__ import annotations

import re
from pathlib import Path

DOC = (Path(__file__).resolve().parents[1] / "BENCHMARKS.md").read_text(encoding="utf-8")
HIGHER_IS_BETTER = ("requests", "stream_mb", "sse_decode", "concurrency")


def rows(header_start: str) -> list[list[str]]:
    """The body rows of the table whose header line starts with ``header_start``."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        body.append([cell.strip() for cell in line.strip("|").split("|")])
    return body


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_every_benchmark_ratio_is_computed_from_its_row() -> None:
    table = rows("| case | unit | missy | raw |")
    assert len(table) >= 30
    checked = 0
    for case, _, missy, raw, *_rest, ratio, _sdk in table:
        if missy and raw and float(raw) > 0 and ratio:
            # The cells are rounded to 0.1, the ratio to 0.01: it lies between what the
            # cells' rounding allows.
            stated = float(ratio.split("x")[0])
            low = (number(missy) - 0.05) / (number(raw) + 0.05) - 0.005
            high = (number(missy) + 0.05) / (number(raw) - 0.05) + 0.005
            assert low <= stated <= high, case
            checked += 1
    assert checked >= 25
    instructions = rows("| case | ours | raw floor |")
    assert len(instructions) == 6
    for case, ours, floor, ratio in instructions:
        assert abs(number(ours) / number(floor) - float(ratio.rstrip("x"))) <= 0.006, case


def test_the_goals_quote_the_tables() -> None:
    """Each ratio the goals table states for streamed events and histories is in a table."""
    instructions = {row[0]: row[3] for row in rows("| case | ours | raw floor |")}
    assert re.search(rf"instructions {instructions['request with a 5,000-turn history']}",
                     DOC)
    assert f"instructions {instructions['streamed event, OpenAI shape']} / " \
           f"{instructions['streamed event, Anthropic shape']}" in DOC


def test_before_and_after_is_computed_and_quoted_by_the_goal() -> None:
    """The trusted core's cost before and after: each change from its row, and the goals row
    states the changes."""
    table = rows("| case | d3a57ae | now | change |")
    assert len(table) == 2
    changes = {}
    for case, before, now, change in table:
        computed = (number(now) / number(before) - 1) * 100
        assert abs(computed - float(change.rstrip("%"))) <= 0.051, case
        changes[case] = change
    goal = next(line for line in DOC.splitlines()
                if line.startswith("| the trusted-core work costs"))
    assert all(change in goal for change in changes.values())
