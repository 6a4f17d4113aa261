"""HTTP header names and values: what may go on the wire, checked before anything is sent.

Pure and shared: the config checks keys and configured headers with these when it is loaded
(so a bad key is a ConfigError naming its key path, not a traceback from ``http.client``), and
:mod:`missy_providers.http` checks every request's headers with the same functions.
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

# RFC 9110 section 5.6.2: token = 1*tchar.
TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# RFC 9110 section 5.5: a field value is visible characters, SP, HTAB and obs-text (0x80-0xFF).
# Everything else, and anything past Latin-1 (http.client encodes values as Latin-1), is refused.
_VALUE_CHARS = frozenset(map(chr, range(0x20, 0x7F))) | frozenset("\t") | \
    frozenset(map(chr, range(0x80, 0x100)))
# Credentials must be plain printable ASCII: a key with a stray byte (a pasted zero-width space,
# a trailing newline) is refused with its position rather than sent and rejected by the server.
_CREDENTIAL_CHARS = frozenset(map(chr, range(0x21, 0x7F)))
# The headers only the client sets: framing, hop-by-hop and routing (RFC 9110 section 7.6.1,
# RFC 9112 section 6). A caller who could set them could smuggle a second request.
CLIENT_OWNED = frozenset({"host", "content-length", "transfer-encoding", "connection", "te",
                          "trailer", "upgrade", "expect", "keep-alive", "proxy-connection",
                          "proxy-authorization"})
# Headers whose value is a credential: never shown, in a repr or anywhere else.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization",
                                "chatgpt-account-id", "api-key", "x-goog-api-key", "cookie"})

# Headers a caller may not set per provider type: the credential and protocol headers the
# provider itself sends (the client's framing headers are refused for every provider).
PROVIDER_HEADERS = {
    "anthropic": frozenset({"x-api-key", "anthropic-version", "authorization"}),
    "openai": frozenset({"authorization", "openai-organization", "openai-project"}),
    "openai-codex": frozenset({"authorization", "chatgpt-account-id", "openai-beta",
                               "originator", "session_id"}),
    "ollama": frozenset({"authorization"}),
}


def header_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a header name, or None."""
    if not isinstance(name, str) or not name:
        return "a header name must be a non-empty string"
    if not TOKEN_CHARS.issuperset(name):
        col = next(i for i, ch in enumerate(name) if ch not in TOKEN_CHARS)
        return f"header name has a character that is not allowed at index {col}"
    return None


def header_value_problem(value: object, *, credential: bool = False) -> str | None:
    """Why ``value`` cannot be sent as a header value, or None. The value is never quoted:
    it may be a key."""
    if not isinstance(value, str):
        return f"a header value must be a string, got {type(value).__name__}"
    allowed = _CREDENTIAL_CHARS if credential else _VALUE_CHARS
    if allowed.issuperset(value):
        return None
    col = next(i for i, ch in enumerate(value) if ch not in allowed)
    what = "a credential" if credential else "a header value"
    return (f"{what} has a character that cannot be sent in an HTTP header at index {col} "
            f"(U+{ord(value[col]):04X}; value not shown)")


def header_problems(headers: Mapping[str, Any], ptype: str) -> list[tuple[str, str]]:
    """(header, why) for each header a caller may not send to a provider of ``ptype``."""
    owned = CLIENT_OWNED | PROVIDER_HEADERS.get(ptype, frozenset())
    problems = []
    for name, value in headers.items():
        why = header_name_problem(name)
        if why is None and name.lower() in owned:
            why = "set by the client itself, it cannot be overridden"
        if why is None and not hasattr(value, "reveal"):
            why = header_value_problem(value)
        if why is not None:
            problems.append((str(name)[:60], why))
    return problems


class RedactedHeaders(dict[str, str]):
    """Request headers whose repr hides every credential value: a traceback that captures
    locals (as error trackers do) shows the header names, never a key."""

    __slots__ = ()

    def __repr__(self) -> str:
        from .secret import scrub  # a configured header may hold a Secret's value too

        shown = {k: ("[REDACTED]" if k.lower() in CREDENTIAL_HEADERS else v)
                 for k, v in self.items()}
        return scrub(f"RedactedHeaders({shown!r})")

    __str__ = __repr__
