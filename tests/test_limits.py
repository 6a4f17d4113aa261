"""limits.py at its exact edges (N-1, N, N+1), driven by a fake clock: the token bucket, the
rate limiter's max wait, and every transition of the circuit breaker. Pure and fast: these
are the tests mutation testing (tox -e mutation) runs against limits.py."""

from __future__ import annotations

import pytest

from missy_providers.core.errors import ProviderUnavailable, RateLimitError
from missy_providers.limits import CircuitBreaker, RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# --- TokenBucket ----------------------------------------------------------------------------

def test_bucket_starts_full_and_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(120, clock)  # 2 a second
    assert (bucket.rate, bucket.capacity, bucket.level) == (2.0, 120.0, 120.0)
    bucket.take(120)
    assert bucket.level == 0.0
    clock.now += 1.5
    assert bucket.wait_for(3) == 0.0  # 3 refilled exactly: no wait
    assert bucket.level == 3.0
    assert bucket.wait_for(4) == 0.5  # one short: half a second at 2/s
    clock.now += 1000
    bucket._refill()
    assert bucket.level == 120.0  # never above capacity


@pytest.mark.parametrize("level, amount, wait", [
    (10.0, 9, 0.0), (10.0, 10, 0.0), (10.0, 11, 0.5), (-4.0, 0, 2.0), (0.0, 500, 60.0),
])
def test_bucket_wait_at_the_edge(level: float, amount: int, wait: float) -> None:
    bucket = TokenBucket(120, Clock())
    bucket.level = level
    assert bucket.wait_for(amount) == wait  # an amount over capacity waits for a full bucket


# --- RateLimiter ----------------------------------------------------------------------------

def limiter(clock: Clock, **kw: float) -> RateLimiter:
    return RateLimiter("p", kw.get("rpm", 0), kw.get("tpm", 0), kw.get("max_wait", 5.0),
                       clock=clock, sleep=clock.sleep)


def test_unlimited_does_nothing() -> None:
    clock = Clock()
    free = limiter(clock)
    assert not free.enabled and free.requests is None and free.tokens is None
    for _ in range(1000):
        free.acquire(10**9)
    free.settle(0, 10**9)
    assert clock.slept == []


@pytest.mark.parametrize("wait_needed, max_wait, refused", [
    (4.0, 5.0, False), (5.0, 5.0, False), (6.0, 5.0, True),
])
def test_max_wait_at_the_edge(wait_needed: float, max_wait: float, refused: bool) -> None:
    clock = Clock()
    lim = limiter(clock, rpm=60, max_wait=max_wait)  # one a second
    assert lim.requests is not None and lim.enabled
    lim.requests.level = 1 - wait_needed  # the next request waits exactly wait_needed
    if refused:
        with pytest.raises(RateLimitError) as info:
            lim.acquire(0)
        assert info.value.provider == "p" and info.value.retry_after == wait_needed
        assert info.value.message == (
            f"client-side rate limit: the next request would wait {wait_needed:.1f}s, over "
            f"max_wait_seconds={max_wait:g} (requests_per_minute/tokens_per_minute in the "
            f"provider's config)")
        assert clock.slept == [] and lim.requests.level == 1 - wait_needed  # nothing taken
    else:
        lim.acquire(0)
        assert clock.slept == [wait_needed]
        # Reserved before the wait (the next caller queues behind it); the wait refills it.
        assert lim.requests.level == -wait_needed
        lim.requests._refill()
        assert lim.requests.level == 0.0


def test_no_sleep_when_nothing_is_owed() -> None:
    clock = Clock()
    lim = limiter(clock, rpm=60)
    lim.acquire(0)
    assert clock.slept == []  # a wait of exactly 0 does not sleep
    assert lim.requests is not None and lim.requests.level == 59.0


def test_tokens_are_charged_and_settled() -> None:
    clock = Clock()
    lim = limiter(clock, tpm=600, max_wait=100)  # 10 tokens a second
    assert lim.tokens is not None and lim.requests is None
    lim.acquire(100)
    assert lim.tokens.level == 500.0
    lim.settle(100, 700)
    assert lim.tokens.level == -100.0
    lim.settle(50, 50)
    assert lim.tokens.level == -100.0
    lim.acquire(60)  # owes 160 tokens at 10/s
    assert clock.slept == [16.0]
    lim.acquire(0)  # no estimate: takes nothing, waits for nothing more
    assert clock.slept == [16.0]
    assert lim.tokens.level == pytest.approx(0.0)  # refilled to 60 while waiting, then spent


def test_both_limits_wait_for_the_slower() -> None:
    clock = Clock()
    lim = limiter(clock, rpm=60, tpm=60, max_wait=100)
    assert lim.requests is not None and lim.tokens is not None
    lim.requests.level, lim.tokens.level = -1.0, -3.0  # 2s for a request, 4s for one token
    lim.acquire(1)
    assert clock.slept == [4.0]


# --- CircuitBreaker -------------------------------------------------------------------------

def breaker(clock: Clock, threshold: int = 3, cooldown: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker("p", threshold, cooldown, clock)


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        b.before_call()
        b.record_failure()


@pytest.mark.parametrize("failures, state", [(2, "closed"), (3, "open"), (4, "open")])
def test_opens_at_the_threshold(failures: int, state: str) -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(failures):
        if b.state == "closed":
            b.before_call()
        b.record_failure()
    assert b.state == state
    assert (b.opened_at == clock.now) == (state == "open")


def test_a_success_resets_the_count() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 2)
    b.record_success()
    assert (b.failures, b.opened_at, b._probing) == (0, None, False)
    fail(b, 2)
    assert b.state == "closed"


@pytest.mark.parametrize("elapsed, state", [(29.5, "open"), (30.0, "half-open"),
                                            (30.5, "half-open")])
def test_cooldown_edge(elapsed: float, state: str) -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += elapsed
    assert b.state == state
    if state == "open":
        with pytest.raises(ProviderUnavailable) as info:
            b.before_call()
        assert info.value.provider == "p"
        assert info.value.message == (
            f"circuit open after 3 consecutive failures; next probe in {30 - elapsed:.1f}s "
            f"(circuit_breaker_threshold/circuit_breaker_cooldown_seconds)")
    else:
        b.before_call()  # the one probe
        with pytest.raises(ProviderUnavailable, match=r"next probe in 0\.0s"):
            b.before_call()  # a second caller while the probe is out


def test_probe_outcomes() -> None:
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 30
    b.before_call()
    b.record_failure()  # the probe failed: open again, from now
    assert b.state == "open" and b.opened_at == clock.now and b.failures == 4
    clock.now += 30
    b.before_call()
    b.record_other()  # a 4xx says nothing of health: the slot is free again
    assert b._probing is False and b.state == "half-open"
    b.before_call()
    b.record_success()
    assert b.state == "closed"
    b.before_call()


def test_threshold_zero_is_off() -> None:
    clock = Clock()
    b = breaker(clock, threshold=0)
    for _ in range(100):
        b.before_call()
        b.record_failure()
    assert (b.failures, b.state) == (0, "closed")


def test_other_outcomes_do_not_count() -> None:
    clock = Clock()
    b = breaker(clock, threshold=1)
    b.before_call()
    b.record_other()
    assert (b.failures, b.state) == (0, "closed")
    b.record_failure()
    assert b.state == "open"


def test_a_short_wait_is_slept() -> None:
    clock = Clock()
    lim = limiter(clock, rpm=60)
    assert lim.requests is not None
    lim.requests.level = 0.5
    lim.acquire(0)
    assert clock.slept == [0.5]
