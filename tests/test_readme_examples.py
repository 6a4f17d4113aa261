"""Every Python example in README.md runs as written after the README's prelude (its first
Python block), against local stand-ins of the four APIs (tests/fake_apis.py), in a directory
holding the files the examples name (config.yaml, cat.jpg, q3.pdf)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fake_apis import config_for, serve

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"),
                    re.S)
PRELUDE, EXAMPLES = BLOCKS[0], BLOCKS[1:]
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00"
       b"\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture(scope="module")
def stand_ins() -> Any:
    server = serve()
    yield server
    server.stop()


def test_the_readme_has_a_prelude_and_examples() -> None:
    assert "ProviderRegistry.from_config" in PRELUDE
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("example", EXAMPLES,
                         ids=[f"block{i + 1}" for i in range(len(EXAMPLES))])
def test_every_example_runs_after_the_prelude(example: str, stand_ins: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text(json.dumps(config_for(stand_ins)))  # YAML 1.2
    (tmp_path / "cat.jpg").write_bytes(PNG)  # its type comes from its bytes, not its name
    (tmp_path / "q3.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    output = io.StringIO()
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    with contextlib.redirect_stdout(output):
        exec(compile(PRELUDE + example, "README.md example", "exec"), namespace)
    if "print(" in example:
        assert output.getvalue().strip(), "the example prints nothing"


def test_the_suite_time_the_readme_states_is_the_one_enforced() -> None:
    from conftest import SUITE_LIMIT_SECONDS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"under\s+the (\d+) minutes a whole run\s+may take", readme)
    assert match is not None and int(match.group(1)) * 60 == SUITE_LIMIT_SECONDS
