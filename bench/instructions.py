"""Client CPU as instructions executed (valgrind's callgrind), us against the raw floor.

    python bench/instructions.py            # needs valgrind on PATH; about 10 minutes

CPU time on a shared or virtual machine moves by 10-40% between runs (other tenants, the
allocator's page faults, frequency scaling), so a ratio of CPU times measured here may not
hold on another machine. The number of instructions the client executes per request (or
per streamed event) does not depend on the load: the same code, Python and inputs give the
same count to within a fraction of a percent, anywhere. Each measurement runs the same
client code as ``bench/run.py`` twice in a fresh process under callgrind, once with ``LOW``
units of work and once with ``HIGH``, so that start-up and warm-up cancel out:
``(count(HIGH) - count(LOW)) / (HIGH - LOW)``. The clients talk to ``bench/fake_server.py``
on loopback (outside callgrind, so the server's work is not counted).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# (row, case, clients, (LOW, HIGH) units, extra): the per-unit rows of bench/compare.py that
# measure the client's own work.
ROWS = [
    ("request, OpenAI shape", "requests", ("missy", "raw"), (5, 45)),
    ("request, Anthropic shape", "requests", ("missy-anthropic", "raw-anthropic"), (5, 45)),
    ("streamed event, OpenAI shape", "stream_events", ("missy", "raw"), (1000, 11000)),
    ("streamed event, Anthropic shape", "stream_events",
     ("missy-anthropic", "raw-anthropic"), (1000, 11000)),
    ("request with a 1,000-turn history", "history-1000", ("missy", "raw"), (2, 12)),
    ("request with a 5,000-turn history", "history-5000", ("missy", "raw"), (2, 12)),
]


def one(client: str, case: str, units: int, port: int) -> None:
    """The work measured, in this process: ``units`` requests or events after a warm-up."""
    sys.path.insert(0, str(BENCH))
    from run import build, history_call  # the same client code as bench/run.py

    if case.startswith("history-"):
        call = history_call(client, port, int(case.split("-")[1]))
        call()
        for _ in range(units):
            call()
        return
    once, stream = build(client, port)
    once()
    sum(1 for _ in stream(10, 8))
    if case == "requests":
        for _ in range(units):
            once()
    else:
        assert sum(1 for _ in stream(units, 8)) == units


def counted(client: str, case: str, units: int, port: int) -> int:
    """Instructions callgrind counts for one process doing ``units`` of ``case``."""
    with tempfile.TemporaryDirectory() as scratch:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/cg.out",
             sys.executable, __file__, "--one", client, case, str(units), str(port)],
            capture_output=True, text=True, cwd=ROOT, timeout=1800,
            env={**os.environ, "PYTHONHASHSEED": "0"})
    if out.returncode != 0:
        raise RuntimeError(f"{client} {case} {units}: {out.stderr[-2000:]}")
    match = re.search(r"Collected : (\d+)", out.stderr)
    assert match is not None, out.stderr[-2000:]
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=4, metavar=("CLIENT", "CASE", "UNITS", "PORT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        client, case, units, port = args.one
        one(client, case, int(units), int(port))
        return
    server = subprocess.Popen([sys.executable, str(BENCH / "fake_server.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        print(f"python bench/instructions.py: instructions per unit (callgrind, "
              f"{sys.implementation.name} {sys.version.split()[0]})\n")
        print("| case | ours | raw floor | ours / raw |")
        print("|---|---|---|---|")
        for row, case, (ours, floor), (low, high) in ROWS:
            per = {c: (counted(c, case, high, port) - counted(c, case, low, port))
                   / (high - low) for c in (ours, floor)}
            print(f"| {row} | {per[ours]:,.0f} | {per[floor]:,.0f} | "
                  f"{per[ours] / per[floor]:.2f}x |", flush=True)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
