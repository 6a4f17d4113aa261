"""retry.py as tables: every header form of the server's advice, each parser's branches and
edges, the backoff numbers, and the retry decision for every error class. Pure and fast: the
tests mutation testing (tox -e mutation) runs against retry.py."""

from __future__ import annotations

import pytest

from missy_providers.core.errors import (
    AuthenticationError,
    OverloadedError,
    PolicyViolation,
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    RequestTimeout,
)
from missy_providers.retry import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_RETRY_AFTER,
    RetryPolicy,
    go_duration,
    is_retryable,
    retry_after_seconds,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def advice(headers: dict[str, str], now: float = NOW) -> float | None:
    return retry_after_seconds(lambda name: headers.get(name), now)


@pytest.mark.parametrize("headers, seconds", [
    ({}, None),
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "0"}, 0.0),
    ({"retry-after-ms": "-5", "retry-after": "3"}, 3.0),  # a bad ms falls through
    ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
    ({"retry-after-ms": "inf", "retry-after": "2"}, 2.0),
    ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
    ({"retry-after-ms": "", "retry-after": "2"}, 2.0),
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "0.25"}, 0.25),
    ({"retry-after": "Tue, 14 Nov 2023 22:13:50 GMT"}, 30.0),
    ({"retry-after": "Tue, 14 Nov 2023 22:13:00 GMT"}, 0.0),  # in the past: now
    ({"retry-after": "not a date"}, None),
    ({"retry-after": "-1"}, None),  # neither a number >= 0 nor a date
    ({"x-ratelimit-reset-requests": "1m30s"}, 90.0),
    ({"x-ratelimit-reset-requests": "6ms", "x-ratelimit-reset-tokens": "2s"}, 2.0),  # max
    ({"x-ratelimit-reset-tokens": "250ms"}, 0.25),
    ({"x-ratelimit-reset-tokens": "soon"}, None),
    ({"x-ratelimit-reset": str(int(NOW) + 12)}, 12.0),  # epoch seconds
    ({"x-ratelimit-reset": str(int(NOW * 1000) + 4000)}, 4.0),  # epoch milliseconds
    ({"x-ratelimit-reset": str(int(NOW) - 100)}, 0.0),
    ({"x-ratelimit-reset": "100000000000"}, 1e11 - NOW),  # 1e11 exactly: still seconds
    ({"x-ratelimit-reset": "100000000001"}, 0.0),  # above: milliseconds (long past)
    ({"x-ratelimit-reset": "later"}, None),
    ({"anthropic-ratelimit-requests-reset": "2023-11-14T22:13:45Z"}, 25.0),
    ({"anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:30+00:00",
      "anthropic-ratelimit-output-tokens-reset": "2023-11-14T22:13:40Z"}, 20.0),
    ({"anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:25"}, 5.0),  # naive: UTC
    ({"anthropic-ratelimit-requests-reset": "2023-11-14T22:13:00Z"}, 0.0),
    ({"anthropic-ratelimit-requests-reset": "tomorrow"}, None),
])
def test_retry_advice(headers: dict[str, str], seconds: float | None) -> None:
    assert advice(headers) == seconds


def test_headers_in_order_of_precedence() -> None:
    every = {"retry-after-ms": "100", "retry-after": "9", "x-ratelimit-reset-requests": "8s",
             "x-ratelimit-reset": str(int(NOW) + 7),
             "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:26Z"}
    order = ["retry-after-ms", "retry-after", "x-ratelimit-reset-requests",
             "x-ratelimit-reset", "anthropic-ratelimit-requests-reset"]
    expected = [0.1, 9.0, 8.0, 7.0, 6.0]
    for i, name in enumerate(order):
        assert advice({k: v for k, v in every.items() if k in order[i:]}) == expected[i], name


def test_default_now_is_the_wall_clock() -> None:
    import time

    assert retry_after_seconds(lambda name: "2" if name == "retry-after" else None) == 2.0
    later = retry_after_seconds(lambda n: str(time.time() + 50) if n == "x-ratelimit-reset"
                                else None)
    assert later is not None and 49 < later < 51


@pytest.mark.parametrize("text, seconds", [
    ("1h", 3600.0), ("1m", 60.0), ("1s", 1.0), ("1ms", 0.001), ("1us", 1e-6), ("1µs", 1e-6),
    ("1ns", 1e-9), ("1h2m3s", 3723.0), ("1.5s", 1.5), (" 2s ", 2.0), ("0s", 0.0),
    ("", None), ("s", None), ("1x", None), ("1s junk", None), ("-1s", None), ("1", None),
])
def test_go_durations(text: str, seconds: float | None) -> None:
    assert go_duration(text) == (pytest.approx(seconds) if seconds else seconds)


def test_backoff_numbers_at_every_step() -> None:
    policy = RetryPolicy(max_retries=3)
    assert (policy.max_retries, policy.backoff_base, policy.backoff_cap,
            policy.max_retry_after) == (3, BACKOFF_BASE, BACKOFF_CAP, MAX_RETRY_AFTER)
    assert (BACKOFF_BASE, BACKOFF_CAP, MAX_RETRY_AFTER) == (0.5, 8.0, 60.0)
    assert [policy.delay(n, None, 1.0) for n in range(7)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert [policy.delay(n, None, 0.5) for n in range(5)] == [0.25, 0.5, 1, 2, 4]
    assert policy.delay(5, None, 0.0) == 0.0
    custom = RetryPolicy(1, backoff_base=1.0, backoff_cap=3.0, max_retry_after=10.0)
    assert [custom.delay(n, None, 1.0) for n in range(3)] == [1.0, 2.0, 3.0]
    assert [custom.delay(0, after, 0.5) for after in (9.0, 10.0, 10.5, 0.0)] == \
        [9.0, 10.0, None, 0.0]


@pytest.mark.parametrize("exc, retry", [
    (ProviderError("x", status=status), status in {408, 409, 429, 500, 502, 503, 504, 529})
    for status in (400, 401, 403, 404, 407, 408, 409, 410, 422, 429, 499, 500, 501, 502,
                   503, 504, 505, 529)
] + [
    (RateLimitError("slow", status=429), True),
    (RateLimitError("quota", status=429, error_type="insufficient_quota"), False),
    (RateLimitError("codex", status=429, error_type="usage_limit_reached"), False),
    (RateLimitError("plan", status=429, error_type="usage_not_included"), False),
    (OverloadedError("busy", status=529), True),
    (ProviderUnavailable("refused"), True),  # no response at all
    (RequestTimeout("no headers"), True),
    (ProviderError("other, no status"), False),
    (AuthenticationError("bad key", status=401), False),
    (ProtocolError("garbled", status=500), False),  # a malformed answer: not again
    (PolicyViolation("denied"), False),
    (ValueError("not ours"), False),
])
def test_retry_decision(exc: BaseException, retry: bool) -> None:
    assert is_retryable(exc) is retry


@pytest.mark.parametrize("status, override, retry", [
    (400, True, True), (503, False, False), (429, None, True), (400, None, False),
])
def test_server_says_whether_to_retry(status: int, override: bool | None, retry: bool) -> None:
    exc = ProviderError("x", status=status)
    exc.should_retry = override
    assert is_retryable(exc) is retry


def test_naive_reset_times_are_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert advice({"anthropic-ratelimit-requests-reset": "2023-11-14T22:13:25"}) == 5.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
