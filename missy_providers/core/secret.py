"""Secret, and the one sanitizer for everything a server or a model says.

Every credential the package holds is a :class:`Secret`: config keys, env keys, key rings,
configured credential headers, Codex OAuth tokens, AWS keys. Each live Secret is remembered in
a weak set on the class (process-wide state, listed in docs/AUDIT.md), so the scrubber can
replace every known value without any module holding a plain list of keys; a Secret that
nothing uses any more drops out. A pattern pass catches key- and token-shaped strings the
package never held (a server echoing some other credential).

Text from outside (a reason phrase, an error body, a model's answer, a model name) reaches an
exception, a log record or the terminal only through :func:`sanitize` (bounded, secrets
scrubbed in every encoding, every control character escaped) or :func:`for_terminal`.
"""

from __future__ import annotations

import base64
import logging
import re
import weakref
from urllib.parse import quote, quote_plus

from .values import Final, own_text

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


class Secret(Final):  # final: what is revealed is what was checked
    """A credential. Its repr and str never show the value; :meth:`reveal` is called only by
    the trusted core, where a request's bytes are framed, a request is signed or a token file
    is written (tests/test_invariants.py holds every call to it inside ``core/``).

    ``origin`` says where it came from, for display (``env OPENAI_API_KEY``, ``config``);
    ``only_host``, when set, is the one host it may be sent to (the core refuses any other)."""

    __slots__ = ("_value", "_forms_cache", "origin", "only_host", "__weakref__")
    _live: ClassVar[weakref.WeakSet[Secret]] = weakref.WeakSet()

    def __init__(self, value: str, *, origin: str = "", only_host: str | None = None) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, got {type(value).__name__}")
        self._value = own_text(value)  # what is revealed is what was checked
        self._forms_cache: tuple[str, ...] | None = None
        self.origin, self.only_host = origin, only_host
        if len(self._value) >= MIN_SECRET_CHARS:
            Secret._live.add(self)

    def reveal(self) -> str:
        return self._value

    def same_value(self, other: Secret) -> bool:
        """Whether two Secrets hold the same credential (compared in constant time)."""
        import hmac

        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def jwt_claims(self) -> dict[str, object]:
        """The claims of a JWT held here, unverified (a login token's expiry and account);
        {} when it is not a JWT."""
        import json

        try:
            payload = self._value.split(".")[1]
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    # Compared and hashed by identity: the weak set must hold every live Secret, even two
    # with the same value (one may die while the other lives on).

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> str:  # never pickled with its value
        raise TypeError("a Secret cannot be pickled")

    def _forms(self) -> tuple[str, ...]:
        """The ways a server most often echoes the value back, found and replaced exactly:
        as sent, percent-encoded, form-encoded, JSON-escaped, and base64 at each of the three
        alignments it can have inside a longer base64 text (``Basic user:key``). Any other
        encoding is found by decoding the text (:func:`scrub`)."""
        if self._forms_cache is None:
            value = self._value
            json = value.replace("\\", "\\\\").replace('"', '\\"')
            found = {value, quote(value, safe=""), quote(value), quote_plus(value), json,
                     json.replace("/", "\\/"), value.replace("/", "\\/")}
            raw = value.encode("utf-8", "surrogatepass")
            for offset in range(3):
                encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
                # Only the characters that depend on the value's bytes alone (the run of
                # base64 around it is removed whole, :func:`scrub`).
                middle = encoded[4 if offset else 0:(offset + len(raw)) // 3 * 4]
                if len(middle) >= MIN_SECRET_CHARS:
                    found |= {f"\0{middle}", f"\0{middle.replace('+', '-').replace('/', '_')}"}
            self._forms_cache = tuple(sorted(found, key=len, reverse=True))
        return self._forms_cache


# A token: a run of characters an encoding keeps together (quotes, brackets, commas and white
# space end one). One that carries an escape, or looks like base64 or hex, is decoded.
_TOKEN = re.compile(r"""[^\s"'<>()\[\]{},]{8,}""")
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\/|&#?\w+;|^[A-Za-z0-9+/_=-]{12,}$"
                      r"|=[A-Za-z0-9+/_-]{12,}")  # or a name=value that may hold one
_JSON_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\(.)")
_HEX = frozenset("0123456789abcdefABCDEF")
_PARAMETER_SPLIT = re.compile(r"[&;?]")
# Runs of hex, and of base64, inside a longer token (looked for apart: a hex run inside a
# base64-shaped one, as in a path, is a run of its own).
_HEX_RUNS = re.compile(r"(?:0[xX])?[0-9A-Fa-f]{16,}")
_BASE64_RUNS = re.compile(r"[A-Za-z0-9+/_-]{16,}=*")
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")


def _json_unescaped(text: str) -> str:
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2),
                            text)


_DECODE_ROUNDS = 4  # encodings stacked this deep are undone (percent of percent of base64 ...)
_MAX_VARIANTS = 128  # and a token never costs more than this many decodings


def _decoded(token: str) -> set[str]:
    """``token`` as every encoding a server may have applied would decode it, stacked up to
    four deep in any order: percent (any case), JSON escapes, HTML entities, and base64
    (standard or URL-safe, padded or not) and hex (``0x`` or not) when the text, or its value
    after a ``name=``, has their shape."""
    out = {token}
    frontier = {token}
    for _ in range(_DECODE_ROUNDS):
        found = {decoded for text in frontier for decoded in _decoded_once(text)}
        frontier = found - out
        out |= frontier
        if not frontier or len(out) > _MAX_VARIANTS:
            break
    return out


def _holds(part: str, secrets: list[Secret]) -> bool:
    """Whether ``part``, decoded, holds a secret; a name=value inside a decoded form is
    decoded on a budget of its own."""
    variants = _decoded(part)
    if any(s._value in v for s in secrets for v in variants):
        return True
    inner = {value for v in variants if v != part for value in _values(v)}
    return any(s._value in v for value in inner for s in secrets for v in _decoded(value))


def _values(text: str) -> list[str]:
    """The value of each ``name=value`` in ``text`` (a query string's parameters; a value's
    own base64 padding stays with it)."""
    if "=" not in text.rstrip("="):
        return []
    return [piece.partition("=")[2] for piece in _PARAMETER_SPLIT.split(text)
            if "=" in piece.rstrip("=")]


def _decoded_once(text: str) -> set[str]:
    from html import unescape
    from urllib.parse import unquote

    found = {unquote(text), unescape(text), _json_unescaped(text)}
    # The text itself, and the value of each name=value in it once decoded (a query string
    # inside base64).
    for value in {text, *_values(text)}:
        core = value.rstrip("=")
        hexed = core[2:] if core[:2] in ("0x", "0X") else core
        if len(hexed) >= 16 and _HEX.issuperset(hexed):
            # At both alignments: hex digits around the encoded key (a run of A-F) may shift
            # it by one.
            for aligned in (hexed, hexed[1:]):
                aligned = aligned[:len(aligned) // 2 * 2]
                found.add(bytes.fromhex(aligned).decode("utf-8", "replace"))
        for altchars in (b"+/", b"-_"):
            try:
                raw = base64.b64decode(core + "=" * (-len(core) % 4), altchars, validate=True)
            except ValueError:
                continue
            found.add(raw.decode("utf-8", "replace"))
    return found


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def scrub(text: str) -> str:
    """``text`` with every live Secret, and everything shaped like a key or bearer token,
    replaced by ``[REDACTED]``, in one pass: the spans of every form of every secret are found
    in the original text and merged before anything is replaced (two secrets that overlap go
    whole, whatever their order); and a token that carries an encoding is decoded
    (:func:`_decoded`) and goes whole if it holds a secret (a form not listed, such as
    lower-case or partial percent-encoding, ``\\u002f``, ``&#43;``, base64 with its ends)."""
    if isinstance(text, str) and type(text) is not str:
        text = own_text(text)  # its own characters, not what its len() or find() say
    if not text:
        return text
    secrets = list(Secret._live)
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        for form in secret._forms():
            base64_run = form[0] == "\0"  # a base64 middle: its whole run goes
            form = form[1:] if base64_run else form
            start = text.find(form)
            while start >= 0:
                end = start + len(form)
                if base64_run:
                    while start and text[start - 1] in _BASE64_CHARS:
                        start -= 1
                    while end < len(text) and text[end] in _BASE64_CHARS:
                        end += 1
                spans.append((start, end))
                start = text.find(form, end)
    text = _replaced(text, spans)
    if secrets:  # then what is left, decoded (the markers above end a token)
        spans = []
        for match in _TOKEN.finditer(text):
            token = match.group()
            runs = {*_HEX_RUNS.findall(token), *_BASE64_RUNS.findall(token)} - {token}
            if _ENCODED.search(token) is None and not runs:
                continue
            # The token, each name=value in it and each run of base64 or hex characters
            # (``key:0x...``, ``/v1/keys/<hex>``) as a token of its own: each gets the whole
            # decoding budget, however much surrounds it; so does each name=value found once
            # one layer is decoded (a query string inside base64).
            if any(_holds(part, secrets) for part in (token, *_values(token), *runs)):
                spans.append(match.span())
        text = _replaced(text, spans)
    return _TOKEN_PATTERNS.sub(REDACTED, text)


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in _merged(spans):
        pieces += [text[last:start], REDACTED]
        last = end
    return "".join(pieces) + text[last:]


# Escaped wherever outside text is shown: C0 and C1 controls and DEL (a server must not move an
# operator's cursor, ring their bell, clear their terminal or start a second log line), and the
# invisible characters that reorder or split what is displayed: bidi embeddings, overrides and
# isolates (CVE-2021-42574, "Trojan Source"), line and paragraph separators, BOM.
_INVISIBLE = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),
              0x2028, 0x2029, 0xFEFF)
_CONTROLS = (*range(0x20), *range(0x7F, 0xA0))
_ESCAPES = {**{c: f"\\x{c:02x}" for c in _CONTROLS},
            **{c: f"\\u{c:04x}" for c in _INVISIBLE}}
# Model output on a terminal keeps its line breaks (LF) and tabs.
_TERMINAL_ESCAPES = {**{c: f"\\x{c:02x}" for c in _CONTROLS if c not in (0x09, 0x0A)},
                     **{c: f"\\u{c:04x}" for c in _INVISIBLE}}
EXCERPT_CHARS = 200
MAX_MESSAGE_CHARS = 2000  # an error message or log value, whole (several quoted excerpts)
# Scrubbed over a wider window than shown, so a secret straddling the cut is still found whole.
_SCRUB_WINDOW = 4096


def sanitize(text: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """Outside text made safe to quote in a message or a log record: decoded, every secret
    scrubbed, every control and invisible character escaped, at most ``limit`` characters
    (then ``...``)."""
    if isinstance(text, bytes):
        text = text[:_SCRUB_WINDOW].decode("utf-8", "replace")
    elif type(text) is not str:
        text = own_text(text)  # its own characters, not what its slicing says
    window = max(_SCRUB_WINDOW, 2 * limit)
    shown = scrub(text[:window]).translate(_ESCAPES)
    return shown if len(shown) <= limit else shown[:limit] + "..."


excerpt = sanitize  # the name the callers that quote a server's words use


# What ends a token (_TOKEN): the last one in a piece.
_LAST_DELIMITER = re.compile(r""".*[\s"'<>()\[\]{},]""", re.S)


class StreamScrubber:
    """:func:`scrub` for a text that arrives in pieces (a streamed answer shown as it comes):
    what :meth:`feed` returns ends where a token ends (white space, a quote, a bracket, a
    comma) and never with a ``Bearer`` whose token is still to come, so a key streamed a few
    characters at a time is found whole; a token is held until it ends, however long (the
    answer is kept whole anyway). :meth:`flush` returns what is held, at the end. A secret that
    itself holds white space, quotes, brackets or commas is found only when a piece holds it
    whole."""

    __slots__ = ("_held", "_bearer")

    def __init__(self) -> None:
        self._held: list[str] = []  # pieces, joined only when a token ends
        self._bearer = False  # what is held is "Bearer" and white space: its token is to come

    def feed(self, piece: str) -> str:
        # Only the new piece is searched for a delimiter: what is held ends in a token, or is
        # a "Bearer" waiting for its token. Pieces that cannot end either wait with it,
        # uncopied (white space while a Bearer waits).
        last = _LAST_DELIMITER.match(piece)
        if last is None or (self._bearer and piece.isspace()):
            self._held.append(piece)
            return ""
        held = sum(map(len, self._held))
        text = "".join(self._held) + piece
        cut = held + last.end()
        shown = text[:cut].rstrip()
        self._bearer = shown[-6:].lower() == "bearer"
        if self._bearer:  # its token may still come: hold it with it
            cut = len(shown) - 6
        self._held = [text[cut:]] if cut < len(text) else []
        return scrub(text[:cut]) if cut > 0 else ""

    def flush(self) -> str:
        text, self._held, self._bearer = "".join(self._held), [], False
        return scrub(text)


def neutralised(text: str) -> str:
    """Text already scrubbed, made safe for a terminal (see :func:`for_terminal`)."""
    return text.translate(_TERMINAL_ESCAPES)


def for_terminal(text: str) -> str:
    """Model or server text for an operator's terminal: secrets scrubbed, control sequences
    neutralised (ESC, BEL, CR, C1, bidi overrides escaped), line breaks and tabs kept.
    Unbounded: this is the answer itself."""
    return scrub(text).translate(_TERMINAL_ESCAPES)


def _safe_arg(value: object) -> object:
    if isinstance(value, (int, float)) or value is None:
        return value
    return sanitize(str(value), MAX_MESSAGE_CHARS)


class SafeLogger:
    """The package's loggers: every argument of a record is sanitized before the record is
    made (a server's reason phrase with a bare CR cannot forge a second log line, a key it
    echoes is scrubbed). Messages are constant strings of ours; only arguments vary."""

    __slots__ = ("_log",)

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def debug(self, msg: str, *args: object) -> None:
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug(msg, *map(_safe_arg, args))

    def info(self, msg: str, *args: object) -> None:
        if self._log.isEnabledFor(logging.INFO):
            self._log.info(msg, *map(_safe_arg, args))

    def warning(self, msg: str, *args: object) -> None:
        if self._log.isEnabledFor(logging.WARNING):
            self._log.warning(msg, *map(_safe_arg, args))

    def error(self, msg: str, *args: object) -> None:
        if self._log.isEnabledFor(logging.ERROR):
            self._log.error(msg, *map(_safe_arg, args))


def get_logger(name: str) -> SafeLogger:
    return SafeLogger(name)
