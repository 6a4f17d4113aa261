"""Call events for operators, the JSONL call log, and the asyncio API (plain asyncio.run: the
test dependency is pytest alone), against loopback servers."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY
from loopback import Exchange, LoopbackServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import AllProvidersFailed, StreamClosed
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.events import CallEvent
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message

PROMPT = "a prompt that must never appear in an event"
HI = [Message("user", PROMPT)]
OK = {"id": "c", "model": "m", "choices": [{"index": 0, "message": {"content": "ok"},
                                            "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
STREAM = ('data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
          'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"lo"},'
          '"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


def registry(server: LoopbackServer, events: list[CallEvent] | None = None,
             **extra: Any) -> ProviderRegistry:
    providers = extra.pop("providers", None) or {"p": {
        "name": "openai", "model": "m", "base_url": server.url, "api_key": CANARY,
        "max_retries": 1}}
    config = config_from_dict({"providers": providers, **extra}, env={})
    reg = ProviderRegistry(config, PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"])),
                           on_event=None if events is None else events.append)
    for p in reg._providers.values():
        p.sleep = lambda s: None
    return reg


def ok(ex: Exchange) -> None:
    ex.json(200, OK, [("x-request-id", "req-42")])


def stream(ex: Exchange) -> None:
    ex.start_chunked(headers=[("x-request-id", "req-43")])
    for piece in STREAM.split("\n\n")[:-1]:
        ex.chunk(piece + "\n\n")
    ex.end_chunked()


def types(events: list[CallEvent]) -> list[str]:
    return [e.type for e in events]


def assert_nothing_secret(events: list[CallEvent]) -> None:
    text = json.dumps([e.as_dict() for e in events])
    assert PROMPT not in text and CANARY not in text and "Hello" not in text


def test_plain_call(server: LoopbackServer) -> None:
    server.reset(ok)
    events: list[CallEvent] = []
    registry(server, events).get("p").complete(HI)
    assert types(events) == ["call_started", "attempt", "call_finished"]
    started, attempt, done = events
    assert started.fields == {"model": "m", "tier": None, "stream": False, "session_id": None,
                              "task_id": None}
    assert attempt.fields == {"number": 1, "key_index": 0, "host": f"127.0.0.1:{server.port}"}
    assert done.fields["request_id"] == "req-42" and done.fields["attempts"] == 1
    assert done.fields["usage"]["total_tokens"] == 4 and done.fields["stop_reason"] == "stop"
    assert len({e.call_id for e in events}) == 1
    assert_nothing_secret(events)


def test_streamed_call(server: LoopbackServer) -> None:
    server.reset(stream)
    events: list[CallEvent] = []
    s = registry(server, events).get("p").stream(HI)
    assert "".join(s) == "Hello"
    assert types(events) == ["call_started", "attempt", "first_token", "call_finished"]
    assert events[0].fields["stream"] is True and events[2].fields["ms"] >= 0
    assert events[-1].fields["request_id"] == "req-43"
    assert_nothing_secret(events)


def test_retry_after_529(server: LoopbackServer) -> None:
    calls = [0]

    def handler(ex: Exchange) -> None:
        calls[0] += 1
        if calls[0] == 1:
            ex.json(529, {"error": {"type": "overloaded_error", "message": "busy"}})
        else:
            ok(ex)

    server.reset(handler)
    events: list[CallEvent] = []
    registry(server, events).get("p").complete(HI)
    assert types(events) == ["call_started", "attempt", "retry", "attempt", "call_finished"]
    assert events[2].fields["reason"] == "HTTP 529"
    assert events[3].fields["number"] == 2 and events[4].fields["attempts"] == 2


def test_key_rotation_on_429(server: LoopbackServer) -> None:
    def handler(ex: Exchange) -> None:
        if ex.req.headers["authorization"].endswith("first-key-123456"):
            ex.json(429, {"error": {"message": "slow down"}})
        else:
            ok(ex)

    server.reset(handler)
    events: list[CallEvent] = []
    reg = registry(server, events, providers={"p": {
        "name": "openai", "model": "m", "base_url": server.url, "max_retries": 0,
        "api_keys": ["sk-first-key-123456", "sk-second-key-12345"]}})
    reg.get("p").complete(HI)
    assert types(events) == ["call_started", "attempt", "key_rotated", "attempt",
                             "call_finished"]
    assert events[2].fields == {"from_index": 0, "to_index": 1, "why": "HTTP 429"}
    assert [e.fields["key_index"] for e in events if e.type == "attempt"] == [0, 1]
    assert_nothing_secret(events)


def test_fallback_to_a_second_provider(server: LoopbackServer) -> None:
    def handler(ex: Exchange) -> None:
        if ex.req.path.startswith("/down"):
            ex.json(503, {"error": {"message": "down"}})
        else:
            ok(ex)

    server.reset(handler)
    events: list[CallEvent] = []
    reg = registry(server, events, providers={
        "a": {"name": "openai", "model": "m", "base_url": server.url + "/down",
              "api_key": CANARY, "max_retries": 0},
        "b": {"name": "openai", "model": "m2", "base_url": server.url, "api_key": CANARY}},
        fallback=["a", "b"])
    assert reg.complete(HI, tier="fast").content == "ok"
    assert [(e.provider, e.type) for e in events] == [
        ("a", "call_started"), ("a", "attempt"), ("a", "call_failed"), ("a", "fallback"),
        ("b", "call_started"), ("b", "attempt"), ("b", "call_finished")]
    assert events[3].fields == {"to_provider": "b", "error_type": "ProviderUnavailable"}
    assert events[0].fields["tier"] == "fast"


def test_a_raising_hook_never_breaks_the_call(server: LoopbackServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    server.reset(ok)
    reg = registry(server)

    def broken(event: CallEvent) -> None:
        raise RuntimeError("hook bug")

    reg.subscribe(broken)
    seen: list[CallEvent] = []
    unsubscribe = reg.subscribe(seen.append)
    assert reg.get("p").complete(HI).content == "ok"
    assert len(seen) == 3 and "call event hook" in caplog.text
    unsubscribe()
    reg.get("p").complete(HI)
    assert len(seen) == 3


def test_no_listener_no_events_built(server: LoopbackServer) -> None:
    server.reset(ok)
    reg = registry(server)
    assert not reg.hooks and reg.get("p").complete(HI).content == "ok"


def test_jsonl_call_log_under_8_threads(server: LoopbackServer, tmp_path: Path) -> None:
    server.reset(ok)
    log_file = tmp_path / "calls.jsonl"
    reg = registry(server, observability={"call_log": str(log_file)})
    threads = [threading.Thread(target=lambda: [reg.get("p").complete(HI) for _ in range(25)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = log_file.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole JSON: none interleaved
    assert len(records) == 8 * 25 * 3
    assert {r["type"] for r in records} == {"call_started", "attempt", "call_finished"}
    assert len({r["call_id"] for r in records}) == 200
    assert oct(log_file.stat().st_mode & 0o777) == "0o600"
    assert PROMPT not in log_file.read_text() and CANARY not in log_file.read_text()


# --- asyncio ----------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_async_complete_stream_and_fallback(server: LoopbackServer) -> None:
    def handler(ex: Exchange) -> None:
        if ex.req.path.startswith("/down"):
            ex.json(503, {"error": {"message": "down"}})
        elif json.loads(ex.req.body).get("stream"):
            stream(ex)
        else:
            ok(ex)

    server.reset(handler)
    reg = registry(server, providers={
        "a": {"name": "openai", "model": "m", "base_url": server.url + "/down",
              "api_key": CANARY, "max_retries": 0},
        "b": {"name": "openai", "model": "m", "base_url": server.url, "api_key": CANARY}},
        fallback=["a", "b"])

    async def main() -> tuple[Any, ...]:
        b = reg.get("b")
        one = await b.acomplete(HI)
        many = await asyncio.gather(*(b.acomplete(HI) for _ in range(20)))
        texts = []
        async with b.astream(HI) as s:
            async for text in s:
                texts.append(text)
        events = []
        async with b.astream(HI) as s:
            events = [e.type async for e in s.events()]
        fell_back = await reg.acomplete(HI)
        return one, many, texts, s.response, events, fell_back, await b.ais_available()

    one, many, texts, final, events, fell_back, available = asyncio.run(main())
    assert one.content == "ok" and [m.content for m in many] == ["ok"] * 20
    assert texts == ["Hel", "lo"] and final.content == "Hello"
    assert events == ["text", "text", "done"]
    assert fell_back.content == "ok" and available is True
    with pytest.raises(AllProvidersFailed):
        asyncio.run(reg.acomplete(HI, providers=["a"]))
    reg.close()


def test_cancelling_a_task_closes_its_connection_and_frees_the_thread(
        server: LoopbackServer) -> None:
    release = threading.Event()

    def slow(ex: Exchange) -> None:
        if json.loads(ex.req.body).get("stream"):
            ex.start_chunked()
            ex.chunk('data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n')
        release.wait(5)  # the server stalls; only a client-side cancel ends the call fast

    server.reset(slow)
    reg = registry(server, providers={"p": {"name": "openai", "model": "m",
                                            "base_url": server.url, "api_key": CANARY,
                                            "timeout": 30, "max_retries": 0}})
    p = reg.get("p")
    threads_before, fds_before = threading.active_count(), open_fds()

    async def cancel_complete() -> float:
        task = asyncio.create_task(p.acomplete(HI))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    async def cancel_stream() -> tuple[list[str], float]:
        got: list[str] = []

        async def consume() -> None:
            async with p.astream(HI) as s:
                async for text in s:
                    got.append(text)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return got, time.monotonic() - started

    assert asyncio.run(cancel_complete()) < 0.1
    got, took = asyncio.run(cancel_stream())
    assert got == ["Hel"] and took < 0.5
    deadline = time.monotonic() + 2
    while p.client.executor()._work_queue.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)
    reg.close()  # shuts the worker pool down: every thread it started has ended
    release.set()
    time.sleep(0.1)
    assert threading.active_count() <= threads_before
    assert open_fds() <= fds_before  # the cancelled calls' sockets are closed


def test_a_cancelled_scope_refuses_to_start() -> None:
    from missy_providers.core.wire import CANCEL_SCOPE, CancelScope

    scope = CancelScope()
    scope.cancel()
    token = CANCEL_SCOPE.set(scope)
    try:
        server = LoopbackServer()
        server.reset(ok)
        client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))
        with pytest.raises(StreamClosed, match="cancelled"):
            client.request("GET", server.url + "/")
        server.stop()
    finally:
        CANCEL_SCOPE.reset(token)


def test_asyncio_is_not_imported_with_the_package() -> None:
    import subprocess
    import sys

    code = ("import sys, missy_providers, missy_providers.registry, "
            "missy_providers.providers.openai; print('asyncio' in sys.modules, "
            "'concurrent.futures' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True).stdout
    assert out.split() == ["False", "False"]
