"""CLI start-up: the import time of ``python -m missy providers`` against the stdlib floor
``python -c "import urllib.request, http.client, ssl, json"`` (``-X importtime``, the sum of
top-level imports, median of 9 interleaved runs). The package is byte-compiled first, as
``pip install`` does.

    python bench/startup.py
"""

from __future__ import annotations

import compileall
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = ["-c", "import urllib.request, http.client, ssl, json"]


def import_us(args: list[str]) -> int:
    """Microseconds spent importing, summed over the top-level imports (site excluded)."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                            text=True, cwd=ROOT, check=True)
    total = 0
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            if not name.startswith("  ") and name.strip() not in ("site", "encodings"):
                total += int(cumulative)
    return total


def main() -> None:
    compileall.compile_dir(ROOT / "missy_providers", quiet=1)
    compileall.compile_file(ROOT / "missy.py", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "c.json"
        cfg.write_text(json.dumps({"providers": {
            "anthropic": {"model": "m"}, "openai": {"model": "m"},
            "codex": {"name": "openai-codex", "model": "m"}, "ollama": {"model": "m"}}}))
        runs: dict[str, list[int]] = {"floor": [], "json": [], "yaml": []}
        for _ in range(9):
            runs["floor"].append(import_us(FLOOR))
            runs["json"].append(import_us(["-m", "missy", "providers", "--config", str(cfg)]))
            runs["yaml"].append(import_us(["-m", "missy", "providers", "--config",
                                           "examples/config.yaml"]))
    floor = statistics.median(runs["floor"])
    print("| command | import time (ms) | vs floor |\n|---|---|---|")
    print(f"| stdlib floor | {floor / 1000:.1f} | 1.00x |")
    for name, label in (("json", "missy providers, JSON config"),
                        ("yaml", "missy providers, YAML config (imports PyYAML)")):
        value = statistics.median(runs[name])
        print(f"| {label} | {value / 1000:.1f} | {value / floor:.2f}x |")


if __name__ == "__main__":
    main()
