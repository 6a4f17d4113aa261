"""Resilience: the fault matrix against loopback servers, retries, key rotation, fallback,
client-side limits, and a canary key pushed through every error path."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CANARY
from loopback import Counter, Exchange, LoopbackServer, RefusingPort, wait_until

from missy_providers.config import config_from_dict
from missy_providers.core.errors import (
    AllProvidersFailed,
    AuthenticationError,
    ContextLengthError,
    MissyError,
    OverloadedError,
    PolicyViolation,
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    RequestTimeout,
)
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.limits import CircuitBreaker, RateLimiter
from missy_providers.providers.base import BaseProvider
from missy_providers.registry import ProviderRegistry
from missy_providers.retry import RetryPolicy, is_retryable
from missy_providers.types import Message

HI = [Message("user", "hi")]
OK_BODY = {"type": "message", "id": "m", "model": "claude-x", "stop_reason": "end_turn",
           "content": [{"type": "text", "text": "ok"}],
           "usage": {"input_tokens": 1, "output_tokens": 1}}
STREAM_START = ('event: message_start\ndata: {"type":"message_start","message":{"id":"m",'
                '"model":"x","content":[],"usage":{"input_tokens":1}}}\n\n'
                'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
                '"content_block":{"type":"text","text":""}}\n\n'
                'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                '"delta":{"type":"text_delta","text":"Hel"}}\n\n')


def anthropic(port: int, **settings: Any) -> BaseProvider:
    config = config_from_dict({"providers": {"p": {
        "name": "anthropic", "model": "m", "base_url": f"http://127.0.0.1:{port}",
        "api_key": CANARY, "timeout": 1, **settings}}}, env={})
    registry = ProviderRegistry(config, PolicyHTTPClient(NetworkPolicy(
        allowed_hosts=["127.0.0.1"])))
    return registry.get("p")


def sequence(*handlers: Callable[[Exchange], None]) -> Callable[[Exchange], None]:
    """The n-th request gets the n-th handler (the last one repeats)."""
    count = [0]

    def handler(ex: Exchange) -> None:
        i = min(count[0], len(handlers) - 1)
        count[0] += 1
        handlers[i](ex)

    return handler


def ok(ex: Exchange) -> None:
    ex.json(200, OK_BODY)


def status(code: int, headers: tuple[tuple[str, str], ...] = ()) -> Callable[[Exchange], None]:
    return lambda ex: ex.json(code, {"type": "error", "error": {"type": "x", "message": "m"}},
                              headers)


def close_after_headers(ex: Exchange) -> None:
    ex.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n")
    ex.hang_up()


def close_mid_stream(ex: Exchange) -> None:
    ex.start_chunked()
    ex.chunk(STREAM_START)
    ex.hang_up()


def stall_before_headers(ex: Exchange) -> None:
    time.sleep(2.5)


def stall_mid_stream(ex: Exchange) -> None:
    ex.start_chunked()
    ex.chunk(STREAM_START)
    time.sleep(2.5)


def malformed_json(ex: Exchange) -> None:
    ex.send(200, b'{"type": "message", "content": [')


def malformed_sse(ex: Exchange) -> None:
    ex.start_chunked()
    ex.chunk("event: message_start\ndata: {not json at all\n\n")
    ex.end_chunked()


def truncated_chunked(ex: Exchange) -> None:
    ex.start_chunked(content_type="application/json")
    ex.raw(b"400\r\n" + json.dumps(OK_BODY).encode()[:50])
    ex.hang_up()


def error_in_200_stream(ex: Exchange) -> None:
    ex.start_chunked()
    ex.chunk(STREAM_START + 'event: error\ndata: {"type":"error","error":{"type":'
             '"overloaded_error","message":"Overloaded"}}\n\n')
    ex.end_chunked()


def huge_content_length(ex: Exchange) -> None:
    ex.raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
           b"Content-Length: 2147483648\r\n\r\n{")
    time.sleep(0.3)
    ex.hang_up()


def never_ending_line(ex: Exchange) -> None:
    ex.start_chunked()
    ex.chunk("data: ")
    block = b"x" * 65536
    for _ in range(80):  # 5 MiB without a newline: over the 4 MiB line bound
        ex.chunk(block)
    ex.end_chunked()


# (row id, handlers, streamed?, expected error or None for success, requests seen, max seconds)
FAULTS: list[tuple[str, tuple[Callable[[Exchange], None], ...], bool, type | None, int, float]] = [
    ("server closes after headers", (close_after_headers,), False, ProtocolError, 1, 3),
    ("server closes mid-stream", (close_mid_stream,), True, ProtocolError, 1, 3),
    ("stalls before headers", (stall_before_headers,), False, RequestTimeout, 3, 8),
    ("stalls mid-stream", (stall_mid_stream,), True, RequestTimeout, 1, 3),
    ("malformed JSON body", (malformed_json,), False, ProtocolError, 1, 3),
    ("malformed SSE", (malformed_sse,), True, ProtocolError, 1, 3),
    ("truncated chunked encoding", (truncated_chunked,), False, ProtocolError, 1, 3),
    ("429 retry-after 1, then success", (status(429, (("retry-after", "1"),)), ok), False,
     None, 2, 4),
    ("529 then success", (status(529), ok), False, None, 2, 3),
    ("500 x3 then failure", (status(500),), False, ProviderUnavailable, 3, 5),
    ("503 then 502 then success", (status(503), status(502), ok), False, None, 3, 5),
    ("200 stream carrying an error event", (error_in_200_stream,), True, OverloadedError, 1, 3),
    ("2 GB content-length", (huge_content_length,), False, ProtocolError, 1, 3),
    ("never-ending line", (never_ending_line,), True, ProtocolError, 1, 10),
    ("400 is never retried", (status(400),), False, ProviderError, 1, 3),
    ("401 is never retried", (status(401),), False, AuthenticationError, 1, 3),
    ("403 is never retried", (status(403),), False, AuthenticationError, 1, 3),
    ("404 is never retried", (status(404),), False, ProviderError, 1, 3),
    ("x-should-retry: false wins", (status(503, (("x-should-retry", "false"),)),), False,
     ProviderUnavailable, 1, 3),
    ("retry-after too long is not slept", (status(429, (("retry-after", "3600"),)),), False,
     RateLimitError, 1, 3),
]


@pytest.mark.parametrize(("handlers", "streamed", "error", "seen", "limit"),
                         [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_fault_matrix(server: LoopbackServer, handlers: tuple[Callable[[Exchange], None], ...],
                      streamed: bool, error: type | None, seen: int, limit: float) -> None:
    server.reset(sequence(*handlers))
    provider = anthropic(server.port)
    started = time.monotonic()
    if error is None:
        assert provider.complete(HI).content == "ok"
    else:
        with pytest.raises(error) as info:
            if streamed:
                _ = provider.stream(HI).response
            else:
                provider.complete(HI)
        assert type(info.value) is error or error is ProviderError
    elapsed = time.monotonic() - started
    assert elapsed < limit, f"took {elapsed:.2f}s"
    assert len(server.requests) == seen


def test_retry_after_is_honoured(server: LoopbackServer) -> None:
    server.reset(sequence(status(429, (("retry-after", "1"),)), ok))
    provider = anthropic(server.port)
    started = time.monotonic()
    provider.complete(HI)
    assert 0.95 <= time.monotonic() - started < 3


def test_refused_connection_is_retried_then_fails_in_bounded_time() -> None:
    closed = RefusingPort()
    port = closed.port
    provider = anthropic(port)
    slept: list[float] = []
    provider.sleep = slept.append
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="refused"):
        provider.complete(HI)
    assert time.monotonic() - started < 2
    assert len(slept) == 2 and all(0 <= s <= 1.0 for s in slept)  # jittered backoff, twice


def test_stream_is_never_retried_after_text_reached_the_caller(server: LoopbackServer) -> None:
    server.reset(close_mid_stream)
    provider = anthropic(server.port)
    stream = provider.stream(HI)
    texts = []
    with pytest.raises(ProtocolError):
        for text in stream:
            texts.append(text)
    assert texts == ["Hel"] and len(server.requests) == 1


def test_policy_denial_is_never_retried() -> None:
    target = Counter()
    try:
        config = config_from_dict({"providers": {"p": {
            "name": "anthropic", "model": "m", "api_key": "k",
            "base_url": f"http://127.0.0.1:{target.port}"}}}, env={})
        provider = ProviderRegistry(config, PolicyHTTPClient(NetworkPolicy())).get("p")
        with pytest.raises(PolicyViolation):
            provider.complete(HI)
        time.sleep(0.1)
        assert target.accepted == 0
    finally:
        target.stop()


def test_backoff_numbers() -> None:
    policy = RetryPolicy(2)
    assert [policy.delay(n, None, 1.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.delay(3, None, 0.25) == 1.0
    assert policy.delay(0, None, 0.0) == 0.0
    assert policy.delay(0, 7.5, 0.9) == 7.5
    assert policy.delay(0, 61, 0.9) is None
    quota = RateLimitError("out of quota", status=429, error_type="insufficient_quota")
    assert not is_retryable(quota)
    assert is_retryable(RateLimitError("slow", status=429))
    assert not is_retryable(ValueError("not ours"))


# --- key rotation -----------------------------------------------------------------------------


def keyed(bad: set[str]) -> Callable[[Exchange], None]:
    def handler(ex: Exchange) -> None:
        if ex.req.headers.get("x-api-key") in bad:
            ex.json(429, {"type": "error", "error": {"type": "rate_limit_error",
                                                     "message": "slow down"}})
        else:
            ex.json(200, OK_BODY)
    return handler


def test_429_rotates_to_the_next_key_at_once(server: LoopbackServer) -> None:
    server.reset(keyed({"k1"}))
    provider = anthropic(server.port, api_key=None, api_keys=["k1", "k2", "k3"])
    provider.sleep = lambda s: pytest.fail("rotation must not wait")
    assert provider.complete(HI).content == "ok"
    assert [r.headers["x-api-key"] for r in server.requests] == ["k1", "k2"]
    assert provider.complete(HI).content == "ok"
    assert server.requests[-1].headers["x-api-key"] == "k2"  # the bad key stays rotated away


def test_401_tries_each_key_once_then_fails(server: LoopbackServer) -> None:
    server.reset(lambda ex: ex.json(401, {"error": {"type": "authentication_error",
                                                    "message": "bad key"}}))
    provider = anthropic(server.port, api_key=None, api_keys=["k1", "k2", "k3"])
    with pytest.raises(AuthenticationError):
        provider.complete(HI)
    assert sorted(r.headers["x-api-key"] for r in server.requests) == ["k1", "k2", "k3"]


def _socket_fds() -> int:
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts sockets via /proc")
def test_8_threads_200_calls_3_keys_one_always_429(server: LoopbackServer) -> None:
    server.reset(keyed({"bad"}))
    before = _socket_fds()
    provider = anthropic(server.port, api_key=None, api_keys=["bad", "good1", "good2"])
    failures: list[BaseException] = []

    def work() -> None:
        for _ in range(200):
            try:
                assert provider.complete(HI).content == "ok"
            except BaseException as exc:  # collected and asserted below
                failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    bad_hits = sum(r.headers["x-api-key"] == "bad" for r in server.requests)
    assert len(server.requests) - bad_hits == 1600
    assert bad_hits <= 8  # rotated away once (a racing thread or two may still have used it)
    provider.client.close()
    assert wait_until(lambda: _socket_fds() <= before)


# --- fallback ---------------------------------------------------------------------------------


def two_provider_registry(first_port: int, second_port: int, **top: Any) -> ProviderRegistry:
    config = config_from_dict({"providers": {
        "primary": {"name": "anthropic", "model": "big", "fast_model": "small",
                    "base_url": f"http://127.0.0.1:{first_port}", "api_key": "k",
                    "max_retries": 0, "timeout": 0.5},
        "backup": {"name": "anthropic", "model": "other",
                   "base_url": f"http://127.0.0.1:{second_port}", "api_key": "k",
                   "max_retries": 0},
    }, **top}, env={})
    return ProviderRegistry(config, PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"])))


@pytest.mark.parametrize(("failure", "moves_on"), [
    (status(529), True), (status(503), True), (status(429), True),
    (stall_before_headers, True),
    (status(401), False), (status(400), False),
    (lambda ex: ex.json(400, {"error": {"type": "invalid_request_error",
                                        "message": "prompt is too long"}}), False),
])
def test_fallback(server: LoopbackServer, failure: Callable[[Exchange], None],
                  moves_on: bool) -> None:
    backup = LoopbackServer()
    try:
        backup.reset(ok)
        server.reset(failure)
        registry = two_provider_registry(server.port, backup.port,
                                         fallback=["primary", "backup"])
        if moves_on:
            assert registry.complete(HI).content == "ok"
            assert len(backup.requests) == 1
        else:
            with pytest.raises((AuthenticationError, ContextLengthError, ProviderError)):
                registry.complete(HI)
            assert backup.requests == []
    finally:
        backup.stop()


def test_fallback_all_fail_and_policy_denial_stops(server: LoopbackServer) -> None:
    server.reset(status(503))
    registry = two_provider_registry(server.port, server.port)
    with pytest.raises(AllProvidersFailed) as info:
        registry.complete(HI, providers=["primary", "backup"])
    assert [type(e) for e in info.value.errors] == [ProviderUnavailable, ProviderUnavailable]
    registry.client.policy = NetworkPolicy()
    with pytest.raises(PolicyViolation):
        registry.complete(HI, providers=["primary", "backup"])


def test_fallback_tier_routing(server: LoopbackServer) -> None:
    server.reset(ok)
    registry = two_provider_registry(server.port, server.port)
    registry.complete([Message("user", "what is up")], tier="auto")
    registry.complete(HI, tier="premium")
    registry.complete(HI, tier="fast", model="explicit")
    assert [r.json()["model"] for r in server.requests] == ["small", "big", "explicit"]


def test_weighted_order() -> None:
    """The first of a chain stays first; the others take turns by weight (Missy's smooth
    weighted round robin: 3:1 is a a b a a a b a), weight 0 last; weight defaults to 1."""
    config = config_from_dict({"providers": {
        "a": {"name": "ollama", "model": "m", "weight": 3},
        "b": {"name": "ollama", "model": "m", "weight": 1},
        "c": {"name": "ollama", "model": "m"},
        "z": {"name": "ollama", "model": "m", "weight": 0}}}, env={})
    registry = ProviderRegistry(config)
    orders = [registry.fallback_order(["z", "a", "b"]) for _ in range(8)]
    assert [o[1] for o in orders] == list("aabaaaba")
    assert all(o == ["z", "a", "b"] or o == ["z", "b", "a"] for o in orders)
    assert registry.fallback_order(["a", "z", "b", "c"]) == ["a", "b", "c", "z"]  # 0 last
    equal = ProviderRegistry(config_from_dict({"providers": {
        n: {"name": "ollama", "model": "m"} for n in "pqr"}, "fallback": ["p", "q", "r"]},
        env={}))
    assert [equal.fallback_order() for _ in range(3)] == [["p", "q", "r"], ["p", "r", "q"],
                                                          ["p", "q", "r"]]
    zeros = ProviderRegistry(config_from_dict({"providers": {
        n: {"name": "ollama", "model": "m", "weight": 0} for n in "xy"}}, env={}))
    assert zeros.fallback_order(["x", "y"]) == ["x", "y"]  # every one 0: listed order


# --- client-side limits -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_limiter_requests_per_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter("p", requests_per_minute=60, tokens_per_minute=0, max_wait_seconds=5,
                          clock=clock, sleep=clock.sleep)
    for _ in range(60):
        limiter.acquire(0)
    assert clock.now == 1000.0  # a full bucket: no wait
    limiter.acquire(0)
    assert clock.now == pytest.approx(1001.0)  # then one a second
    limiter2 = RateLimiter("p", requests_per_minute=1, tokens_per_minute=0, max_wait_seconds=5,
                           clock=clock, sleep=clock.sleep)
    limiter2.acquire(0)
    with pytest.raises(RateLimitError, match="max_wait_seconds=5"):
        limiter2.acquire(0)


def test_rate_limiter_tokens_settle() -> None:
    clock = FakeClock()
    limiter = RateLimiter("p", requests_per_minute=0, tokens_per_minute=600,
                          max_wait_seconds=30, clock=clock, sleep=clock.sleep)
    limiter.acquire(100)
    limiter.settle(100, 700)  # the answer was long: 600 more tokens used
    limiter.acquire(60)  # balance is -100: wait for 160 tokens at 10/s
    assert clock.now == pytest.approx(1016.0)


def test_circuit_breaker_opens_and_probes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("p", threshold=3, cooldown=30, clock=clock)
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(ProviderUnavailable, match="circuit open after 3 consecutive failures"):
        breaker.before_call()
    clock.now += 30
    assert breaker.state == "half-open"
    breaker.before_call()  # the probe
    with pytest.raises(ProviderUnavailable):
        breaker.before_call()  # only one probe at a time
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 30
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()


def test_circuit_breaker_in_the_provider(server: LoopbackServer) -> None:
    server.reset(status(503))
    provider = anthropic(server.port, max_retries=0, circuit_breaker_threshold=2,
                         circuit_breaker_cooldown_seconds=60)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            provider.complete(HI)
    with pytest.raises(ProviderUnavailable, match="circuit open"):
        provider.complete(HI)
    assert len(server.requests) == 2  # the open circuit sent nothing


# --- secrets ----------------------------------------------------------------------------------

CANARY2 = CANARY + "-two"


def echo_key(code: int) -> Callable[[Exchange], None]:
    def handler(ex: Exchange) -> None:
        key = ex.req.headers.get("x-api-key", "")
        ex.json(code, {"type": "error", "error": {"type": "x", "message": f"bad key {key}"}},
                [("x-echo", key)])
    return handler


def test_canary_key_appears_nowhere(server: LoopbackServer,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    audit: list[dict[str, Any]] = []
    config = config_from_dict({"providers": {"p": {
        "name": "anthropic", "model": "m", "base_url": f"http://127.0.0.1:{server.port}",
        "api_keys": [CANARY, CANARY2], "max_retries": 1, "timeout": 0.5,
        "circuit_breaker_threshold": 0}}}, env={})
    client = PolicyHTTPClient(NetworkPolicy(allowed_hosts=["127.0.0.1"]), audit=audit.append)
    registry = ProviderRegistry(config, client)
    provider = registry.get("p")
    provider.sleep = lambda s: None
    seen: list[BaseException] = []
    paths: list[Callable[[Exchange], None]] = [
        echo_key(401), echo_key(403), echo_key(429), echo_key(500), echo_key(529),
        echo_key(400), echo_key(404), stall_before_headers, malformed_json, close_after_headers,
        lambda ex: ex.send(302, b"", [("Location", f"http://evil.example/?k={CANARY}")]),
        error_in_200_stream, malformed_sse,
    ]
    for handler in paths:
        server.reset(handler)
        for call in (lambda: provider.complete(HI), lambda: provider.stream(HI).response):
            with pytest.raises(MissyError) as info:
                call()
            seen.append(info.value)
    client.policy = NetworkPolicy()
    with pytest.raises(PolicyViolation) as denied:
        provider.complete(HI)
    seen.append(denied.value)
    shown = [caplog.text, json.dumps(audit), repr(registry), repr(provider),
             repr(provider.keys), repr(config), *map(str, seen), *map(repr, seen),
             *(str(getattr(e, "location", "")) for e in seen)]
    for text in shown:
        assert CANARY not in text
    assert any("[REDACTED]" in str(e) for e in seen)
    assert len(seen) == 2 * len(paths) + 1
