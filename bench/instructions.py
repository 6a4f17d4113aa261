"""Client CPU as instructions executed (valgrind's callgrind), us against the raw floor.

    python bench/instructions.py                  # needs valgrind on PATH; about 10 minutes
    python bench/instructions.py --against d3a57ae  # one request, then and now; 3 minutes

CPU time on a shared or virtual machine moves by 10-40% between runs (other tenants, the
allocator's page faults, frequency scaling), so a ratio of CPU times measured here may not
hold on another machine. The number of instructions the client executes per request (or
per streamed event) does not depend on the load: the same code, Python and inputs give the
same count to within a fraction of a percent, anywhere. Each measurement runs the same
client code as ``bench/run.py`` twice in a fresh process under callgrind, once with ``LOW``
units of work and once with ``HIGH``, so that start-up and warm-up cancel out:
``(count(HIGH) - count(LOW)) / (HIGH - LOW)``. The clients talk to ``bench/fake_server.py``
on loopback (outside callgrind, so the server's work is not counted).

``--against REV`` measures one request before and after a change: the package as it was at
git revision ``REV`` (``git archive``, in a scratch folder) and as it is in this tree, each
through a provider's ``complete`` and through the policy client's own ``request`` (a literal
``Authorization`` header: the same call on either version of the client).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
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


# (row, case) measured by --against, each with (LOW, HIGH) = AGAINST_UNITS.
AGAINST = [("a provider's complete (OpenAI shape)", "requests"),
           ("the policy client's request", "client-request")]
AGAINST_UNITS = (5, 205)


def client_request(port: int) -> Callable[[], object]:
    """One request through the provider's own policy client, with the key as a literal
    header (the credential door's path for a caller's headers)."""
    from missy_providers import ProviderRegistry

    registry = ProviderRegistry.from_config({"providers": {"p": {
        "name": "openai", "model": "bench-8", "api_key": "sk-bench", "max_retries": 0,
        "base_url": f"http://127.0.0.1:{port}/v1"}}})
    client = registry.get("p").client
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": "bench-8", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 1}
    headers = {"Authorization": "Bearer sk-bench"}
    return lambda: client.request("POST", url, json=body, headers=headers,
                                  provider="p").json()


def one(client: str, case: str, units: int, port: int) -> None:
    """The work measured, in this process: ``units`` requests or events after a warm-up.
    With ``MISSY_BENCH_TREE`` set, the package is imported from that folder."""
    sys.path.insert(0, str(BENCH))
    from run import build, history_call  # the same client code as bench/run.py

    if os.environ.get("MISSY_BENCH_TREE"):
        sys.path.insert(0, os.environ["MISSY_BENCH_TREE"])
    if case == "client-request":
        call = client_request(port)
        call()
        for _ in range(units):
            call()
        return
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


def counted(client: str, case: str, units: int, port: int, tree: str = "") -> int:
    """Instructions callgrind counts for one process doing ``units`` of ``case`` (with the
    package from ``tree``, else this one)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/cg.out",
             sys.executable, __file__, "--one", client, case, str(units), str(port)],
            capture_output=True, text=True, cwd=ROOT, timeout=1800,
            env={**os.environ, "PYTHONHASHSEED": "0", "MISSY_BENCH_TREE": tree})
    if out.returncode != 0:
        raise RuntimeError(f"{client} {case} {units}: {out.stderr[-2000:]}")
    match = re.search(r"Collected : (\d+)", out.stderr)
    assert match is not None, out.stderr[-2000:]
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=4, metavar=("CLIENT", "CASE", "UNITS", "PORT"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--against", metavar="REV",
                        help="one request before (git revision REV) and now")
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
        if args.against:
            against(args.against, port)
            return
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


def against(rev: str, port: int) -> None:
    """Instructions per request at ``rev`` and now (this tree), and the change."""
    low, high = AGAINST_UNITS
    with tempfile.TemporaryDirectory() as before:
        archive = subprocess.run(["git", "archive", rev, "missy_providers"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", before], input=archive, check=True)
        print(f"python bench/instructions.py --against {rev}: instructions per request "
              f"(callgrind, {sys.implementation.name} {sys.version.split()[0]})\n")
        print(f"| case | {rev} | now | change |")
        print("|---|---|---|---|")
        for row, case in AGAINST:
            per = [(counted("missy", case, high, port, tree) -
                    counted("missy", case, low, port, tree)) / (high - low)
                   for tree in (before, "")]
            print(f"| {row} | {per[0]:,.0f} | {per[1]:,.0f} | "
                  f"{(per[1] / per[0] - 1) * 100:+.1f}% |", flush=True)


if __name__ == "__main__":
    main()
