"""One benchmark measurement in a fresh process; prints one JSON object.

    python bench/run.py --client missy --case requests --port 8080

Clients speak to bench/fake_server.py: ``missy`` and ``raw``/``openai``/``litellm`` use the
OpenAI wire format, ``missy-anthropic`` and ``anthropic`` the Anthropic one. ``raw`` is a
plain ``http.client`` loop: the floor any client pays.

Cases: ``import`` (the library's import, timed in-process), ``rss`` (KiB resident after
import), ``requests`` (non-streamed requests/s, 500 requests, client reused), ``stream_events``
(µs per event over a 5,000-event stream), ``stream_mb`` (MB/s over a 2 MB stream),
``first_token`` (ms from the server sending the first delta to the caller holding it; median
of 20), ``sse_decode`` (MB/s of the client's own SSE decoder over 10 MB in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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

    conn = http.client.HTTPConnection("127.0.0.1", port)
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


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(client: str, case: str, port: int) -> tuple[float, str]:
    if case in ("import", "rss"):
        started = time.perf_counter()
        once, _ = build(client, port)  # imports the library and builds a client
        if case == "import":
            return (time.perf_counter() - started) * 1000, "ms"
        return rss_kib() / 1024, "MiB"
    once, stream = build(client, port)
    once()  # warm: connection open, lazy imports done
    if case == "requests":
        started = time.perf_counter()
        for _ in range(500):
            once()
        return 500 / (time.perf_counter() - started), "req/s"
    if case == "stream_events":
        started = time.perf_counter()
        count = sum(1 for _ in stream(5000, 8))
        assert count == 5000, count
        return (time.perf_counter() - started) / 5000 * 1e6, "µs/event"
    if case == "stream_mb":
        started = time.perf_counter()
        received = sum(len(t.encode()) for t in stream(5000, 400))
        return received / (time.perf_counter() - started) / 1e6, "MB/s"
    if case == "first_token":
        delays = []
        for _ in range(20):
            for text in stream(3, 32):
                delays.append((time.time_ns() - int(text[1:text.index(";")])) / 1e6)
                break
        return statistics.median(delays), "ms"
    raise SystemExit(f"unknown case {case!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", required=True)
    parser.add_argument("--case", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    value, unit = measure(args.client, args.case, args.port)
    print(json.dumps({"client": args.client, "case": args.case, "value": value, "unit": unit}))


if __name__ == "__main__":
    main()
