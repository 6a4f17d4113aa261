"""Sans-IO decoder of AWS event-stream framing (``application/vnd.amazon.eventstream``).

Bedrock's ConverseStream answers in this framing. A message is a 12-byte prelude (total length
and headers length, uint32 big-endian, then the CRC32 of those 8 bytes), the headers, the
payload, and the CRC32 of everything before it (Smithy "Event streams"; the framing of
aws-c-event-stream and botocore's ``eventstream.py``). A header is a 1-byte name length, the
UTF-8 name, a 1-byte value type and the value: 0 true, 1 false, 2/3/4/5 signed int8/16/32/64,
6 bytes and 7 UTF-8 string (each after a uint16 length), 8 timestamp (int64 ms since the
epoch), 9 UUID (16 bytes).

As ``streams.py``: bytes in, messages out, the caller owns the I/O. The prelude CRC is checked
before its lengths are trusted, and a declared length past the bound is refused before any
of the message is buffered. A ProtocolError ends the stream (the decoder takes no more data):
messages completed earlier in the same read are not returned with it.
"""

from __future__ import annotations

import zlib
from struct import unpack_from

from .core.errors import ProtocolError, excerpt
from .core.values import Value

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from collections.abc import Iterable

    # A timestamp (type 8) is its int of milliseconds, a UUID (type 9) its 16 bytes.
    HeaderValue = bool | int | bytes | str

_PRELUDE = 12
_MIN_MESSAGE = 16  # a prelude and a message CRC: no headers, no payload
# aws-c-event-stream's AWS_EVENT_STREAM_MAX_MESSAGE_SIZE ("current service-side max is 24 MB")
# and botocore's payload limit are both 24 MiB: a larger declared length is corrupt framing.
DEFAULT_MAX_MESSAGE_BYTES = 24 * 1024 * 1024
# aws-c-event-stream's AWS_EVENT_STREAM_MESSAGE_MAX_HEADERS: without it, a 24 MiB headers block
# of 2-byte headers would become millions of Python objects.
MAX_HEADERS = 1024
_FIXED_WIDTHS = {2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # value type -> bytes
# The headers consumers dispatch on: a server sending one as another type is broken.
_STRING_HEADERS = frozenset({":message-type", ":event-type", ":exception-type", ":content-type",
                             ":error-code", ":error-message"})
_EXCERPT_CHARS = 40


class EventMessage(Value):
    """One message, compared by value. ``headers`` are (name, value) pairs in wire order;
    names are unique, since a repeated name is refused (as botocore does): a consumer looking
    one up can never see a different value than another consumer would."""

    __slots__ = ("headers", "payload")
    headers: tuple[tuple[str, HeaderValue], ...]
    payload: bytes

    def __init__(self, headers: Iterable[tuple[str, HeaderValue]] = (),
                 payload: bytes = b"") -> None:
        self._set(headers=tuple(headers), payload=payload)

    def header(self, name: str) -> HeaderValue | None:
        """The value of header ``name``, or None (a message carries a handful of headers)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def _text(self, name: str) -> str | None:
        value = self.header(name)
        return value if isinstance(value, str) else None

    @property
    def message_type(self) -> str | None:
        """``event``, ``exception`` or ``error``."""
        return self._text(":message-type")

    @property
    def event_type(self) -> str | None:
        return self._text(":event-type")

    @property
    def exception_type(self) -> str | None:
        return self._text(":exception-type")

    @property
    def content_type(self) -> str | None:
        return self._text(":content-type")


class EventStreamDecoder:
    """Incremental decoder: :meth:`feed` each read, :meth:`close` at end of body."""

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        # Bytes of the one incomplete message, kept as the reads that brought them and joined
        # once, when they are enough: a large message read in small pieces is copied once.
        self._parts: list[bytes] = []
        self._have = 0  # bytes in _parts
        self._need = _PRELUDE  # bytes _parts waits for: its prelude, then its whole message
        self._count = 0  # messages decoded, and the stream offset of _parts (error messages)
        self._offset = 0
        self._closed = False

    @property
    def pending(self) -> bool:
        """Whether bytes of an incomplete message are buffered."""
        return self._have > 0

    def feed(self, data: bytes) -> list[EventMessage]:
        """Messages completed by ``data`` (often none)."""
        if self._closed:
            raise ProtocolError("event stream data fed after close() or an error")
        if type(data) is not bytes:
            data = bytes(data)  # payloads handed out must be immutable bytes
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._parts)
            self._parts.clear()
        out: list[EventMessage] = []
        view, pos, end = memoryview(data), 0, len(data)
        while end - pos >= _PRELUDE:
            total, headers_end, prelude_crc = self._prelude(view, pos)
            if end - pos < total:
                self._need = total
                break
            out.append(self._message(data, view, pos, total, headers_end, prelude_crc))
            pos += total
        else:
            self._need = _PRELUDE
        self._offset += pos
        self._have = end - pos
        if self._have:
            self._parts.append(data[pos:] if pos else data)
        return out

    def close(self) -> list[EventMessage]:
        """End of body. A message cut off is an error; there is nothing else to return."""
        self._closed = True
        if self._have:
            what = "its prelude" if self._need == _PRELUDE else "the message"
            raise ProtocolError(f"event stream ended inside message {self._count + 1} at byte "
                                f"{self._offset}: {self._have} of the {self._need} bytes of "
                                f"{what} arrived")
        return []

    def _error(self, pos: int, problem: str) -> ProtocolError:
        """A ProtocolError naming the message (from 1) and the stream offset it starts at. The
        decoder is done: where the next message would start is unknown (as h11's ERROR)."""
        self._closed, self._have = True, 0
        self._parts.clear()
        return ProtocolError(f"event stream message {self._count + 1} at byte "
                             f"{self._offset + pos}: {problem}")

    def _prelude(self, view: memoryview, pos: int) -> tuple[int, int, int]:
        """(total length, end of headers, prelude CRC) of the message at ``pos``, checked."""
        total, headers_length, sent = unpack_from(">III", view, pos)
        crc = zlib.crc32(view[pos:pos + 8])
        if crc != sent:  # the lengths are noise: say so before trusting them (the bytes
            # quoted are the prelude's alone, so the message is the same however it was read)
            start = excerpt(bytes(view[pos:pos + _PRELUDE]), _EXCERPT_CHARS)
            raise self._error(pos, f"prelude checksum mismatch (sent 0x{sent:08x}, computed "
                                   f"0x{crc:08x}); the data begins '{start}'")
        if total < _MIN_MESSAGE:
            raise self._error(pos, f"total length {total} is under the {_MIN_MESSAGE}-byte "
                                   "minimum")
        if total > self.max_message_bytes:
            raise self._error(pos, f"total length {total} is over {self.max_message_bytes} "
                                   "bytes (max_message_bytes)")
        if headers_length > total - _MIN_MESSAGE:
            raise self._error(pos, f"headers length {headers_length} does not fit in total "
                                   f"length {total}")
        return total, pos + _PRELUDE + headers_length, crc

    def _message(self, data: bytes, view: memoryview, pos: int, total: int, headers_end: int,
                 prelude_crc: int) -> EventMessage:
        end = pos + total - 4
        # The message CRC covers the prelude too: go on from the prelude's CRC.
        crc = zlib.crc32(view[pos + 8:end], prelude_crc)
        sent = int.from_bytes(data[end:end + 4], "big")
        if crc != sent:
            raise self._error(pos, f"message checksum mismatch (sent 0x{sent:08x}, computed "
                                   f"0x{crc:08x})")
        start = pos + _PRELUDE
        headers = self._headers(data, start, headers_end, pos) if headers_end > start else ()
        self._count += 1
        return EventMessage(headers, data[headers_end:end])

    def _headers(self, data: bytes, pos: int, end: int,
                 at: int) -> tuple[tuple[str, HeaderValue], ...]:
        headers: dict[str, HeaderValue] = {}
        while pos < end:
            if len(headers) == MAX_HEADERS:
                raise self._error(at, f"more than {MAX_HEADERS} headers")
            name_end = pos + 1 + data[pos]
            if name_end >= end:  # the type byte must follow the name inside the block
                raise self._error(at, f"header {len(headers) + 1} runs past the headers block")
            try:
                name = data[pos + 1:name_end].decode()
            except UnicodeDecodeError:
                raise self._error(at, f"header {len(headers) + 1} has a name that is not "
                                      "UTF-8") from None
            kind, pos = data[name_end], name_end + 1
            value: HeaderValue = kind == 0
            if kind > 1:
                if kind in _FIXED_WIDTHS:
                    start, pos = pos, pos + _FIXED_WIDTHS[kind]
                elif kind <= 7:  # 6 and 7: a uint16 length, then the bytes
                    start = pos + 2
                    pos = start + (int.from_bytes(data[pos:start], "big") if start <= end else 0)
                else:
                    raise self._error(at, f"header '{_shown(name)}' has unknown value type "
                                          f"{kind}")
                if pos > end:
                    raise self._error(at, f"the value of header '{_shown(name)}' runs past the "
                                          "headers block")
                raw = data[start:pos]
                if kind == 7:
                    try:
                        value = raw.decode()
                    except UnicodeDecodeError:
                        raise self._error(at, f"the value of header '{_shown(name)}' is not "
                                              "UTF-8") from None
                else:
                    value = raw if kind in (6, 9) else int.from_bytes(raw, "big", signed=True)
            if kind != 7 and name in _STRING_HEADERS:
                raise self._error(at, f"header '{name}' is not a string (value type {kind})")
            if name in headers:
                raise self._error(at, f"header '{_shown(name)}' is repeated")
            headers[name] = value
        return tuple(headers.items())


def _shown(name: str) -> str:
    """A header name from the server, as it may be quoted: short, controls escaped."""
    return excerpt(name, _EXCERPT_CHARS)
