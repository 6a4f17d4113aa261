"""Sans-IO stream decoders: Server-Sent Events and NDJSON. Bytes in, events out.

Nothing here reads a socket: ``http.py`` owns the I/O and calls :meth:`feed` with each network
read and :meth:`close` at end of body. Lines are split on bytes (CR, LF, CRLF) and only whole
lines are decoded, so a multi-byte character split across reads, or a U+2028 inside a JSON
string, survives. Every buffer is bounded; past a bound a :class:`ProtocolError` is raised.
"""

from __future__ import annotations

import json
from collections import namedtuple
from itertools import pairwise

from .core.errors import ProtocolError, excerpt

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any, NamedTuple

_BOM = b"\xef\xbb\xbf"
# h11 bounds an incomplete header block at 16 KiB (as node and tomcat do). SSE events carry whole
# JSON documents (a long tool-call argument, a base64 image), so the defaults are far larger,
# but still finite: a server that never ends a line cannot take all memory.
DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024
_EXCERPT_CHARS = 60


if TYPE_CHECKING:
    class Event(NamedTuple):
        event: str = "message"
        data: str = ""
        id: str | None = None
        retry: int | None = None
else:  # the same tuple, built without importing typing
    Event = namedtuple("Event", ["event", "data", "id", "retry"],
                       defaults=("message", "", None, None))
Event.__doc__ = "One dispatched SSE event (WHATWG 'dispatch the event'); compared by value."


class SSEDecoder:
    """Incremental WHATWG server-sent-events parser.

    Follows the HTML Living Standard "Parsing an event stream": one leading BOM stripped, lines
    end in CRLF, LF or CR, ``:`` lines are comments, one space after the colon is removed, a
    line without a colon is a field with an empty value, ``data`` lines are joined with ``\\n``,
    a blank line dispatches, a block with no ``data`` field dispatches nothing, ``id`` with NUL is
    ignored and persists across events, ``retry`` must be ASCII digits, unknown fields are
    ignored.

    At end of stream the spec discards an event that was not followed by a blank line;
    ``close(dispatch_unterminated=True)`` dispatches it instead (some servers end that way).
    """

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self.last_event_id: str | None = None
        self.retry: int | None = None
        # Bytes of the one incomplete event, normalised to LF, kept as the reads that brought
        # them: joined once, when its blank line arrives (a large event read in small pieces
        # is copied once, not once per read).
        self._parts: list[bytes] = []
        # Bytes in _parts, and of its last, unterminated line: set whenever _parts is refilled.
        self._pending: int
        self._line: int
        self._head = b""  # the first bytes, while they could still be a BOM
        self._at_start = True
        self._skip_lf = False  # the previous read ended in CR: a leading LF completes a CRLF
        self._closed = False

    def feed(self, data: bytes) -> list[Event]:
        """Events completed by ``data`` (often none)."""
        if self._closed:
            raise ProtocolError("SSE data fed after close()")
        if not data:  # nothing: must not end a CR's wait for its LF
            return []
        if data[-2:] == b"\n\n" and not self._parts and not self._at_start and \
                not self._skip_lf and b"\r" not in data:  # pragma: no mutate (a fast path)
            # The common read: whole events, nothing pending before or after them; commonest
            # of all, one event of a shape real servers send, made here without the loop.
            if data[:6] == b"data: " and data.find(b"\n") == len(data) - 2:  # pragma: no mutate
                return [_new(Event, ("message", data[6:-2].decode("utf-8", "replace"),
                                     self.last_event_id, None))]
            if data[:7] == b"event: " and data.find(b"\n\n") == len(data) - 2:  # pragma: no mutate
                event = _quick_event(data[:-2], self.last_event_id)
                if event is not None:
                    return [event]
            blocks = data.split(b"\n\n")
            blocks.pop()
            return self._parse_blocks(blocks)
        if self._at_start:
            data = self._head + data
            if len(data) < 3 and _BOM.startswith(data):  # pragma: no mutate (waits only)
                self._head = data  # could still be a BOM: wait for more bytes
                return []
            self._at_start = False
            if data.startswith(_BOM):
                data = data[3:]
        if b"\r" in data or self._skip_lf:
            data = self._normalise_line_ends(data)
        parts = self._parts
        if parts:
            if b"\n\n" not in data and not (data[:1] == b"\n" and parts[-1][-1:] == b"\n"):
                if not data:  # a CR's LF, completed: nothing new
                    return []
                parts.append(data)
                self._count_pending(data)
                if b"\n" in data and self._retry_pending(parts):  # pragma: no mutate
                    self._apply_retry_lines(b"".join(parts))  # a retry line just ended
                return []
            parts.append(data)
            data = b"".join(parts)
            parts.clear()
        blocks = data.split(b"\n\n")
        rest = blocks.pop()  # after the last blank line: the start of the next event
        self._pending = self._line = 0
        if rest:
            parts.append(rest)
            self._count_pending(rest)
        events = self._parse_blocks(blocks)
        if b"retry:" in rest:
            self._apply_retry_lines(rest)
        return events

    @staticmethod
    def _retry_pending(parts: list[bytes]) -> bool:
        # A `retry:` may itself be split across reads: look at each read and each seam.
        return any(b"retry:" in p for p in parts) or \
            b"retry:" in b"".join(p[-6:] + q[:6] for p, q in pairwise(parts))  # pragma: no mutate

    def _apply_retry_lines(self, rest: bytes) -> None:
        """WHATWG applies a ``retry`` field when its line is read, not when its event is
        dispatched: complete lines of the unfinished event are looked at now."""
        for line in rest.split(b"\n")[:-1]:  # the last piece is an unfinished line
            if line.startswith(b"retry:"):
                value = line[6:].removeprefix(b" ")
                if value.isdigit() and len(value) <= 10:
                    self.retry = int(value)

    def close(self, *, dispatch_unterminated: bool = False) -> list[Event]:
        """End of stream. Returns the unterminated last event only if asked to."""
        self._closed = True
        rest = b"".join(self._parts)  # (a BOM's first bytes alone, at the start, hold nothing)
        self._parts.clear()
        return self._parse_blocks([rest]) if dispatch_unterminated else []

    @property
    def pending(self) -> bool:
        """Whether bytes of an event without its terminating blank line are buffered."""
        return any(p.strip(b"\n") for p in self._parts)

    def _normalise_line_ends(self, data: bytes) -> bytes:
        if self._skip_lf and data[:1] == b"\n":
            data = data[1:]
        self._skip_lf = data[-1:] == b"\r"
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _count_pending(self, data: bytes) -> None:
        self._pending += len(data)
        nl = data.rfind(b"\n")
        self._line = len(data) - nl - 1 if nl >= 0 else self._line + len(data)
        if self._pending > self.max_event_bytes:
            raise ProtocolError(f"SSE event larger than {self.max_event_bytes} bytes "
                                "(max_event_bytes)")
        if self._line > self.max_line_bytes:
            raise ProtocolError(f"SSE line longer than {self.max_line_bytes} bytes "
                                "(max_line_bytes)")

    def _parse_blocks(self, blocks: list[bytes]) -> list[Event]:
        out: list[Event] = []
        append = out.append
        for block in blocks:
            event = _quick_event(block, self.last_event_id)
            if event is None and block:
                event = self._parse_block(block.decode("utf-8", "replace"))
            if event is not None:
                append(event)
        return out

    def _parse_block(self, block: str) -> Event | None:
        """One event block. Blocks are split on blank lines, so a blank line left inside one
        (three or more LFs in a row) can only be its first or last line: dispatching there
        would dispatch nothing new, so it is skipped."""
        data: list[str] = []
        event_type = "message"
        retry: int | None = None
        for line in block.split("\n"):
            if not line:  # (a ":" comment is a field with an empty name: ignored below)
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event_type = value or "message"
            elif name == "id":
                if "\0" not in value:
                    self.last_event_id = value
            elif name == "retry":
                # Digits only (WHATWG); a value past any sane reconnection time (more than ten
                # digits) is ignored rather than parsed into a huge int.
                if value.isascii() and value.isdigit() and len(value) <= 10:
                    self.retry = retry = int(value)
        if not data:
            return None
        return Event(event_type, "\n".join(data), self.last_event_id, retry)


def _quick_event(block: bytes, last_id: str | None) -> Event | None:
    """The two shapes real servers send, ``data: X`` (OpenAI) and ``event: N`` + ``data: X``
    (Anthropic, Responses), as the Event the full rules would make; None for anything else
    (then the full rules run). Each payload is decoded on its own: one non-ASCII character
    then widens only its own string. (The guards only choose this route; a mutated guard falls
    back to the full rules, which give the same event: "pragma: no mutate", see MUTATION.md.)"""
    nl = block.find(b"\n")
    if nl < 0:  # pragma: no mutate
        if block[:6] == b"data: ":  # pragma: no mutate
            return _new(Event, ("message", block[6:].decode("utf-8", "replace"), last_id, None))
        return None
    if (block[:7] == b"event: " and nl > 7  # pragma: no mutate
            and block[nl + 1:nl + 7] == b"data: "  # pragma: no mutate
            and block.find(b"\n", nl + 1) < 0):  # pragma: no mutate
        return _new(Event, (block[7:nl].decode("utf-8", "replace"),
                            block[nl + 7:].decode("utf-8", "replace"), last_id, None))
    return None


_new = tuple.__new__  # skips the NamedTuple's Python-level __new__ in the hot path


class NDJSONDecoder:
    """Newline-delimited JSON: one value per ``\\n`` (or ``\\r\\n``) line, blank lines skipped."""

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._line_no = 0  # lines consumed so far, for error messages
        self._closed = False

    def feed(self, data: bytes) -> list[Any]:
        if self._closed:
            raise ProtocolError("NDJSON data fed after close()")
        buf = self._buf
        start = len(buf)  # pragma: no mutate (where to look for a new newline: speed only)
        buf += data
        end = buf.rfind(b"\n", start)  # pragma: no mutate
        if end < 0:
            if len(buf) > self.max_line_bytes:
                raise ProtocolError(f"NDJSON line longer than {self.max_line_bytes} bytes "
                                    "(max_line_bytes)")
            return []
        lines = bytes(buf[:end]).split(b"\n")
        del buf[:end + 1]
        if len(buf) > self.max_line_bytes:
            raise ProtocolError(f"NDJSON line longer than {self.max_line_bytes} bytes "
                                "(max_line_bytes)")
        return self._parse(lines)

    def close(self) -> list[Any]:
        """End of body: a last line without its newline is still a value."""
        self._closed = True
        rest = bytes(self._buf)
        self._buf.clear()
        return self._parse([rest])

    def _parse(self, lines: list[bytes]) -> list[Any]:
        out: list[Any] = []
        loads = json.loads
        for line in lines:
            self._line_no += 1
            if line.strip():
                try:
                    out.append(loads(line))
                except (ValueError, RecursionError):
                    raise ProtocolError(f"NDJSON line {self._line_no} is not valid JSON: "
                                        f"'{excerpt(line, _EXCERPT_CHARS)}'") from None
        return out
