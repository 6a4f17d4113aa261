"""The streamed answer as the caller sees it, and the per-API accumulator contract."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import MissyError, ProtocolError
from ..http import Response
from ..types import CompletionResponse, StreamEvent

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any


class StreamResponse:
    """Iterates text deltas as they arrive; once exhausted, :attr:`response` holds the final
    CompletionResponse. :meth:`events` gives typed events (text, tool_call, done) instead.
    Closing it early closes the connection."""

    def __init__(self, events: Iterator[StreamEvent], http_response: Response) -> None:
        self._events = events
        self._http = http_response
        self._final: CompletionResponse | None = None

    def __repr__(self) -> str:
        state = "done" if self._final is not None else "open"
        return f"StreamResponse(url={self._http.url!r}, status={self._http.status}, {state})"

    def events(self) -> Iterator[StreamEvent]:
        try:
            for event in self._events:
                if event.type == "done":
                    self._final = event.response
                yield event
        except MissyError as exc:
            # The boundary: the decoder and accumulator frames below hold raw server bytes.
            raise exc.with_traceback(None) from None

    def __iter__(self) -> Iterator[str]:
        for event in self.events():
            if event.type == "text":
                yield event.text

    @property
    def response(self) -> CompletionResponse:
        """The final response, reading whatever the caller left unread."""
        for _ in self.events():
            pass
        if self._final is None:
            raise ProtocolError("the stream was closed before it completed")
        return self._final

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
        self._http.close()

    def __enter__(self) -> StreamResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Accumulator:
    """Turns decoded stream items (SSE events or NDJSON objects) into StreamEvents, and at the
    end into the final CompletionResponse. One per stream."""

    def feed(self, item: Any) -> Iterable[StreamEvent]:
        raise NotImplementedError

    def finish(self) -> CompletionResponse:
        raise NotImplementedError
