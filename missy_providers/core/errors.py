"""The one exception hierarchy of missy-providers.

Every error carries enough context to act on (provider, config key path, HTTP status) and never a
secret: every MissyError is sanitized when it is built (see MissyError), and messages are built
by us, never by formatting request headers.
"""

from __future__ import annotations

import functools

from .secret import MAX_MESSAGE_CHARS, sanitize, scrub
from .secret import REDACTED as REDACTED
from .secret import excerpt as excerpt

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ParamSpec, TypeVar

    P = ParamSpec("P")
    R = TypeVar("R")


# Attributes that hold a model's own text for the caller to inspect (a malformed JSON answer):
# scrubbed of secrets, but kept whole, line breaks and all.
_RAW_ATTRIBUTES = frozenset({"raw"})


def _sanitized(value: Any) -> Any:
    """Every string in a message or attribute: secrets scrubbed, control and invisible
    characters escaped, bounded (whatever text a call site put in it)."""
    if isinstance(value, str):
        return sanitize(value, MAX_MESSAGE_CHARS)
    if isinstance(value, tuple):
        return tuple(_sanitized(v) for v in value)
    return value


def _chained(exc: BaseException | None) -> BaseException | None:
    # Only our own errors are kept in a chain: they were scrubbed when built. A foreign cause
    # (UnicodeEncodeError holding a header, JSONDecodeError holding a body) may hold anything.
    return exc if isinstance(exc, MissyError) else None


def at_boundary(func: Callable[P, R]) -> Callable[P, R]:
    """A public entry point: a MissyError leaves it with the frames below it dropped. Those
    frames' locals hold raw server bytes and request state, and error trackers capture locals;
    the message says what went wrong, and -v logging says where."""

    @functools.wraps(func)
    def boundary(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MissyError as exc:
            raise exc.with_traceback(None) from None

    return boundary


_REAL_CAUSE = BaseException.__dict__["__cause__"]
_REAL_CONTEXT = BaseException.__dict__["__context__"]


class MissyError(Exception):
    """Base of every error this package raises on purpose.

    The error boundary: its args and every string attribute set on it pass through
    :func:`~missy_providers.core.secret.sanitize` (every live Secret in each encoding and
    key-shaped patterns scrubbed, control characters escaped, at most MAX_MESSAGE_CHARS), so
    no call site sanitizes by hand; a cause or context that is not a MissyError is not shown
    to ``traceback`` or error trackers (it may hold the raw text we scrubbed).

    ``failure`` names the class of failure in one word, for code that decides what to do next
    (rotate a key, fall back, give up): ``auth``, ``rate_limit``, ``timeout``,
    ``content_policy``, ``unavailable``, ``invalid_request``, ``protocol``, ``policy``,
    ``config``, ``usage``."""

    partial: Any = None  # a stream's CompletionResponse of what arrived before it failed
    should_retry: bool | None = None  # the server's `x-should-retry`, or our own verdict
    failure = "invalid_request"

    def __init__(self, *args: Any) -> None:
        super().__init__(*_sanitized(args))

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "args":
            value = _sanitized(tuple(value))
        elif name in _RAW_ATTRIBUTES:
            value = scrub(value) if isinstance(value, str) else value
        else:
            value = _sanitized(value)
        super().__setattr__(name, value)

    @property
    def __cause__(self) -> BaseException | None:
        return _chained(_REAL_CAUSE.__get__(self))

    @__cause__.setter
    def __cause__(self, value: BaseException | None) -> None:
        _REAL_CAUSE.__set__(self, value)

    @property
    def __context__(self) -> BaseException | None:
        if self.__suppress_context__:  # `raise ... from None`: nothing to show
            return None
        return _chained(_REAL_CONTEXT.__get__(self))

    @__context__.setter
    def __context__(self, value: BaseException | None) -> None:
        _REAL_CONTEXT.__set__(self, value)


class UsageError(MissyError, ValueError):
    """The caller used the API wrongly (an unknown provider name, a malformed message)."""

    failure = "usage"


class ConfigError(MissyError, ValueError):
    """A config value is missing, malformed or of the wrong type.

    ``path`` is the key path (``("providers", "fast", "model")``), ``source`` the file (or
    ``<dict>``). ``problems`` holds every problem found when a whole file was validated.
    """

    failure = "config"

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

    failure = "policy"

    def __init__(self, message: str, decision: Any = None) -> None:
        super().__init__(message)
        self.decision = decision


class ProviderError(MissyError):
    """A provider request failed. ``status`` is the HTTP status when there was a response.

    ``says``: the words that name the failure class, in every message of a class that has
    them (the first is put in front of a message that has none of them), so that a reader, and
    code that goes by words (Missy's recovery matches "authentication failed", "rate limit",
    "timed out", "content policy"), sees the class ``failure`` names."""

    says: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        if self.says and not any(word in message.lower() for word in self.says):
            message = f"{self.says[0]}: {message}"
        prefix = f"{provider}: " if provider else ""
        suffix = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{prefix}{message}{suffix}")
        self.message, self.provider, self.status = message, provider, status
        # The server's words: bounded and with controls escaped, like any quoted server text.
        self.error_type = None if error_type is None else excerpt(error_type, 100)
        self.request_id = None if request_id is None else excerpt(request_id, 100)


class AuthenticationError(ProviderError):
    """The server refused the credentials (401/403), or none were configured."""

    failure = "auth"
    says = ("authentication failed",)


class RateLimitError(ProviderError):
    """429: ``retry_after`` is the server's advice in seconds, when it gave one."""

    failure = "rate_limit"
    says = ("rate limited", "rate limit")

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class OverloadedError(ProviderError):
    """The provider is overloaded (Anthropic 529, or an ``overloaded_error`` inside a stream)."""

    failure = "unavailable"


class ContextLengthError(ProviderError):
    """The conversation does not fit the model's context window; shorten it."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or answered with a server error (5xx)."""

    failure = "unavailable"


class AllProvidersFailed(ProviderUnavailable):
    """Every provider of a fallback chain failed; ``errors`` holds each one's error, in order."""

    def __init__(self, message: str, *, errors: tuple[MissyError, ...] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.errors = errors


class ProtocolError(ProviderError):
    """The server sent something that is not the protocol: bad framing, bad JSON, over a limit."""

    failure = "protocol"


class ToolArgumentsError(ProtocolError):
    """A tool call's arguments are not a JSON object; ``raw`` keeps the text the model sent."""

    def __init__(self, message: str, *, raw: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.raw = raw


class StructuredOutputError(ProtocolError):
    """An answer asked for with ``schema=`` is not JSON of the schema's shape; ``raw`` keeps
    the text the model sent."""

    def __init__(self, message: str, *, raw: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.raw = raw


class RedirectRefused(ProviderError):
    """The server answered with a redirect; redirects are never followed (``location`` names it)."""

    def __init__(self, message: str, *, location: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.location = location


class StreamClosed(ProviderError):
    """The response was closed (by the caller, possibly from another thread) while it was
    being read; what arrived before is on ``.partial`` when the provider could build it."""

    failure = "cancelled"


class RequestTimeout(ProviderError, TimeoutError):
    """Timed out: connect, read (between bytes) or the call's overall deadline passed."""

    failure = "timeout"
    says = ("timed out",)


class ContentRefused(ProviderError):
    """The model declined to answer (a refusal or a content filter); ``response`` is the
    CompletionResponse that says so (its ``refusal`` holds the category and explanation the
    API gave). Raised only when the caller asks for it (``raise_on_refusal=True``, or
    ``response.raise_for_refusal()``)."""

    failure = "content_policy"
    says = ("refused by content policy", "content policy", "refused")

    def __init__(self, message: str, *, response: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.response = response


class CallBudgetExceeded(ProviderError):
    """The call has used every send its budget allows (keys, retries, a token refresh and
    fallbacks included, docs/AUDIT.md question 9): the core refuses to send again."""

    failure = "unavailable"
