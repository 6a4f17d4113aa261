"""Us against the libraries users would pick instead, in one run, on one loopback server.

    python bench/compare.py [--rounds 3]

Creates bench/.peers (a virtual environment with openai, anthropic and litellm: never a
dependency of the package or its tests) on first use, starts bench/fake_server.py twice (one
pre-rendering every answer and sending it in one write, so the clients are the bottleneck;
one live, for the first-token case), runs every client and case in fresh processes,
interleaved (A B C A B C ...), and prints Markdown tables: wall time and client
CPU time (the best of the rounds: a busy machine only makes a number worse), with ratios
against the raw ``http.client`` floor and the SDKs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / ".peers"
PEER_PACKAGES = ["openai", "anthropic", "litellm"]
CLIENTS = ["missy", "raw", "openai", "missy-anthropic", "raw-anthropic", "anthropic", "litellm"]
OURS = ["missy", "raw", "missy-anthropic", "raw-anthropic"]  # us and the floors, no SDK
# (case, extra run.py arguments, which clients): every client, or ours against the floor.
CASES = [("requests", [], CLIENTS), ("stream_events", ["--events", "1000"], CLIENTS),
         ("stream_events", ["--events", "10000"], CLIENTS),
         ("stream_events", ["--events", "100000"], OURS),
         ("history", ["--messages", "10"], ["missy", "raw"]),
         ("history", ["--messages", "1000"], ["missy", "raw"]),
         ("history", ["--messages", "5000"], ["missy", "raw"]),
         ("stream_mb", [], CLIENTS), ("first_token", [], CLIENTS), ("rss", [], CLIENTS),
         ("cold", [], CLIENTS), ("memory", [], ["missy", "raw", "openai", "missy-anthropic"]),
         ("concurrency", ["--threads", "1"], ["missy", "raw"]),
         ("concurrency", ["--threads", "4"], ["missy", "raw"]),
         ("concurrency", ["--threads", "16"], ["missy", "raw", "openai"])]
IMPORTS = {"missy": "import missy_providers", "raw": "import http.client, json",
           "openai": "import openai", "anthropic": "import anthropic", "litellm": "import litellm"}
HIGHER_IS_BETTER = {"requests", "stream_mb", "sse_decode", "concurrency"}
EXTRA = {"cpu_us": "client CPU µs", "rss_mib": "MiB resident", "text_mib": "MiB",
         "connections": "opened after warm-up"}
# litellm fetches a price list from the internet at import unless told not to: loopback only.
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def peers_python() -> str:
    python = PEERS / "bin" / "python"
    if not python.exists():
        print("creating bench/.peers (openai, anthropic, litellm) ...", file=sys.stderr)
        venv.create(PEERS, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES],
                       check=True)
    return str(python)


def run_json(argv: list[str]) -> dict[str, float]:
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env=ENV)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=120, env=ENV)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ours", action="store_true",
                        help="only missy and the raw floors (no SDKs): the ratios, in minutes")
    args = parser.parse_args()
    load_before = os.getloadavg()
    python = sys.executable if args.ours else peers_python()
    # Byte-compiled first, as `pip install` leaves the package.
    subprocess.run([python, "-m", "compileall", "-q", "missy_providers", "missy.py"], cwd=ROOT,
                   check=True)
    servers = [subprocess.Popen([python, str(BENCH / "fake_server.py"), *mode],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                cwd=ROOT) for mode in ([], ["--live"])]
    port, live_port = (s.stdout.readline().strip() for s in servers)  # type: ignore[union-attr]
    results: dict[tuple[str, str], list[float]] = {}
    units: dict[str, str] = {}
    try:
        for _ in range(args.rounds):
            for case, extra, clients in CASES:
                row = " ".join([case, *extra[1:]])
                for client in clients:
                    if args.ours and client not in OURS:
                        continue
                    got = run_json([python, str(BENCH / "run.py"), "--client", client,
                                    "--case", case, *extra, "--port",
                                    live_port if case == "first_token" else port])
                    results.setdefault((row, client), []).append(got["value"])
                    units[row] = str(got["unit"])
                    for key, unit in EXTRA.items():
                        if key in got:
                            results.setdefault((f"{row}: {key}", client), []).append(got[key])
                            units[f"{row}: {key}"] = unit
        for _ in range(args.rounds * 3):  # whole-process cold import, interleaved
            for client, code in IMPORTS.items():
                if args.ours and client not in OURS:
                    continue
                results.setdefault(("import", client), []).append(
                    wall([python, "-c", code]))
            results.setdefault(("cli", "missy"), []).append(wall(
                [python, "-m", "missy", "providers", "--config", "examples/config.yaml"]))
            results.setdefault(("cli", "raw"), []).append(wall(
                [python, "-c", "import urllib.request, http.client, ssl, json"]))
        units["import"] = units["cli"] = "ms"
        sse = run_json([python, str(BENCH / "sse_decode.py")])
        for style, row in sse.items():
            units[f"sse_decode {style}"] = "MB/s"
            results[(f"sse_decode {style}", "missy")] = [row["missy"]]
            results[(f"sse_decode {style}", "raw")] = [row["bytes.split floor"]]
            if "openai SDK" in row:
                results[(f"sse_decode {style}", "openai")] = [row["openai SDK"]]
    finally:
        for server in servers:
            server.stdin.close()  # type: ignore[union-attr]
            server.wait(timeout=10)
    print(f"python bench/compare.py --rounds {args.rounds}{' --ours' if args.ours else ''}: "
          f"best of {args.rounds} round(s), each measurement a fresh process, clients "
          f"interleaved; load average before {load_before[0]:.2f}, after "
          f"{os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)\n")
    print_table(results, units)


def best(case: str, higher_is_better: bool, values: list[float]) -> float:
    """A client's number for a case: the best of its rounds (the least CPU or time, the most
    throughput), which a busy machine can only make worse; for connections opened after
    warm-up, the worst round (one is one too many)."""
    if case.endswith(": connections"):
        return max(values)
    return max(values) if higher_is_better else min(values)


def print_table(results: dict[tuple[str, str], list[float]], units: dict[str, str]) -> None:
    cases = list(dict.fromkeys(case for case, _ in results))
    print(f"| case | unit | {' | '.join(CLIENTS)} | missy / raw | missy vs SDK |")
    print("|" + "---|" * (len(CLIENTS) + 4))
    for case in cases:
        better = case.split()[0] in HIGHER_IS_BETTER and ":" not in case
        med = {c: best(case, better, v) for (k, c), v in results.items() if k == case}
        cells = [f"{med[c]:.1f}" if c in med else "" for c in CLIENTS]
        ours, floor = med.get("missy"), med.get("raw")
        ratio = f"{ours / floor:.2f}x" if ours and floor else ""
        if med.get("missy-anthropic") and med.get("raw-anthropic"):
            anthropic_ratio = med["missy-anthropic"] / med["raw-anthropic"]
            ratio += f"{'; ' if ratio else ''}{anthropic_ratio:.2f}x anthropic shape"
        sdk_ratios = []
        for ours_name, sdk in (("missy", "openai"), ("missy-anthropic", "anthropic"),
                               ("missy", "litellm")):
            mine = med.get(ours_name, med.get("missy"))  # import/cli: one missy row for both
            if mine and med.get(sdk):
                r = mine / med[sdk] if better else med[sdk] / mine
                sdk_ratios.append(f"{r:.1f}x {sdk}")
        print(f"| {case} | {units[case]} | {' | '.join(cells)} | {ratio} | "
              f"{', '.join(sdk_ratios)} |")
    print("\nmissy vs SDK: how many times better missy is (higher-is-better cases: ours/theirs;"
          " time and memory cases: theirs/ours).")


if __name__ == "__main__":
    main()
