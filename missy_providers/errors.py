"""The one exception hierarchy of missy-providers.

Every error carries enough context to act on (provider, config key path, HTTP status) and never a
secret: server-supplied text passes through :func:`scrub` before it is stored, and messages are
built by us, never by formatting request headers.
"""

from __future__ import annotations

from collections.abc import Iterable

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

REDACTED = "[REDACTED]"
# Server error messages are shown to operators; a hostile server must not be able to flood logs.
MAX_SERVER_MESSAGE_CHARS = 500


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known secret in ``text`` and cut it to a readable length."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    if len(text) > MAX_SERVER_MESSAGE_CHARS:
        text = text[:MAX_SERVER_MESSAGE_CHARS] + "..."
    return text


class MissyError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(MissyError, ValueError):
    """The caller used the API wrongly (an unknown provider name, a malformed message)."""


class ConfigError(MissyError, ValueError):
    """A config value is missing, malformed or of the wrong type.

    ``path`` is the key path (``("providers", "fast", "model")``), ``source`` the file (or
    ``<dict>``). ``problems`` holds every problem found when a whole file was validated.
    """

    def __init__(
        self,
        msg: str,
        path: tuple[str, ...] = (),
        source: str = "",
        problems: tuple[ConfigError, ...] = (),
    ) -> None:
        where = ".".join(path) or "top level"
        prefix = f"{source}: " if source else ""
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(f"{prefix}{msg} (at {where}){more}")
        self.msg, self.path, self.source = msg, path, source
        self.problems: tuple[ConfigError, ...] = problems or (self,)


class PolicyViolation(MissyError, PermissionError):
    """The network policy refused a URL or a resolved address; nothing was sent."""

    def __init__(self, message: str, decision: Any = None) -> None:
        super().__init__(message)
        self.decision = decision


class ProviderError(MissyError):
    """A provider request failed. ``status`` is the HTTP status when there was a response."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        prefix = f"{provider}: " if provider else ""
        suffix = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{prefix}{message}{suffix}")
        self.message, self.provider, self.status = message, provider, status
        self.error_type, self.request_id = error_type, request_id
        self.should_retry: bool | None = None  # the server's `x-should-retry`, when sent


class AuthenticationError(ProviderError):
    """The server refused the credentials (401/403), or none were configured."""


class RateLimitError(ProviderError):
    """429: ``retry_after`` is the server's advice in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class OverloadedError(ProviderError):
    """The provider is overloaded (Anthropic 529, or an ``overloaded_error`` inside a stream)."""


class ContextLengthError(ProviderError):
    """The conversation does not fit the model's context window; shorten it."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or answered with a server error (5xx)."""


class AllProvidersFailed(ProviderUnavailable):
    """Every provider of a fallback chain failed; ``errors`` holds each one's error, in order."""

    def __init__(self, message: str, *, errors: tuple[MissyError, ...] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.errors = errors


class ProtocolError(ProviderError):
    """The server sent something that is not the protocol: bad framing, bad JSON, over a limit."""


class ToolArgumentsError(ProtocolError):
    """A tool call's arguments are not a JSON object; ``raw`` keeps the text the model sent."""

    def __init__(self, message: str, *, raw: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.raw = raw


class RedirectRefused(ProviderError):
    """The server answered with a redirect; redirects are never followed (``location`` names it)."""

    def __init__(self, message: str, *, location: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.location = location


class RequestTimeout(ProviderError, TimeoutError):
    """Connect, read (between bytes) or overall deadline passed."""
