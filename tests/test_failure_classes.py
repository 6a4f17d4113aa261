"""Every provider failure has its class in ``.failure`` and says it in words: the words Missy's
recovery looks for in ``str(exc).lower()`` (survey of Missy's surface, section 4: content
policy, then authentication, then rate limit, then timeout; anything else is "unknown", which
falls back). Each failure is made for real against a loopback server where it can be."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from loopback import Exchange, LoopbackServer, RefusingPort

from missy_providers.config import config_from_dict
from missy_providers.core.errors import (
    ContentRefused,
    MissyError,
    ProviderError,
    RequestTimeout,
)
from missy_providers.core.http import PolicyHTTPClient
from missy_providers.core.policy import NetworkPolicy
from missy_providers.providers.error_mapping import classify_error, classify_stream_error
from missy_providers.registry import ProviderRegistry

# The words Missy's providers/health.py matches, by class, in the order it tries them: the
# facts of its behaviour, restated as data for this test.
MISSY_MARKERS = (
    ("content_policy", ("flagged for possible", "cybersecurity risk", "content policy",
                        "content_policy", "trusted access", "usage policies", "safety system",
                        "content management policy")),
    ("auth", ("authentication failed", "unauthorized", "invalid api key",
              "invalid x-api-key")),
    ("rate_limit", ("rate limit", "rate limited", "429", "too many requests")),
    ("timeout", ("timed out", "timeout")),
)
# Our classes Missy has a name for; the others are "unknown" to it (it falls back on them).
MISSY_KNOWS = {"auth", "rate_limit", "timeout", "content_policy"}


def missy_class(exc: BaseException) -> str:
    message = str(exc).lower()
    return next((cls for cls, words in MISSY_MARKERS if any(w in message for w in words)),
                "unknown")


def provider(server: LoopbackServer, ptype: str = "anthropic", **settings: Any) -> Any:
    base = server.url + ("/v1" if ptype == "openai" else "")
    config = config_from_dict({"providers": {"p": {
        "name": ptype, "model": "m", "base_url": base, "api_key": "sk-test-0123456789",
        "max_retries": 0, **settings}}}, env={})
    return ProviderRegistry(config, PolicyHTTPClient(
        NetworkPolicy(allowed_hosts=["127.0.0.1"]))).provider("p")


def answer(status: int, error_type: str, message: str) -> Callable[[Exchange], None]:
    return lambda ex: ex.json(status, {"type": "error", "error": {"type": error_type,
                                                                  "message": message}})


def stall(ex: Exchange) -> None:
    time.sleep(1.5)
    ex.json(200, {})


LIVE = [
    # (what, handler, settings, failure)
    ("401", answer(401, "authentication_error", "invalid x-api-key"), {}, "auth"),
    ("403", answer(403, "permission_error", "not allowed for this key"), {}, "auth"),
    ("no key", None, {"api_key": None}, "auth"),
    ("429", answer(429, "rate_limit_error", "Number of request tokens has exceeded your "
                   "per-minute limit"), {}, "rate_limit"),
    ("429 plain", lambda ex: ex.send(429, "slow down", content_type="text/plain"), {},
     "rate_limit"),
    ("read timeout", stall, {"timeout": 0.3}, "timeout"),
    ("deadline", stall, {"total_timeout": 0.4}, "timeout"),
    ("500", answer(500, "api_error", "Internal server error"), {}, "unavailable"),
    ("503 text", lambda ex: ex.send(503, "<html>down</html>", content_type="text/html"), {},
     "unavailable"),
    ("529", answer(529, "overloaded_error", "Overloaded"), {}, "unavailable"),
    ("400", answer(400, "invalid_request_error", "max_tokens: must be positive"), {},
     "invalid_request"),
    ("404", answer(404, "not_found_error", "model: m"), {}, "invalid_request"),
    ("context", answer(400, "invalid_request_error", "prompt is too long: 300000 tokens"), {},
     "invalid_request"),
    ("content filter", answer(400, "invalid_request_error", "Output blocked by content "
                              "filtering policy"), {}, "content_policy"),
    ("usage policies", answer(400, "invalid_request_error", "This request violates our "
                              "usage policies"), {}, "content_policy"),
    ("malformed", lambda ex: ex.send(200, "{not json"), {}, "protocol"),
    ("redirect", lambda ex: ex.send(302, "", headers=[("Location", "https://x.example/")]), {},
     "invalid_request"),
]


@pytest.mark.parametrize("what, handler, settings, failure", LIVE, ids=[c[0] for c in LIVE])
def test_live_failures(server: LoopbackServer, what: str, handler: Any,
                       settings: dict[str, Any], failure: str) -> None:
    server.reset(handler or (lambda ex: ex.json(200, {})))
    with pytest.raises(ProviderError) as info:
        provider(server, **settings).complete("hi")
    exc = info.value
    assert exc.failure == failure, str(exc)
    assert missy_class(exc) == (failure if failure in MISSY_KNOWS else "unknown"), str(exc)


def test_unreachable_is_unavailable() -> None:
    dead = RefusingPort()
    while "429" in str(dead.port):  # Missy's markers would read the port as a rate limit
        dead.close()
        dead = RefusingPort()
    port = dead.port
    config = config_from_dict({"providers": {"p": {
        "name": "ollama", "model": "m", "base_url": f"http://127.0.0.1:{port}",
        "max_retries": 0}}}, env={})
    with pytest.raises(ProviderError) as info:
        ProviderRegistry(config).provider("p").complete("hi")
    assert info.value.failure == "unavailable" and missy_class(info.value) == "unknown"


def test_circuit_open_and_client_limit(server: LoopbackServer) -> None:
    server.reset(answer(503, "api_error", "down"))
    p = provider(server, circuit_breaker_threshold=1, circuit_breaker_cooldown_seconds=60)
    with pytest.raises(ProviderError):
        p.complete("hi")
    with pytest.raises(ProviderError, match="circuit open") as info:
        p.complete("hi")
    assert info.value.failure == "unavailable" and missy_class(info.value) == "unknown"
    server.reset(lambda ex: ex.json(200, {"type": "message", "model": "m", "content": [],
                                          "stop_reason": "end_turn"}))
    limited = provider(server, requests_per_minute=1, max_wait_seconds=0)
    limited.complete("hi")
    with pytest.raises(ProviderError, match="client-side rate limit") as info:
        limited.complete("hi")
    assert info.value.failure == "rate_limit" and missy_class(info.value) == "rate_limit"


# Statuses and stream errors with the words servers use, mapped without a server.
MAPPED = [
    (400, "invalid_request_error", "content_policy_violation: Your request was rejected",
     "content_policy"),
    (400, "content_filter", "The response was filtered", "content_policy"),
    (403, "permission_error", "Request flagged by our safety system", "auth"),
    (422, "invalid_request_error", "Unprocessable", "invalid_request"),
    (413, "request_too_large", "Request exceeds the maximum size", "invalid_request"),
    (502, None, "Bad gateway", "unavailable"),
]


@pytest.mark.parametrize("status, etype, message, failure", MAPPED)
def test_mapped_statuses(status: int, etype: str | None, message: str, failure: str) -> None:
    exc = classify_error(status, message, lambda name: "", {"provider": "p", "status": status,
                                                              "error_type": etype})
    assert exc.failure == failure
    if status == 403:  # a refused key whose server text names a policy: Missy reads policy
        assert missy_class(exc) == "content_policy"
    else:
        assert missy_class(exc) == (failure if failure in MISSY_KNOWS else "unknown")


STREAMED = [
    ("overloaded_error", "Overloaded", "unavailable"),
    ("rate_limit_error", "Slow down", "rate_limit"),
    (None, "Your request was flagged for possible cybersecurity risk", "content_policy"),
    ("server_error", "The server had an error", "unavailable"),
    ("invalid_request_error", "bad tool schema", "invalid_request"),
]


@pytest.mark.parametrize("etype, message, failure", STREAMED)
def test_stream_error_events(etype: str | None, message: str, failure: str) -> None:
    exc = classify_stream_error(message, {"provider": "p", "error_type": etype})
    assert exc.failure == failure
    assert missy_class(exc) == (failure if failure in MISSY_KNOWS else "unknown")


@pytest.mark.parametrize("cls, message, shown", [
    (RequestTimeout, "no data for 5s", "p: timed out: no data for 5s"),
    (RequestTimeout, "timed out connecting", "p: timed out connecting"),
    (ContentRefused, "blocked", "p: refused by content policy: blocked"),
    (ContentRefused, "violates the content policy", "p: violates the content policy"),
])
def test_the_class_is_said_once(cls: type[ProviderError], message: str, shown: str) -> None:
    assert str(cls(message, provider="p")) == shown


def test_every_error_class_has_a_failure() -> None:
    import missy_providers.core.errors as errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, MissyError)]
    known = {"auth", "rate_limit", "timeout", "content_policy", "unavailable",
             "invalid_request", "protocol", "policy", "config", "usage", "cancelled"}
    assert len(classes) >= 15
    assert {c.failure for c in classes} <= known
