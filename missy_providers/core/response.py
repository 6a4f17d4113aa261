"""Response: one HTTP response as the caller reads it, body decoded by the sans-IO reader
(:mod:`missy_providers.core.h1`) from a connection of :mod:`missy_providers.core.http`; and
JSON from a server, parsed in one place with one error mapping."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from .errors import ProtocolError, ProviderUnavailable, RequestTimeout, StreamClosed, excerpt
from .h1 import ResponseReader
from .wire import CallBudget, DeadlinePassed, Timeouts

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    from .http import Connection, PolicyHTTPClient
    from .policy import Target


class Response:
    """An HTTP response. Non-streamed bodies are already read; a streamed one is read with
    :meth:`iter_raw` and must be closed (it is a context manager). :meth:`close` may be called
    from another thread: a read blocked in :meth:`iter_raw` then ends with StreamClosed."""

    def __init__(self, client: PolicyHTTPClient, conn: Connection, reader: ResponseReader,
                 first: bytes, target: Target, timeouts: Timeouts, budget: CallBudget,
                 provider: str) -> None:
        head = reader.head
        assert head is not None
        self.status, self.reason, self.headers = head.status, head.reason, head
        self.url = f"{target.scheme}://{target.authority}{target.log_path}"
        self._client, self._conn, self._reader = client, conn, reader
        self._first = first  # body bytes that arrived with the head
        self._timeouts, self._budget, self._provider = timeouts, budget, provider
        self._body: bytes | None = None
        self._closed = False
        self._reader_thread: int | None = None  # the thread inside iter_raw, if any

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def bytes_received(self) -> int:
        return self._reader.received

    def _pieces(self) -> Iterator[bytes]:
        """Body bytes as they are decoded from the socket, until the response ends."""
        reader, conn = self._reader, self._conn
        if self._first:
            yield self._first
        while not reader.done:
            data = self._recv()
            if not data:
                if conn.closed_by_caller:
                    raise StreamClosed("the stream was closed while it was being read",
                                       provider=self._provider)
                try:
                    reader.eof()
                except ProtocolError as exc:
                    raise ProtocolError(f"{self.url}: {exc.message}",
                                        provider=self._provider) from None
                break
            try:
                piece = reader.feed(data)
            except ProtocolError as exc:
                raise ProtocolError(f"{self.url}: {exc.message}", provider=self._provider
                                    ) from None
            if piece:
                yield piece

    def _recv(self) -> bytes:
        try:
            return self._conn.recv()
        except DeadlinePassed:
            raise self._deadline_passed() from None
        except TimeoutError:
            if time.monotonic() >= self._conn.deadline:
                raise self._deadline_passed() from None
            raise RequestTimeout(f"timed out: no data from {self.url} for "
                                 f"{self._timeouts.read:g}s (the read timeout, `timeout`, "
                                 "between bytes; raise it for slow models)",
                                 provider=self._provider) from None
        except OSError as exc:
            if self._conn.closed_by_caller:
                raise StreamClosed("the stream was closed while it was being read",
                                   provider=self._provider) from None
            raise ProviderUnavailable(f"connection to {self.url} failed while reading "
                                      f"({type(exc).__name__})", provider=self._provider
                                      ) from None

    def _deadline_passed(self) -> RequestTimeout:
        return self._budget.expired(self._provider, f"while reading {self.url}")

    def iter_raw(self) -> Iterator[bytes]:
        """Body bytes as they arrive from the socket: no read-ahead beyond one network read."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        self._reader_thread = threading.get_ident()
        try:
            yield from self._pieces()
        finally:
            self._reader_thread = None
            self._finish()

    def read(self, limit: int | None = None) -> bytes:
        """The whole body, refused past ``limit`` bytes (default: the client's maximum)."""
        if self._body is not None:
            return self._body
        limit = self._client.max_body_bytes if limit is None else limit
        declared = self._reader.declared_length
        if declared is not None and declared > limit:
            self._finish()
            raise ProtocolError(f"response from {self.url} declares {declared} bytes, over "
                                f"the {limit}-byte limit", provider=self._provider)
        parts: list[bytes] = []
        size = 0
        try:
            for piece in self._pieces():
                size += len(piece)
                if size > limit:
                    raise ProtocolError(f"response from {self.url} is over the {limit}-byte "
                                        "limit", provider=self._provider)
                parts.append(piece)
        finally:
            self._finish()
        self._body = b"".join(parts)
        return self._body

    def json(self) -> Any:
        return parse_json(self.read(), f"response from {self.url} (HTTP {self.status})",
                          self._provider)

    def close(self) -> None:
        """Release the connection: back to the pool if the response ended cleanly, else
        closed. From another thread, while a read is blocked: interrupts it."""
        if self._closed:
            return
        reader = self._reader_thread
        if reader is not None and reader != threading.get_ident():
            self._conn.interrupt()  # the reading thread sees StreamClosed and finishes
            return
        self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client._checkin(self._conn, self._reader.reusable)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_json(data: bytes | str, what: str, provider: str = "") -> Any:
    """``data`` as JSON; ProtocolError (naming ``what``) when it is not. A hostile body can be
    malformed, nested deeply enough to exhaust the parser's recursion, or hold numbers too long
    for ``int()``: each is a ProtocolError quoting (sanitized, bounded) only its start."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        # ValueError covers malformed JSON and integers past the int-string limit.
        kind = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
        raise ProtocolError(f"{what} is {kind}: '{excerpt(data, 60)}'", provider=provider
                            ) from None
