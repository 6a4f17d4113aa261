"""Per-provider client-side limits: token-bucket rate limiting and a circuit breaker.

Both are thread-safe and take their clock as an argument, so tests drive them without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .core.errors import ProviderUnavailable, RateLimitError

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from .core.wire import CallBudget

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class TokenBucket:
    """``per_minute`` units refill evenly over a minute, up to a burst of ``per_minute``.
    The balance may go negative (work already done is paid for after the fact): later callers
    then wait."""

    def __init__(self, per_minute: float, clock: Clock = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self._clock = clock
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` units are available (0 if now)."""
        self._refill()
        return max(min(amount, self.capacity) - self.level, 0.0) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount


class RateLimiter:
    """``requests_per_minute`` and ``tokens_per_minute`` for one provider (0 = unlimited). A
    call that would wait longer than ``max_wait_seconds`` fails at once with RateLimitError."""

    def __init__(self, provider: str, requests_per_minute: float, tokens_per_minute: float,
                 max_wait_seconds: float, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep) -> None:
        self.provider, self.max_wait = provider, max_wait_seconds
        self.requests = TokenBucket(requests_per_minute, clock) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute, clock) if tokens_per_minute else None
        self._lock = threading.Lock()
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        return self.requests is not None or self.tokens is not None

    def acquire(self, estimated_tokens: int, budget: CallBudget | None = None,
                sleep: Sleep | None = None, *, request: bool = True,
                tokens: bool = True) -> None:
        """Wait (up to max_wait_seconds, and never past ``budget``'s deadline: the wait is
        part of the call) for one request (unless ``request`` is False) and the estimated
        prompt tokens (unless ``tokens`` is False). A call takes its tokens once, and one
        request for each HTTP request it sends (retries and re-sends included)."""
        requests = self.requests if request else None
        token_bucket = self.tokens if tokens else None
        if requests is None and token_bucket is None:
            return
        with self._lock:  # callers reserve in arrival order, then wait without the lock
            wait = max(requests.wait_for(1) if requests else 0.0,
                       token_bucket.wait_for(estimated_tokens) if token_bucket else 0.0)
            if wait > self.max_wait:
                raise RateLimitError(
                    f"client-side rate limit: the next request would wait {wait:.1f}s, over "
                    f"max_wait_seconds={self.max_wait:g} (requests_per_minute/"
                    "tokens_per_minute in the provider's config)", provider=self.provider,
                    retry_after=wait)
            if budget is not None and wait > budget.remaining():
                raise budget.expired(self.provider, f"waiting for the client-side rate limit "
                                                    f"(a wait of {wait:.1f}s)")
            # Reserved now: a later caller's wait counts this one's, so no one waits while
            # holding the lock (a call's deadline is never spent queueing behind another's).
            if requests:
                requests.take(1)
            if token_bucket:
                token_bucket.take(estimated_tokens)
        if budget is not None:
            budget.wait(wait, sleep or self._sleep, self.provider,
                        "waiting for the client-side rate limit")
        elif wait > 0:
            self._sleep(wait)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Charge the difference once the response says how many tokens were really used."""
        if self.tokens is not None:
            with self._lock:
                self.tokens.take(actual_tokens - estimated_tokens)


class CircuitBreaker:
    """After ``threshold`` consecutive failures the circuit opens: calls fail at once for
    ``cooldown`` seconds; then one probe is let through (half-open), and its outcome closes or
    re-opens the circuit. ``threshold`` 0 turns it off."""

    def __init__(self, provider: str, threshold: int, cooldown: float,
                 clock: Clock = time.monotonic) -> None:
        self.provider, self.threshold, self.cooldown = provider, threshold, cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self.opened_at >= self.cooldown else "open"

    def before_call(self) -> None:
        if not self.threshold:
            return
        with self._lock:
            if self.opened_at is None:
                return
            remaining = self.cooldown - (self._clock() - self.opened_at)
            if remaining <= 0 and not self._probing:
                self._probing = True  # this caller is the one half-open probe
                return
            wait = max(remaining, 0.0)
            raise ProviderUnavailable(
                f"circuit open after {self.failures} consecutive failures; next probe in "
                f"{wait:.1f}s (circuit_breaker_threshold/circuit_breaker_cooldown_seconds)",
                provider=self.provider)

    def record_other(self) -> None:
        """An outcome that says nothing about the provider's health (a 4xx, a 429, a client
        side limit, a malformed answer): a half-open probe's slot is released, so the next
        call probes; the circuit's state is otherwise unchanged."""
        with self._lock:
            self._probing = False

    def record_success(self) -> None:
        with self._lock:
            self.failures, self.opened_at, self._probing = 0, None, False

    def record_failure(self) -> None:
        if not self.threshold:
            return
        with self._lock:
            self.failures += 1
            if self._probing or self.failures >= self.threshold:
                self.opened_at, self._probing = self._clock(), False
