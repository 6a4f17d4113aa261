"""What an HTTP error status (and the server's message) means, as one of our typed errors."""

from __future__ import annotations

from collections.abc import Callable

from ..core.errors import (
    AuthenticationError,
    ContentRefused,
    ContextLengthError,
    OverloadedError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
)
from ..retry import retry_after_seconds

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

CONTEXT_LENGTH_MARKERS = ("context_length_exceeded", "context length", "context window",
                           "prompt is too long", "maximum context", "too many tokens",
                           "input is too long")  # Bedrock's ValidationException
# What servers say when a content filter or usage policy refused the request (OpenAI's
# content_policy_violation code, Azure's content_filter, the Codex backend's "flagged for
# possible cybersecurity risk", Anthropic's "usage policies").
CONTENT_POLICY_MARKERS = ("content_policy", "content policy", "content_filter",
                          "content filter", "content management policy", "usage policies",
                          "safety system", "flagged for possible")


def classify_error(status: int, message: str, header: Callable[[str], str],
                   kw: dict[str, Any]) -> ProviderError:
    """HTTP status + message -> the typed error (shared by every provider)."""
    etype = str(kw.get("error_type") or "")
    lowered = f"{etype} {message}".lower()
    if status in (401, 403):
        return AuthenticationError(f"authentication failed: {message}; check the API key",
                                   **kw)
    if status == 429:
        retry_after = retry_after_seconds(lambda name: header(name) or None)
        return RateLimitError(message, retry_after=retry_after, **kw)
    if status == 529 or "overloaded" in lowered:
        return OverloadedError(message, **kw)
    if status < 500 and any(m in lowered for m in CONTENT_POLICY_MARKERS):
        return ContentRefused(message, **kw)
    if status in (400, 413, 422) and any(m in lowered for m in CONTEXT_LENGTH_MARKERS):
        return ContextLengthError(message, **kw)
    if status == 404:
        return ProviderError(f"model or endpoint not found: {message}; check the model name "
                             "and base_url", **kw)
    if status == 413:
        return ProviderError(f"request too large: {message}", **kw)
    if status >= 500:
        return ProviderUnavailable(message, **kw)
    return ProviderError(message, **kw)


def classify_stream_error(message: str, kw: dict[str, Any]) -> ProviderError:
    """An error object inside a 200 stream (no status to go by): typed by its type or text."""
    etype = str(kw.get("error_type") or "")
    lowered = f"{etype} {message}".lower()
    if "overloaded" in lowered:
        return OverloadedError(message, **kw)
    if "rate_limit" in lowered:
        return RateLimitError(message, **kw)
    if any(m in lowered for m in CONTENT_POLICY_MARKERS):
        return ContentRefused(message, **kw)
    if any(m in lowered for m in CONTEXT_LENGTH_MARKERS):
        return ContextLengthError(message, **kw)
    if etype in ("api_error", "server_error"):
        return ProviderUnavailable(message, **kw)
    return ProviderError(message, **kw)


def sse_error(body: bytes) -> Any:
    """The error object of an error body framed as SSE (``data: {"error": ...}``, as some
    gateways answer a failed stream), or None."""
    import json

    for line in body[:65536].splitlines():
        if line.startswith(b"data:"):
            try:
                data = json.loads(line[5:])
            except (ValueError, RecursionError):
                return None
            return data if isinstance(data, dict) else None
    return None


def str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
