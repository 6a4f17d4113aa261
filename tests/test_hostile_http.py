"""The HTTP core against hostile servers on raw sockets: real deadlines in every phase, no
desync on pooled connections, no duplicate POSTs, truncation caught, every failure typed.

Wall-time bounds are loose on purpose (a 1 s deadline must end the call well under 3 s,
whatever the server does); the numbers that matter live in bench/."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CANARY
from loopback import RawConnection, RawServer

from missy_providers.config import config_from_dict
from missy_providers.core.errors import (
    MissyError,
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    RequestTimeout,
    StreamClosed,
)
from missy_providers.core.h1 import ResponseReader
from missy_providers.core.http import PolicyHTTPClient, Timeouts
from missy_providers.core.policy import NetworkPolicy
from missy_providers.registry import ProviderRegistry
from missy_providers.types import Message

HI = [Message("user", "hi")]
OK = b'{"ok": true}'


def client() -> PolicyHTTPClient:
    return PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]))


def response(body: bytes = OK, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + extra + b"\r\n" + body


def provider(url: str, ptype: str = "openai", **settings: Any) -> Any:
    config = config_from_dict({"providers": {"p": {
        "name": ptype, "model": "m", "base_url": url, "api_key": CANARY, "max_retries": 0,
        **settings}}}, env={})
    return ProviderRegistry(config, client()).get("p")


def timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except BaseException as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


# --- 1. the total deadline bounds every phase -----------------------------------------------

TRICKLES: dict[str, Callable[[RawConnection], None]] = {
    "status line": lambda c: (c.read_request(), c.trickle(b"HTTP/1.1 200 OK\r\n" * 50, 0.05)),
    "headers": lambda c: (c.read_request(), c.send(b"HTTP/1.1 200 OK\r\n"),
                          c.trickle(b"X-Slow: " + b"a" * 500, 0.05)),
    "100 Continue forever": lambda c: (c.read_request(), [
        (c.send(b"HTTP/1.1 100 Continue\r\n\r\n"), time.sleep(0.05)) for _ in range(100)]),
    "chunk-size line": lambda c: (c.read_request(), c.send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), c.trickle(b"f" * 14, 0.2)),
    "trailers forever": lambda c: (c.read_request(), c.send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"),
        c.trickle(b"X-T: 1\r\n" * 1000, 0.02)),
    "body": lambda c: (c.read_request(), c.send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"), c.trickle(b"x" * 1000, 0.05)),
}


@pytest.mark.parametrize("phase", list(TRICKLES))
def test_total_deadline_bounds_every_phase(phase: str) -> None:
    with RawServer(TRICKLES[phase]) as server:
        exc, took = timed(lambda: client().request(
            "GET", server.url + "/", timeout=Timeouts(connect=1, read=0.5, total=1.0)))
    assert isinstance(exc, (RequestTimeout, ProtocolError)), exc
    assert took < 2.5, f"{phase}: {took:.2f}s"


def test_total_timeout_from_config_bounds_a_stream() -> None:
    def sse(c: RawConnection) -> None:
        c.read_request()
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(200):  # an event every 50 ms, forever as far as the client knows
            c.send(b'1e\r\ndata: {"choices":[],"x":123}\n\n\r\n')
            time.sleep(0.05)

    with RawServer(sse) as server:
        p = provider(server.url, timeout=0.5, total_timeout=1.0)
        exc, took = timed(lambda: list(p.stream(HI)))
    assert isinstance(exc, RequestTimeout) and "deadline passed" in str(exc) \
        and "total_timeout 1s for the whole call" in str(exc)
    assert took < 2.5


def test_per_call_limits_override_the_config() -> None:
    def stall(c: RawConnection) -> None:
        c.read_request()
        time.sleep(3)

    with RawServer(stall) as server:
        p = provider(server.url, timeout=30, max_retries=2)
        exc, took = timed(lambda: p.complete(HI, timeout=0.3, max_retries=0))
        assert isinstance(exc, RequestTimeout) and took < 2
        assert len(server.requests) == 1  # max_retries=0 for this call


# --- 2. a pooled connection never hands one call another's answer ---------------------------

DESYNC: dict[str, bytes] = {
    "unsolicited second response": response(b'{"n": 1}') + response(b'{"n": "stale"}'),
    "body on a 204": b"HTTP/1.1 204 No Content\r\n\r\n" + response(b'{"n": "stale"}'),
    "body on a 304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 30\r\n\r\n" +
    response(b'{"n": "stale"}'),
    "trailing garbage": response(b'{"n": 1}') + b"garbage",
}


@pytest.mark.parametrize("case", list(DESYNC))
def test_leftover_bytes_never_reach_the_next_call(case: str) -> None:
    count = [0]  # across connections

    def handler(c: RawConnection) -> None:
        while c.read_request():
            count[0] += 1
            c.send(DESYNC[case] if count[0] == 1 else response(b'{"n": "fresh"}'))

    with RawServer(handler) as server:
        http = client()
        first = http.request("GET", server.url + "/")
        if first.status == 200:
            first.json()
        time.sleep(0.05)
        second = http.request("GET", server.url + "/")
        assert second.json() == {"n": "fresh"}
        assert server.connections == 2  # the first connection was not reused


def test_early_hints_are_skipped_and_the_final_answer_read() -> None:
    def handler(c: RawConnection) -> None:
        while c.read_request():
            c.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
                   b"HTTP/1.1 100 Continue\r\n\r\n" + response(b'{"n": 2}'))

    with RawServer(handler) as server:
        http = client()
        assert [http.request("GET", server.url + "/").json() for _ in range(3)] == \
            [{"n": 2}] * 3
        assert server.connections == 1  # cleanly framed: reused


def test_too_many_informational_responses() -> None:
    def handler(c: RawConnection) -> None:
        c.read_request()
        c.send(b"HTTP/1.1 102 Processing\r\n\r\n" * 40)

    with RawServer(handler) as server, pytest.raises(ProtocolError, match="informational"):
        client().request("GET", server.url + "/")


def test_idle_connection_with_unread_bytes_is_not_reused() -> None:
    first = [True]

    def handler(c: RawConnection) -> None:
        if first[0]:
            first[0] = False
            c.read_request()
            c.send(response(b'{"n": 1}'))
            time.sleep(0.1)
            c.send(response(b'{"n": "unsolicited"}'))  # arrives while the connection is idle
        while c.read_request():
            c.send(response(b'{"n": "fresh"}'))

    with RawServer(handler) as server:
        http = client()
        assert http.request("GET", server.url + "/").json() == {"n": 1}
        time.sleep(0.3)
        assert http.request("GET", server.url + "/").json() == {"n": "fresh"}
        assert server.connections == 2


# --- 3. truncation is an error ---------------------------------------------------------------


@pytest.mark.parametrize("raw, fragment", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"short\":", "91 short of its"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}", "conflicting"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n{}", "conflicting"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}", "malformed Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", "folded"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX\r\n", "not followed by"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}", "without its last"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "before a complete response head"),
])
def test_broken_framing_is_a_protocol_error(raw: bytes, fragment: str) -> None:
    def handler(c: RawConnection) -> None:
        c.read_request()
        c.send(raw)

    with RawServer(handler) as server, pytest.raises(ProtocolError, match=fragment):
        client().request("GET", server.url + "/")


def test_openai_stream_cut_after_finish_reason_is_truncated() -> None:
    chunk = (b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},'
             b'"finish_reason":"stop"}]}\n\n')

    def handler(c: RawConnection) -> None:
        c.read_request()
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               b"Connection: close\r\n\r\n" + chunk)  # close-delimited: EOF is its end

    with RawServer(handler) as server:
        p = provider(server.url)
        with pytest.raises(ProtocolError) as info:
            p.stream(HI).response  # noqa: B018
    assert str(info.value) == (f"p: stream ended without [DONE] (truncated response); "
                               f"{len(chunk)} bytes received")
    assert info.value.partial is not None and info.value.partial.content == "Hi"


# --- 4. a request is never re-sent after the server received it -----------------------------

RECEIVED_THEN: dict[str, Callable[[RawConnection], None]] = {
    "died": lambda c: None,
    "half-closed": lambda c: c.sock.shutdown(1),
    "stalled": lambda c: time.sleep(1.5),
}


@pytest.mark.parametrize("after", list(RECEIVED_THEN))
@pytest.mark.parametrize("reused", [False, True])
def test_a_received_post_is_not_sent_twice(after: str, reused: bool) -> None:
    state = {"answered": 0}

    def handler(c: RawConnection) -> None:
        while c.read_request():
            if reused and state["answered"] == 0:
                state["answered"] += 1
                c.send(response())
                continue
            RECEIVED_THEN[after](c)
            return

    with RawServer(handler) as server:
        p = provider(server.url, timeout=0.5, max_retries=0)
        if reused:  # one answered request leaves a pooled connection to reuse
            p.client.request("POST", server.url + "/chat/completions", json={})
        before = len(server.requests)
        with pytest.raises(ProviderError):
            p.complete(HI)
        time.sleep(0.05)
        assert len(server.requests) - before == 1


def test_request_budget_one_call_with_retries_counts_every_send() -> None:
    """max_retries=2: at most three POSTs, whatever the server does after receiving them."""
    def handler(c: RawConnection) -> None:
        while c.read_request():
            c.send(response(b'{"error": {"message": "busy"}}', "503 Service Unavailable",
                            b"x-should-retry: true\r\nretry-after: 0\r\n"))

    with RawServer(handler) as server:
        p = provider(server.url, max_retries=2)
        with pytest.raises(ProviderUnavailable):
            p.complete(HI)
        assert len(server.requests) == 3


def test_a_200_whose_body_stalls_is_not_retried() -> None:
    def handler(c: RawConnection) -> None:
        while c.read_request():
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
            time.sleep(1.5)

    with RawServer(handler) as server:
        p = provider(server.url, timeout=0.4, max_retries=3)
        with pytest.raises(RequestTimeout):
            p.complete(HI)
        assert len(server.requests) == 1


# --- 5. the circuit breaker never sticks half-open -------------------------------------------


def test_breaker_probe_is_released_by_any_outcome() -> None:
    script = iter(["503"] * 2 + ["429"] * 1 + ["200"] * 50)

    def handler(c: RawConnection) -> None:
        while c.read_request():
            step = next(script)
            if step == "503":
                c.send(response(b'{"error": {"message": "down"}}', "503 Service Unavailable"))
            elif step == "429":
                c.send(response(b'{"error": {"message": "slow"}}', "429 Too Many Requests"))
            else:
                c.send(response(json.dumps({"choices": [{"message": {"content": "ok"},
                                                         "finish_reason": "stop"}]}).encode()))

    with RawServer(handler) as server:
        p = provider(server.url, circuit_breaker_threshold=2,
                     circuit_breaker_cooldown_seconds=0.2)
        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                p.complete(HI)
        assert p.breaker.state == "open"
        time.sleep(0.25)
        with pytest.raises(RateLimitError):
            p.complete(HI)  # the probe: a 429 says nothing of health, and frees the slot
        results: list[str] = []

        def call() -> None:
            try:
                results.append(p.complete(HI).content)
            except MissyError as exc:
                results.append(type(exc).__name__)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert "ok" in results and p.breaker.state == "closed"


# --- 6. every failure from a server is typed -------------------------------------------------

UNTYPED: dict[str, bytes] = {
    "deep JSON": b"[" * 100000 + b"]" * 100000,
    "huge int": b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": ' +
    b"9" * 5000 + b"}}",
    "float overflow in usage": b'{"choices": [{"message": {"content": "x"}}], "usage": '
    b'{"prompt_tokens": 1e999}}',
    "non-numeric usage": b'{"choices": [{"message": {"content": "x"}}], "usage": '
    b'{"prompt_tokens": "many"}}',
}


@pytest.mark.parametrize("case", list(UNTYPED))
def test_hostile_bodies_are_protocol_errors(case: str) -> None:
    def handler(c: RawConnection) -> None:
        c.read_request()
        c.send(response(UNTYPED[case]))

    with RawServer(handler) as server, pytest.raises(ProtocolError):
        provider(server.url).complete(HI)


@pytest.mark.parametrize("retry_after", ["9" * 5000, "nan", "-5", "1e999", "soon"])
def test_hostile_retry_after_is_ignored_not_raised(retry_after: str) -> None:
    def handler(c: RawConnection) -> None:
        c.read_request()
        c.send(response(b'{"error": {"message": "slow"}}', "429 Too Many Requests",
                        f"retry-after: {retry_after}\r\n".encode()))

    with RawServer(handler) as server, pytest.raises(RateLimitError) as info:
        provider(server.url).complete(HI)
    assert info.value.retry_after is None


def test_sse_retry_field_of_thousands_of_digits() -> None:
    def handler(c: RawConnection) -> None:
        c.read_request()
        body = (b"retry: " + b"9" * 5000 + b"\n\n" +
                b'data: {"choices":[{"index":0,"delta":{"content":"ok"},'
                b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" +
               f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    with RawServer(handler) as server:
        assert provider(server.url).stream(HI).response.content == "ok"


# --- 7. memory stays near the text's own size -----------------------------------------------


def test_many_tiny_deltas_are_joined_as_they_come() -> None:
    deltas = 100_000
    event = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    body = event * deltas + b'data: {"choices":[{"index":0,"finish_reason":"stop"}]}\n\n' \
        b"data: [DONE]\n\n"
    # Built before tracing starts: only the client's allocations are measured.
    payload = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + \
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body

    def handler(c: RawConnection) -> None:
        c.read_request()
        c.send(payload)

    with RawServer(handler) as server:
        p = provider(server.url)
        tracemalloc.start()
        try:
            stream = p.stream(HI)
            for _ in stream:
                pass
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert stream.response.content == "a" * deltas
    # A list of 100k one-character strings alone would be ~5.8 MB; the joined text is 100 kB.
    assert peak < 2_500_000, peak


def test_tool_call_count_is_capped() -> None:
    frags = b"".join(b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":%d,'
                     b'"id":"c%d","function":{"name":"f","arguments":"{}"}}]}}]}\n\n' % (i, i)
                     for i in range(1100))

    def handler(c: RawConnection) -> None:
        c.read_request()
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" +
               f"Content-Length: {len(frags)}\r\n\r\n".encode() + frags)

    with RawServer(handler) as server, pytest.raises(ProtocolError, match="more than 1024 tool"):
        list(provider(server.url).stream(HI))


# --- 8, 9. a failed stream keeps what arrived; close from another thread ---------------------


def slow_stream(c: RawConnection) -> None:
    c.read_request()
    c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}\n\n'
    c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    time.sleep(3)


def test_a_dropped_stream_keeps_its_partial_result() -> None:
    def drop(c: RawConnection) -> None:
        c.read_request()
        piece = b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
        c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: text/event-stream\r\n\r\n" + b"%x\r\n%s\r\n" % (len(piece), piece))

    with RawServer(drop) as server:
        stream = provider(server.url).stream(HI)
        with pytest.raises(ProtocolError) as info:
            for _ in stream:
                pass
        assert info.value.partial.content == "Hel"
        with pytest.raises(ProtocolError) as again:
            stream.response  # noqa: B018
        assert again.value is info.value


def test_close_from_another_thread_interrupts_the_read() -> None:
    with RawServer(slow_stream) as server:
        stream = provider(server.url, timeout=10).stream(HI)
        got: list[str] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                for text in stream:
                    got.append(text)
            except BaseException as exc:
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.2)
        assert got == ["Hel"]
        closed_at = time.monotonic()
        stream.close()
        reader.join(2)
        assert not reader.is_alive() and time.monotonic() - closed_at < 0.5
        assert len(errors) == 1 and isinstance(errors[0], StreamClosed)
        assert errors[0].partial is not None and errors[0].partial.content == "Hel"


# --- 11. framing headers match what is sent --------------------------------------------------


@pytest.mark.parametrize("ptype, stream, accept", [
    ("openai", True, "text/event-stream"), ("openai", False, "application/json"),
    ("anthropic", True, "text/event-stream"), ("anthropic", False, "application/json"),
    ("ollama", True, "application/x-ndjson"), ("ollama", False, "application/json"),
])
def test_accept_header_matches_the_framing(ptype: str, stream: bool, accept: str) -> None:
    seen: list[bytes] = []

    def handler(c: RawConnection) -> None:
        seen.append(c.read_request())
        c.send(response(b'{"error": {"message": "stop here"}}', "400 Bad Request"))

    with RawServer(handler) as server, pytest.raises(ProviderError):
        p = provider(server.url, ptype)
        p.stream(HI).response if stream else p.complete(HI)
    assert f"\r\nAccept: {accept}\r\n".encode() in seen[0]


def test_a_json_answer_to_a_streamed_request_is_read_as_an_answer() -> None:
    body = json.dumps({"id": "c", "model": "m", "choices": [
        {"index": 0, "message": {"content": "whole"}, "finish_reason": "stop"}]}).encode()

    def handler(c: RawConnection) -> None:
        c.read_request()
        c.send(response(body))

    with RawServer(handler) as server:
        stream = provider(server.url).stream(HI)
        assert list(stream) == ["whole"] and stream.response.content == "whole"


# --- the reader itself, without sockets -----------------------------------------------------


def test_reader_byte_by_byte_equals_whole() -> None:
    raw = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    whole = ResponseReader("GET")
    assert whole.feed(raw) == b"hello world" and whole.done and whole.reusable
    split = ResponseReader("GET")
    assert b"".join(split.feed(raw[i:i + 1]) for i in range(len(raw))) == b"hello world"
    assert split.done and split.reusable and split.head is not None
    assert split.head.status == 200


@pytest.mark.parametrize("raw, reusable", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"2\r\n{}\r\n0\r\n\r\n", False),
    (b"HTTP/1.1 204 No Content\r\n\r\n", True),
    (b"HTTP/1.1 204 No Content\r\n\r\nx", False),
])
def test_reader_reuse_verdicts(raw: bytes, reusable: bool) -> None:
    reader = ResponseReader("GET")
    reader.feed(raw)
    assert reader.done and reader.reusable is reusable


def test_reader_close_delimited_ends_at_eof() -> None:
    reader = ResponseReader("GET")
    assert reader.feed(b"HTTP/1.1 200 OK\r\n\r\nabc") == b"abc"
    assert not reader.done
    reader.eof()
    assert reader.done and not reader.reusable


def test_reader_head_request_has_no_body() -> None:
    reader = ResponseReader("HEAD")
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    assert reader.done and reader.reusable


def test_cli_probe_timeout_bounds_the_whole_probe(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from test_cli_commands import ROOT, env_without_keys

    with RawServer(TRICKLES["headers"]) as server:
        config = Path(tmp_path) / "c.json"
        config.write_text(json.dumps({"providers": {"o": {"name": "ollama", "model": "m",
                                                          "base_url": server.url}}}))
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "missy", "providers", "--check",
                                 "--timeout", "1", "--config", str(config)], cwd=ROOT,
                                env=env_without_keys(), capture_output=True, text=True,
                                timeout=60)
        took = time.monotonic() - started
    assert result.returncode == 1  # the default (and only) provider failed its check
    assert "timed out" in result.stdout and "the live check's timeout 1s" in result.stdout
    assert took < 4, took


def test_request_budget_worst_case_is_keys_plus_retries() -> None:
    """The documented bound: one call sends at most len(keys) + max_retries requests: every
    key once on 401/429, then the retries; several resolved addresses add none (the next is
    tried only when connecting failed, before anything was sent)."""
    def handler(c: RawConnection) -> None:
        while c.read_request():
            c.send(response(b'{"error": {"message": "slow"}}', "429 Too Many Requests",
                            b"retry-after: 0\r\nx-should-retry: true\r\n"))

    with RawServer(handler) as server:
        port = server.url.rsplit(":", 1)[1]
        config = config_from_dict({"providers": {"p": {
            "name": "openai", "model": "m", "base_url": f"http://api.example.com:{port}",
            "api_keys": ["sk-key-one-123456", "sk-key-two-123456", "sk-key-three-12345"],
            "max_retries": 2}}, "network": {"allowed_cidrs": ["127.0.0.0/8"]}}, env={})
        resolver = lambda h, p: ["127.0.0.1", "127.0.0.2", "127.0.0.3"]  # noqa: E731
        http = PolicyHTTPClient(NetworkPolicy(allowed_hosts=[f"api.example.com:{port}"],
                                              allowed_cidrs=["127.0.0.0/8"]), resolver=resolver)
        p = ProviderRegistry(config, http).get("p")
        p.sleep = lambda s: None
        with pytest.raises(RateLimitError):
            p.complete(HI)
        assert len(server.requests) == 3 + 2

        def close_after_reading(c: RawConnection) -> None:
            c.read_request()

        server.handler = close_after_reading
        http.close()  # the pooled connection still talks to the old handler
        before = len(server.requests)
        with pytest.raises(ProviderUnavailable):
            p.complete(HI)
        assert len(server.requests) - before == 1 + 2  # not 3 addresses x 3 attempts
