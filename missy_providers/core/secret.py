"""Secret, and the one scrubber every error passes through.

Every credential the package holds is a :class:`Secret`: config keys, env keys, key rings,
Codex OAuth tokens. Each live Secret is remembered in a weak set on the class itself, so the
scrubber can replace every known value without any module holding a plain list of keys (a
repr of the set shows ``Secret('***')`` objects; a Secret that nothing uses any more drops
out). A pattern pass catches key- and token-shaped strings the package never held (a server
echoing some other credential).
"""

from __future__ import annotations

import re
import weakref
from urllib.parse import quote

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import ClassVar

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 8  # shorter values would redact ordinary words
# Shapes of credentials the package may not know: OpenAI/Anthropic-style keys, bearer tokens,
# JWTs (OAuth access and id tokens).
_TOKEN_PATTERNS = re.compile(
    r"sk-[A-Za-z0-9_\-]{12,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
)


class Secret:
    """A credential. Its repr and str never show the value; :meth:`reveal` is called only where
    a request header is built."""

    __slots__ = ("_value", "__weakref__")
    _live: ClassVar[weakref.WeakSet[Secret]] = weakref.WeakSet()

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= MIN_SECRET_CHARS:
            Secret._live.add(self)

    def reveal(self) -> str:
        return self._value

    # Compared and hashed by identity: the weak set must hold every live Secret, even two
    # with the same value (one may die while the other lives on).

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> str:  # never pickled with its value
        raise TypeError("a Secret cannot be pickled")


def _forms(value: str) -> set[str]:
    """The ways a server may echo a value back: as sent, percent-encoded, JSON-escaped."""
    return {value, quote(value, safe=""), value.replace("\\", "\\\\").replace('"', '\\"'),
            value.replace("/", "\\/")}


def scrub(text: str) -> str:
    """``text`` with every live Secret's value, and everything shaped like a key or bearer
    token, replaced by ``[REDACTED]``."""
    if not text:
        return text
    for secret in list(Secret._live):
        value = secret._value
        if value in text:
            text = text.replace(value, REDACTED)
        else:
            for form in _forms(value):
                if form in text:
                    text = text.replace(form, REDACTED)
    return _TOKEN_PATTERNS.sub(REDACTED, text)


# C0 and C1 controls and DEL, shown escaped: a server must not be able to move an operator's
# cursor, clear their terminal or forge a log line.
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
EXCERPT_CHARS = 200
# Scrubbed over a wider window than shown, so a secret straddling the cut is still found whole.
_SCRUB_WINDOW = 4096


def excerpt(text: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """A server-supplied text safe to quote in a message: scrubbed, control characters
    escaped, at most ``limit`` characters (then ``...``)."""
    if isinstance(text, bytes):
        text = text[:_SCRUB_WINDOW].decode("utf-8", "replace")
    shown = scrub(text[:_SCRUB_WINDOW]).translate(_CONTROL_ESCAPES)
    return shown if len(shown) <= limit else shown[:limit] + "..."
