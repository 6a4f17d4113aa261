"""Many streams at once: 64 concurrent streams through the asyncio API and through threads,
against one stream alone, on bench/fake_server.py.

    python bench/concurrency.py [--streams 64] [--events 500]

Prints one Markdown table: total events per second, and per-event latency (a stream's wall
time over its events) next to the single-stream figure. Both concurrent modes share one
provider (one client, one pool). The server is Python on the same cores, so the absolute
numbers say as much about it as about the client: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from missy_providers import Message, ProviderRegistry  # noqa: E402

HI = [Message("user", "hi")]


def provider(port: int, workers: int):  # type: ignore[no-untyped-def]
    registry = ProviderRegistry.from_config({"providers": {"p": {
        "name": "openai", "model": "bench-8", "api_key": "sk-bench", "max_retries": 0,
        "base_url": f"http://127.0.0.1:{port}/v1"}}})
    registry.client.max_async_workers = workers
    registry.client._max_idle = workers
    return registry, registry.get("p")


def one_stream(p, events: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    with p.stream(HI, max_tokens=events) as stream:
        count = sum(1 for _ in stream)
    assert count == events, count
    return time.perf_counter() - started


def threads(p, streams: int, events: int) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    walls: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        wall = one_stream(p, events)
        with lock:
            walls.append(wall)

    started = time.perf_counter()
    pool = [threading.Thread(target=run) for _ in range(streams)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started, walls


def tasks(p, streams: int, events: int) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    async def one() -> float:
        started = time.perf_counter()
        count = 0
        async with p.astream(HI, max_tokens=events) as stream:
            async for _ in stream:
                count += 1
        assert count == events, count
        return time.perf_counter() - started

    async def main() -> tuple[float, list[float]]:
        started = time.perf_counter()
        walls = await asyncio.gather(*(one() for _ in range(streams)))
        return time.perf_counter() - started, list(walls)

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, str(BENCH / "fake_server.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        registry, p = provider(port, args.streams)
        one_stream(p, args.events)  # warm up
        single = statistics.median(one_stream(p, args.events) for _ in range(5))
        rows = [("1 stream", args.events / single, single / args.events * 1e6, 1.0)]
        for name, run in (("threads", threads), ("asyncio", tasks)):
            total, walls = run(p, args.streams, args.events)
            per_event = statistics.median(walls) / args.events * 1e6
            rows.append((f"{args.streams} streams, {name}", args.streams * args.events / total,
                         per_event, per_event / rows[0][2]))
        registry.close()
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(5)
    print(f"| case ({args.events} events a stream) | events/s in all | µs per event "
          "(median stream) | x single |")
    print("|---|---|---|---|")
    for name, rate, per_event, ratio in rows:
        print(f"| {name} | {rate:,.0f} | {per_event:.1f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
