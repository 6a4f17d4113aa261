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
from datetime import datetime, timezone

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_OPENAI_RESETS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
_ANTHROPIC_RESETS = tuple(f"anthropic-ratelimit-{k}-reset" for k in
                          ("requests", "tokens", "input-tokens", "output-tokens"))

HeaderGetter = Callable[[str], "str | None"]


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
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def _http_date(text: str, now: float) -> float | None:
    from email.utils import parsedate_to_datetime  # only on the rare date form

    try:
        return _seconds_until(parsedate_to_datetime(text), now)
    except (TypeError, ValueError, IndexError):
        return None


def _rfc3339(text: str, now: float) -> float | None:
    try:
        return _seconds_until(datetime.fromisoformat(text.replace("Z", "+00:00")), now)
    except ValueError:
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
