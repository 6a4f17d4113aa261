"""Every YAML config example in a Missy checkout, loaded by our config loader.

The extraction follows the recipe of the survey of Missy's surface (its docs' ```yaml fences,
the documents of examples/*.yaml, and the multi-line string constants of tests/**/*.py that
are mappings with a Missy top-level key); written here from that description. Each example
that is a Missy config must load, or fail with a ConfigError whose every problem names the key
it is about. Run it on a checkout (``git archive`` of MissyLabs/missy unpacked anywhere):

    python tests/missy_corpus.py /path/to/missy [--all]

It prints one line per failing example (``--all``: per example) and a summary, and exits 1
when an example fails without naming its key. tests/test_missy_config.py runs it on the
copied data in tests/data/missy.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Missy's top-level config keys (its settings.py, plus the raw-YAML sections it reads).
MISSY_TOP_KEYS = frozenset({
    "network", "filesystem", "shell", "plugins", "providers", "workspace_path",
    "audit_log_path", "default_provider", "discord", "scheduling", "heartbeat",
    "observability", "vault", "proactive", "sandbox", "container", "vision", "max_iterations",
    "max_spend_usd", "global_max_spend_usd", "global_budget_period", "landlock_enabled",
    "config_version", "tools", "agents", "tool_intelligence", "obs", "vtube", "desktop", "api",
    "voice", "screencast"})
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
DOCUMENT_SEPARATOR = re.compile(r"---\s*")


@dataclass
class Example:
    source: str
    line: int
    kind: str  # doc-fence | example-file | example-document | test-string
    text: str
    data: Any = None
    outcome: str = ""  # loads | names-key | unclear
    problems: list[str] = field(default_factory=list)

    @property
    def is_missy_config(self) -> bool:
        return isinstance(self.data, dict) and bool(set(self.data) & MISSY_TOP_KEYS)


def _parsed(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _fences(path: Path, rel: str) -> list[Example]:
    out = []
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        closing = re.compile(r"^\s*" + re.escape(fence[0]) + f"{{{len(fence)},}}" + r"\s*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            j += 1
        if lang in ("yaml", "yml"):
            body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[i + 1:j]]
            out.append(Example(rel, i + 1, "doc-fence", "\n".join(body)))
        i = j + 1
    return out


def _documents(path: Path, rel: str) -> list[Example]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    seps = [i for i, ln in enumerate(lines) if DOCUMENT_SEPARATOR.fullmatch(ln)]
    if not seps:
        return [Example(rel, 1, "example-file", text)]
    bounds = [-1, *seps, len(lines)]
    return [Example(rel, a + 2, "example-document", "\n".join(lines[a + 1:b]))
            for a, b in itertools.pairwise(bounds)]


def _test_strings(path: Path, rel: str) -> list[Example]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                "\n" in node.value:
            text = textwrap.dedent(node.value)
            data = _parsed(text)
            if isinstance(data, dict) and set(data) & MISSY_TOP_KEYS:
                out.append(Example(rel, node.lineno, "test-string", text))
    return out


def extract(root: Path) -> list[Example]:
    """Every candidate YAML example under ``root`` (a Missy checkout), in path order."""
    found: list[Example] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts):
        rel = path.relative_to(root).as_posix()
        if rel.endswith(".md"):
            found += _fences(path, rel)
        elif rel.startswith("examples/") and rel.endswith((".yaml", ".yml")):
            found += _documents(path, rel)
        elif rel.startswith("tests/") and rel.endswith(".py"):
            found += _test_strings(path, rel)
    for example in found:
        example.data = _parsed(example.text)
    return found


def load(example: Example) -> Example:
    """Our loader on one example (no environment, no secret resolver): ``loads``, or
    ``names-key`` when every problem names the key it is about, else ``unclear``."""
    from missy_providers.config import config_from_dict
    from missy_providers.core.errors import ConfigError

    try:
        config_from_dict(example.data, source=f"{example.source}:{example.line}", env={})
    except ConfigError as exc:
        example.problems = [str(p) for p in exc.problems]
        named = all(p.path or "'" in p.msg for p in exc.problems)
        example.outcome = "names-key" if named else "unclear"
    except Exception as exc:  # anything else is a bug of ours: never "clear"
        example.problems = [f"{type(exc).__name__}: {exc}"]
        example.outcome = "unclear"
    else:
        example.outcome = "loads"
    return example


def distinct(examples: list[Example]) -> list[Example]:
    seen: set[str] = set()
    out = []
    for e in examples:
        key = json.dumps(e.data, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(".")
    examples = [load(e) for e in extract(root) if e.is_missy_config]
    for e in examples:
        if "--all" in argv or e.outcome != "loads":
            print(f"{e.outcome:9}  {e.source}:{e.line} ({e.kind})")
            for problem in e.problems:
                print(f"           {problem}")
    counts = {o: sum(e.outcome == o for e in examples) for o in ("loads", "names-key",
                                                                   "unclear")}
    unique = distinct(examples)
    print(f"{len(examples)} Missy config examples ({len(unique)} distinct): "
          f"{counts['loads']} load, {counts['names-key']} fail naming the key, "
          f"{counts['unclear']} fail otherwise")
    return 1 if counts["unclear"] else 0


if __name__ == "__main__":
    ROOT = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
