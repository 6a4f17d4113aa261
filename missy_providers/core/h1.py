"""A sans-IO HTTP/1.1 response reader: bytes in, head and body pieces out (RFC 9112).

It never touches a socket: :mod:`missy_providers.http` feeds it what it reads and asks, at the
end, whether the connection is clean enough to reuse. It is strict where a lenient reader lets
one response bleed into the next (the request-smuggling and desync family): conflicting
``Content-Length`` values, a ``Transfer-Encoding`` other than ``chunked``, chunk framing
errors and bytes after the end of a response are errors or make the connection unusable,
never guesses. Every buffer is bounded.
"""

from __future__ import annotations

from itertools import repeat

from .errors import ProtocolError
from .values import Value

MAX_HEAD_BYTES = 64 * 1024  # status line and headers together (nginx's large buffers: 4 x 8k)
MAX_HEADERS = 256
MAX_INFORMATIONAL = 16  # 1xx responses skipped before the final one
MAX_CHUNK_LINE = 4096  # a chunk-size line with its extensions
MAX_TRAILER_BYTES = 16 * 1024
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")


class Head(Value):
    """The final response's status line and headers (names lower-cased, in order)."""

    __slots__ = ("status", "reason", "headers", "keep_alive")
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    keep_alive: bool  # HTTP/1.1 without `Connection: close`

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...],
                 keep_alive: bool) -> None:
        self._set(status=status, reason=reason, headers=headers, keep_alive=keep_alive)

    def get(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (lower-case)."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


def _split_lines(block: bytes) -> list[bytes]:
    # RFC 9112 section 2.2: a recipient may take a bare LF as a line terminator.
    return [line[:-1] if line.endswith(b"\r") else line for line in block.split(b"\n")]


def parse_head(block: bytes) -> tuple[int, str, list[tuple[str, str]], bool]:
    """A response head (without its blank line) -> (status, reason, headers, is HTTP/1.1)."""
    lines = _split_lines(block)
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or \
            not _DIGITS.issuperset(code) or code[:1] == b"0":
        raise ProtocolError(f"not an HTTP/1.x status line ({len(lines[0])} bytes)")
    if len(lines) - 1 > MAX_HEADERS:
        raise ProtocolError(f"more than {MAX_HEADERS} response headers")
    headers = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError("obsolete folded header line (RFC 9112 section 5.2)")
        name, colon, value = line.partition(b":")
        text = name.decode("latin-1")
        if not colon or not text or not _TOKEN.issuperset(text):
            raise ProtocolError("malformed response header line")
        headers.append((text.lower(), value.strip(b" \t").decode("latin-1")))
    return int(code), reason.decode("latin-1"), headers, version == b"HTTP/1.1"


def _content_length(values: list[str]) -> int:
    # RFC 9110 section 8.6: a list of identical values may be taken as one; anything else is
    # an unrecoverable framing error.
    lengths = {v.strip() for value in values for v in value.split(",")}
    if len(lengths) != 1:
        raise ProtocolError("conflicting Content-Length values")
    text = lengths.pop()
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise ProtocolError("malformed Content-Length")
    return int(text)


class ResponseReader:
    """One response on one connection. :meth:`feed` takes bytes as read and returns the body
    bytes they complete; :attr:`head` is set once the final head arrived; :attr:`done` once
    the body ended. :meth:`eof` says the peer closed. ``reusable`` is true only for a response
    that ended cleanly, on a keep-alive connection, with nothing left over."""

    def __init__(self, method: str) -> None:
        self._method = method
        self._buf = b""
        self._state = "head"
        self._remaining = 0  # body bytes left (length) or chunk bytes left (chunked)
        self._informational = 0
        self._close_delimited = False
        self._declared: int | None = None
        self.head: Head | None = None
        self.done = False
        self.received = 0  # body bytes handed out
        self.leftover = False  # bytes arrived after the end of the response

    # --- head ----------------------------------------------------------------------------

    def _feed_head(self) -> bool:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        cut = 4
        lf = buf.find(b"\n\n")
        if lf >= 0 and (end < 0 or lf < end):
            end, cut = lf, 2
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
            return False
        if end > MAX_HEAD_BYTES:
            raise ProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
        status, reason, headers, http11 = parse_head(buf[:end])
        self._buf = buf[end + cut:]
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("the server switched protocols (101); this client speaks "
                                    "HTTP/1.1 only")
            self._informational += 1
            if self._informational > MAX_INFORMATIONAL:
                raise ProtocolError(f"more than {MAX_INFORMATIONAL} informational (1xx) "
                                    "responses")
            return True  # skip it: the final response follows
        connection = {t.strip().lower() for v in (h[1] for h in headers if h[0] == "connection")
                      for t in v.split(",")}
        keep_alive = http11 and "close" not in connection
        self.head = Head(status, reason, tuple(headers), keep_alive)
        self._frame(status, headers)
        return True

    def _frame(self, status: int, headers: list[tuple[str, str]]) -> None:
        """How the body is delimited (RFC 9112 section 6.3)."""
        if (self._method in ("HEAD", "CONNECT") and (self._method == "HEAD" or status < 300)) \
                or status in (204, 304):
            self._state = "done"
            return
        codings = [c.strip().lower() for v in (h[1] for h in headers
                                                 if h[0] == "transfer-encoding")
                   for c in v.split(",") if c.strip()]
        lengths = [h[1] for h in headers if h[0] == "content-length"]
        if codings:
            if codings != ["chunked"]:
                raise ProtocolError(f"unsupported Transfer-Encoding {', '.join(codings)!r}")
            if lengths:  # both: a smuggling pattern; read as chunked, never reuse
                self._close_delimited = True
            self._state = "chunk-size"
        elif lengths:
            self._remaining = self._declared = _content_length(lengths)
            self._state = "length" if self._remaining else "done"
        else:
            self._state, self._close_delimited = "close", True

    # --- body ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Body bytes that ``data`` completes (possibly empty)."""
        if self._state == "done":
            if data:
                self.leftover = True
            return b""
        buf = self._buf + data if self._buf else data
        self._buf = buf
        while self._state == "head":
            if not self._feed_head():
                return b""
        if self._state == "done":
            self._finish()
            return b""
        buf, self._buf = self._buf, b""
        if self._state == "length":
            piece = buf[:self._remaining]
            self._remaining -= len(piece)
            if len(buf) > len(piece):
                self.leftover = True
            if not self._remaining:
                self._finish()
            self.received += len(piece)
            return piece
        if self._state == "close":
            self.received += len(buf)
            return buf
        return self._feed_chunked(buf)

    def _feed_chunked(self, buf: bytes) -> bytes:
        out: list[bytes] = []
        pos, size = 0, len(buf)
        quick = True  # the whole-chunks path is tried once a read, at its first chunk-size line
        while pos < size:
            state = self._state
            if state == "chunk-size" and quick:
                quick = False
                pos += self._whole_chunks(buf[pos:] if pos else buf, out)
                continue
            if state == "chunk-data":
                take = min(self._remaining, size - pos)
                out.append(buf[pos:pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = "chunk-crlf"
                continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                rest = buf[pos:]
                limit = MAX_TRAILER_BYTES if state == "trailers" else MAX_CHUNK_LINE
                if len(rest) > limit:
                    raise ProtocolError("chunk framing line too long")
                self._buf = rest
                break
            line = buf[pos:nl]
            pos = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if state == "chunk-crlf":
                if line:
                    raise ProtocolError("chunk data not followed by CRLF")
                self._state = "chunk-size"
            elif state == "chunk-size":
                digits = line.partition(b";")[0].strip(b" \t")
                if not digits or len(digits) > 15 or not _HEX.issuperset(digits):
                    raise ProtocolError("malformed chunk size")
                self._remaining = int(digits, 16)
                self._state = "chunk-data" if self._remaining else "trailers"
            else:  # trailers: ignored, bounded, until the blank line
                self._remaining += len(line) + 2
                if self._remaining > MAX_TRAILER_BYTES:
                    raise ProtocolError("response trailers too long")
                if not line:
                    self._finish()
                    if pos < size:
                        self.leftover = True
                    break
        piece = b"".join(out)
        self.received += len(piece)
        return piece

    def _whole_chunks(self, buf: bytes, out: list[bytes]) -> int:
        """The common read: whole chunks, each ``SIZE CRLF data CRLF`` with a plain hex size
        (1-15 digits), checked all at once (split on CRLF; every size line hex, every data
        part as long as its size says) rather than a chunk at a time. Returns where the
        general rules go on: the whole read when anything differs (a chunk split by the read
        is left to them too, as are the last chunk, extensions and bare LFs). It takes only
        what those rules would take, the same way."""
        parts = buf.split(b"\r\n")
        pairs = (len(parts) - 1) // 2  # a size line and its data, each followed by CRLF
        if not pairs:  # pragma: no mutate (a fast path)
            return 0
        heads, bodies = parts[0:2 * pairs:2], parts[1:2 * pairs:2]
        lengths = list(map(len, heads))
        if min(lengths) < 1 or max(lengths) > 15 or \
                not _HEX.issuperset(b"".join(heads)):  # pragma: no mutate
            return 0
        sizes = list(map(int, heads, repeat(16, pairs)))
        if 0 in sizes:  # the last chunk, and what follows it: the general rules
            pairs = sizes.index(0)
            del sizes[pairs:], bodies[pairs:], lengths[pairs:]
        if list(map(len, bodies)) != sizes:  # pragma: no mutate
            return 0
        out += bodies
        return sum(lengths) + sum(sizes) + 4 * pairs

    def _finish(self) -> None:
        self._state = "done"
        self.done = True
        if self._buf:
            self.leftover = True
            self._buf = b""

    def eof(self) -> None:
        """The peer closed. Ends a close-delimited body; anything else unfinished is an error
        naming what was missing."""
        if self._state == "done":
            return
        if self._state == "close":
            self._finish()
            return
        if self._state == "head":
            raise ProtocolError("connection closed before a complete response head"
                                if self._buf else "connection closed before any response")
        if self._state == "length":
            raise ProtocolError(f"response body ended after {self.received} bytes, "
                                f"{self._remaining} short of its Content-Length")
        raise ProtocolError(f"chunked response body ended after {self.received} bytes "
                            "without its last chunk")

    @property
    def reusable(self) -> bool:
        head = self.head
        return (self.done and not self.leftover and not self._close_delimited
                and head is not None and head.keep_alive)

    @property
    def started(self) -> bool:
        """Any byte of the response arrived."""
        return bool(self._buf) or self.head is not None or self._informational > 0

    @property
    def declared_length(self) -> int | None:
        """The Content-Length the head declared, if any."""
        return self._declared
