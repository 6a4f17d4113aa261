"""One benchmark measurement in a fresh process; prints one JSON object.

    python bench/run.py --client missy --case requests --port 8080

Clients speak to bench/fake_server.py: ``missy`` and ``raw``/``openai``/``litellm`` use the
OpenAI wire format, ``missy-anthropic``, ``raw-anthropic`` and ``anthropic`` the Anthropic
one. ``raw`` and ``raw-anthropic`` are plain ``http.client`` loops: the floor any client pays.

Cases: ``import`` (the library's import, timed in-process), ``rss`` (MiB resident after
import), ``cold`` (ms from before the import to the first response in hand, and MiB resident
then), ``requests`` (non-streamed requests/s over 1,000 requests, client reused, and client
CPU µs per request), ``concurrency`` (requests/s with ``--threads`` threads sharing one
client, client CPU µs per request, and the connections opened after the warm-up; ``raw``
gives each thread its own connection, as http.client requires),
``stream_events`` (wall and client CPU µs per event over an ``--events``-event stream of
8-character deltas), ``history`` (client CPU µs per non-streamed request carrying a
conversation of ``--messages`` turns: the raw client builds its message dicts from its own
(role, text) list for each request, as any client must), ``stream_mb`` (MB/s over a 2 MB
stream), ``memory`` (peak RSS growth while consuming a 50 MB stream of 400-character
deltas, and the final text's size as a Python string), ``first_token`` (ms from the server
sending the first delta to the caller holding it; median of 20; needs the server's
``--live`` mode). CPU time is ``time.process_time()`` in this (client) process. ``raw``
sets a socket timeout, as every real client does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()  # before the client's library is imported (the cold case)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# litellm fetches a price list from the internet at import unless told not to: loopback only.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

Stream = Callable[[int, int], Iterator[str]]  # (events, delta size) -> text deltas


def build(client: str, port: int) -> tuple[Callable[[], str], Stream]:
    """(one non-streamed request -> text, a stream of text deltas) for ``client``."""
    base = f"http://127.0.0.1:{port}"
    messages = [{"role": "user", "content": "hi"}]
    if client in ("missy", "missy-anthropic"):
        from missy_providers import Message, ProviderRegistry

        ptype = "anthropic" if client == "missy-anthropic" else "openai"
        registry = ProviderRegistry.from_config({"providers": {"p": {
            "name": ptype, "model": "bench-8", "api_key": "sk-bench", "max_retries": 0,
            "base_url": base if ptype == "anthropic" else base + "/v1"}}})
        provider = registry.get("p")
        hi = [Message("user", "hi")]

        def missy_stream(n: int, size: int) -> Iterator[str]:
            with provider.stream(hi, max_tokens=n, model=f"bench-{size}") as stream:
                yield from stream

        return (lambda: provider.complete(hi, max_tokens=1).content), missy_stream
    if client == "raw":
        return raw_client(port)
    if client == "raw-anthropic":
        return raw_anthropic_client(port)
    if client == "openai":
        import openai

        oa = openai.OpenAI(base_url=base + "/v1", api_key="sk-bench", max_retries=0)

        def openai_stream(n: int, size: int) -> Iterator[str]:
            for chunk in oa.chat.completions.create(model=f"bench-{size}", messages=messages,
                                                    max_tokens=n, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

        return (lambda: oa.chat.completions.create(model="bench-8", messages=messages,
                                                   max_tokens=1).choices[0].message.content
                ), openai_stream
    if client == "anthropic":
        import anthropic

        an = anthropic.Anthropic(base_url=base, api_key="sk-bench", max_retries=0)

        def anthropic_stream(n: int, size: int) -> Iterator[str]:
            with an.messages.stream(model=f"bench-{size}", messages=messages,
                                    max_tokens=n) as stream:
                yield from stream.text_stream

        return (lambda: an.messages.create(model="bench-8", messages=messages,
                                           max_tokens=1).content[0].text), anthropic_stream
    if client == "litellm":
        import litellm

        def litellm_stream(n: int, size: int) -> Iterator[str]:
            for chunk in litellm.completion(model=f"openai/bench-{size}", messages=messages,
                                            api_base=base + "/v1", api_key="sk-bench",
                                            max_tokens=n, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

        return (lambda: litellm.completion(model="openai/bench-8", messages=messages,
                                           api_base=base + "/v1", api_key="sk-bench",
                                           max_tokens=1).choices[0].message.content
                ), litellm_stream
    raise SystemExit(f"unknown client {client!r}")


def raw_client(port: int) -> tuple[Callable[[], str], Stream]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}

    def post(body: dict[str, Any]) -> http.client.HTTPResponse:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        return conn.getresponse()

    def once() -> str:
        data = json.loads(post({"model": "bench-8", "max_tokens": 1, "messages": []}).read())
        return str(data["choices"][0]["message"]["content"])

    def stream(n: int, size: int) -> Iterator[str]:
        resp = post({"model": f"bench-{size}", "max_tokens": n, "stream": True, "messages": []})
        buf, done = b"", False
        try:
            while chunk := resp.read1(65536):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"data: {"):
                        choices = json.loads(line[6:])["choices"]
                        if choices and choices[0]["delta"].get("content"):
                            yield choices[0]["delta"]["content"]
            done = True
        finally:
            if not done:  # left early: the rest of the body is unread, so reconnect next time
                conn.close()

    return once, stream


def raw_anthropic_client(port: int) -> tuple[Callable[[], str], Stream]:
    """The Anthropic-shaped floor: http.client, and the SSE lines split by hand (an event's
    name line, then its data line)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "x-api-key": "sk-bench",
               "anthropic-version": "2023-06-01"}

    def post(body: dict[str, Any]) -> http.client.HTTPResponse:
        conn.request("POST", "/v1/messages", json.dumps(body), headers)
        return conn.getresponse()

    def once() -> str:
        data = json.loads(post({"model": "bench-8", "max_tokens": 1, "messages": []}).read())
        return str(data["content"][0]["text"])

    def stream(n: int, size: int) -> Iterator[str]:
        resp = post({"model": f"bench-{size}", "max_tokens": n, "stream": True, "messages": []})
        buf, done = b"", False
        try:
            while chunk := resp.read1(65536):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"data: {"):
                        data = json.loads(line[6:])
                        if data["type"] == "content_block_delta" and data["delta"].get("text"):
                            yield data["delta"]["text"]
            done = True
        finally:
            if not done:
                conn.close()

    return once, stream


def history_call(client: str, port: int, messages: int) -> Callable[[], str]:
    """One non-streamed request carrying a conversation of ``messages`` turns."""
    turns = [("user" if i % 2 == 0 else "assistant", f"turn {i}: a few words of history")
             for i in range(messages - 1)] + [("user", "hi")]
    if client == "missy":
        from missy_providers import Message, ProviderRegistry

        registry = ProviderRegistry.from_config({"providers": {"p": {
            "name": "openai", "model": "bench-8", "api_key": "sk-bench", "max_retries": 0,
            "base_url": f"http://127.0.0.1:{port}/v1"}}})
        provider = registry.get("p")
        conversation = [Message(role, text) for role, text in turns]
        return lambda: provider.complete(conversation, max_tokens=1).content
    if client != "raw":
        raise SystemExit(f"history: no {client!r} client")
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}

    def once() -> str:
        body = {"model": "bench-8", "max_tokens": 1,
                "messages": [{"role": role, "content": text} for role, text in turns]}
        conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        return str(json.loads(conn.getresponse().read())["choices"][0]["message"]["content"])

    return once


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def peak_rss_kib() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, fn's count)."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, count


def measure(args: argparse.Namespace) -> dict[str, Any]:
    client, case, port = args.client, args.case, args.port
    if case in ("import", "rss"):
        started = time.perf_counter()
        once, _ = build(client, port)  # imports the library and builds a client
        if case == "import":
            return {"value": (time.perf_counter() - started) * 1000, "unit": "ms"}
        return {"value": rss_kib() / 1024, "unit": "MiB"}
    if case == "history":
        call = history_call(client, port, args.messages)
        call()
        # As many calls as fill about half a second (at least 20): a short history's request
        # takes a quarter of a millisecond, and 50 of them would measure the machine's noise.
        started = time.process_time()
        probe = sum(1 for _ in range(10) if call() is not None)
        per_call = max((time.process_time() - started) / probe, 1e-6)
        calls = max(20, int(0.5 / per_call))
        wall, cpu, n = timed(lambda: sum(1 for _ in range(calls) if call() is not None))
        return {"value": cpu / n * 1e6, "unit": "client CPU µs"}  # the value is the CPU
    once, stream = build(client, port)
    once()  # the first response (warm: connection open, lazy imports done)
    if case == "cold":
        return {"value": (time.perf_counter() - STARTED) * 1000, "unit": "ms",
                "rss_mib": rss_kib() / 1024}
    if case == "requests":
        wall, cpu, n = timed(lambda: sum(1 for _ in range(1000) if once() is not None))
        return {"value": n / wall, "unit": "req/s", "cpu_us": cpu / n * 1e6}
    if case == "concurrency":
        return concurrency(client, port, args.threads)
    if case == "stream_events":
        wall, cpu, n = timed(lambda: sum(1 for _ in stream(args.events, 8)))
        assert n == args.events, n
        return {"value": wall / n * 1e6, "unit": "µs/event", "cpu_us": cpu / n * 1e6}
    if case == "stream_mb":
        started = time.perf_counter()
        received = sum(len(t.encode()) for t in stream(5000, 400))
        return {"value": received / (time.perf_counter() - started) / 1e6, "unit": "MB/s"}
    if case == "memory":
        before = peak_rss_kib()
        chars = sum(len(t) for t in stream(50_000_000 // 400, 400))
        # The answer as one Python str: its deltas hold an emoji, so 4 bytes a character.
        text = sys.getsizeof("🦅") + 4 * (chars - 1)
        return {"value": (peak_rss_kib() - before) / 1024, "unit": "MiB",
                "text_mib": text / 2**20}
    if case == "first_token":
        delays = []
        for _ in range(20):
            for text in stream(3, 32):
                delays.append((time.time_ns() - int(text[1:text.index(";")])) / 1e6)
                break
        return {"value": statistics.median(delays), "unit": "ms"}
    raise SystemExit(f"unknown case {case!r}")


def concurrency(client: str, port: int, threads: int, per_thread: int = 200) -> dict[str, Any]:
    """``threads`` threads, one shared client (raw: one connection each), ``per_thread``
    requests each; requests per second over all of them."""
    calls = [build(client, port)[0] for _ in range(threads)] if client == "raw" else \
        [build(client, port)[0]] * threads
    import socket

    opened = [0]
    connect = socket.create_connection

    def counted(*a: Any, **kw: Any) -> socket.socket:
        opened[0] += 1
        return connect(*a, **kw)

    socket.create_connection = counted  # type: ignore[assignment]
    warm = threading.Barrier(threads)

    def warm_up(call: Callable[[], str]) -> None:
        # Every thread's first requests, at once, until the pool holds what 16 concurrent
        # requests need (one request each can finish before another thread has connected).
        warm.wait()
        for _ in range(20):
            call()

    pool = [threading.Thread(target=warm_up, args=(call,)) for call in calls]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    gate = threading.Barrier(threads + 1)

    def work(call: Callable[[], str]) -> None:
        gate.wait()
        for _ in range(per_thread):
            call()

    pool = [threading.Thread(target=work, args=(call,)) for call in calls]
    for t in pool:
        t.start()
    gate.wait()
    opened[0] = 0
    started, cpu = time.perf_counter(), time.process_time()
    for t in pool:
        t.join()
    n = threads * per_thread
    return {"value": n / (time.perf_counter() - started), "unit": "req/s",
            "cpu_us": (time.process_time() - cpu) / n * 1e6, "connections": opened[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", required=True)
    parser.add_argument("--case", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--events", type=int, default=10_000, help="stream_events length")
    parser.add_argument("--threads", type=int, default=16, help="concurrency threads")
    parser.add_argument("--messages", type=int, default=5000, help="history length")
    args = parser.parse_args()
    print(json.dumps({"client": args.client, "case": args.case, **measure(args)}))


if __name__ == "__main__":
    main()
