"""When to try again: the server's advice (``Retry-After`` and its cousins), as pure functions.

Each API says it differently (wire-formats.md section 7.12): ``retry-after-ms`` milliseconds,
``retry-after`` seconds or an HTTP date, OpenAI's ``x-ratelimit-reset-*`` Go durations
(``6ms``, ``1m30s``), OpenRouter's ``X-RateLimit-Reset`` epoch milliseconds, Anthropic's
``anthropic-ratelimit-*-reset`` RFC 3339 timestamps.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from .core.values import Value

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_OPENAI_RESETS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
_ANTHROPIC_RESETS = tuple(f"anthropic-ratelimit-{k}-reset" for k in
                          ("requests", "tokens", "input-tokens", "output-tokens"))

HeaderGetter = Callable[[str], "str | None"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 and value == value and value != float("inf") else None


def go_duration(text: str) -> float | None:
    """``1m30s`` -> 90.0; None if it is not a Go duration."""
    text = text.strip()
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def _seconds_until(when: datetime, now: float) -> float:
    from datetime import timezone

    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def _http_date(text: str, now: float) -> float | None:
    from email.utils import parsedate_to_datetime  # only on the rare date form

    try:
        return _seconds_until(parsedate_to_datetime(text), now)
    except (TypeError, ValueError, IndexError, OverflowError):  # any date a server can write
        return None


def _rfc3339(text: str, now: float) -> float | None:
    from datetime import datetime  # only on the rare Anthropic-reset form

    try:
        return _seconds_until(datetime.fromisoformat(text.replace("Z", "+00:00")), now)
    except (ValueError, OverflowError):
        return None


def retry_after_seconds(get: HeaderGetter, now: float | None = None) -> float | None:
    """The server's advised wait in seconds, from whichever header it sent; None if none."""
    now = time.time() if now is None else now
    value = get("retry-after-ms")
    if value and (ms := _number(value)) is not None:
        return ms / 1000.0
    value = get("retry-after")
    if value:
        seconds = _number(value)
        return seconds if seconds is not None else _http_date(value, now)
    waits = [d for h in _OPENAI_RESETS if (v := get(h)) and (d := go_duration(v)) is not None]
    if waits:
        return max(waits)
    value = get("x-ratelimit-reset")
    if value and (epoch := _number(value)) is not None:
        epoch = epoch / 1000.0 if epoch > 1e11 else epoch  # OpenRouter sends milliseconds
        return max(0.0, epoch - now)
    waits = [d for h in _ANTHROPIC_RESETS if (v := get(h)) and (d := _rfc3339(v, now)) is not None]
    return max(waits) if waits else None


# --- the retry decision ---------------------------------------------------------------------

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# 429s that will not succeed on retry: the account is out of quota, not going too fast.
NOT_RETRYABLE_TYPES = frozenset({"insufficient_quota", "usage_limit_reached",
                                 "usage_not_included"})
BACKOFF_BASE = 0.5  # seconds; the official SDKs' min(0.5 * 2**n, 8) with jitter
BACKOFF_CAP = 8.0
MAX_RETRY_AFTER = 60.0  # a server asking for longer than this gets a failure, not a long sleep


class RetryPolicy(Value):
    """How often and how long to wait. A value: each call keeps its own attempt count."""

    __slots__ = ("max_retries", "backoff_base", "backoff_cap", "max_retry_after")
    max_retries: int
    backoff_base: float
    backoff_cap: float
    max_retry_after: float

    def __init__(self, max_retries: int, backoff_base: float = BACKOFF_BASE,
                 backoff_cap: float = BACKOFF_CAP,
                 max_retry_after: float = MAX_RETRY_AFTER) -> None:
        self._set(max_retries=max_retries, backoff_base=backoff_base, backoff_cap=backoff_cap,
                  max_retry_after=max_retry_after)

    def delay(self, attempt: int, retry_after: float | None, rand: float) -> float | None:
        """Seconds to wait before retry number ``attempt`` (0-based): the server's advice when
        it gave one, else capped exponential backoff with full jitter (``rand`` in [0, 1)).
        None when the server asks for longer than ``max_retry_after``."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        backoff: float = self.backoff_base * 2.0 ** attempt
        return min(self.backoff_cap, backoff) * rand


def is_retryable(exc: BaseException) -> bool:
    """Whether the same request may be sent again. A failure before any response (refused
    connection, reset, timeout waiting for headers) never reached a model; a 408/409/429/5xx/529
    says "try again"; everything else (400, 401, 403, 404, a policy denial, a malformed
    answer) would fail the same way again."""
    from .core.errors import ProtocolError, ProviderError, ProviderUnavailable, RequestTimeout

    if not isinstance(exc, ProviderError) or isinstance(exc, ProtocolError):
        return False
    override = exc.should_retry
    if override is not None:  # the server's own `x-should-retry`
        return bool(override)
    if exc.error_type in NOT_RETRYABLE_TYPES:
        return False
    if exc.status is None:
        return isinstance(exc, (ProviderUnavailable, RequestTimeout))
    return exc.status in RETRYABLE_STATUSES
