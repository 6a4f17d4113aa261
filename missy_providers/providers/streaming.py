"""The streamed answer as the caller sees it, and the per-API accumulator contract."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from json import JSONDecoder

from ..core.errors import MissyError, ProtocolError
from ..core.http import Response
from ..types import CompletionResponse, StreamEvent

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any


class StreamResponse:
    """Iterates text deltas as they arrive; once exhausted, :attr:`response` holds the final
    CompletionResponse. :meth:`events` gives typed events (text, tool_call, done) instead.
    Closing it early closes the connection."""

    def __init__(self, items: Iterator[str | StreamEvent], http_response: Response) -> None:
        self._items = items  # text deltas as str, everything else as StreamEvents
        self._http = http_response
        self._final: CompletionResponse | None = None
        self._error: MissyError | None = None

    def __repr__(self) -> str:
        state = "done" if self._final is not None else "open"
        return f"StreamResponse(url={self._http.url!r}, status={self._http.status}, {state})"

    def events(self) -> Iterator[StreamEvent]:
        if self._error is not None:
            raise self._error.with_traceback(None)
        try:
            for item in self._items:
                if isinstance(item, str):
                    yield StreamEvent("text", item)  # made here, for a caller who asks
                    continue
                if item.type == "done":
                    self._final = item.response
                yield item
        except MissyError as exc:
            self._error = exc  # .response raises it again; exc.partial is what arrived
            # The boundary: the decoder and accumulator frames below hold raw server bytes.
            raise exc.with_traceback(None) from None

    def __iter__(self) -> Iterator[str]:
        """The text deltas (what most callers read): no event object is made for them."""
        if self._error is not None:
            raise self._error.with_traceback(None)
        try:
            for item in self._items:
                if isinstance(item, str):
                    yield item
                elif item.type == "text":
                    yield item.text
                elif item.type == "done":
                    self._final = item.response
        except MissyError as exc:
            self._error = exc
            raise exc.with_traceback(None) from None

    @property
    def response(self) -> CompletionResponse:
        """The final response, reading whatever the caller left unread."""
        for _ in self.events():
            pass
        if self._final is None:
            raise ProtocolError("the stream was closed before it completed")
        return self._final

    def close(self) -> None:
        """Close the stream and its connection. Safe from another thread while one reads: the
        blocked read is interrupted and that thread's loop ends with StreamClosed."""
        self._http.close()
        close = getattr(self._items, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # "generator already executing": another thread is in it
                pass

    def __enter__(self) -> StreamResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A long answer is joined as it arrives, never kept as millions of small strings; past this many
# characters in one stream (text, thinking and tool arguments each) it is refused.
MAX_STREAM_TEXT_CHARS = 64 * 1024 * 1024
MAX_TOOL_CALLS = 1024  # tool calls in one response


class TextBuffer:
    """Text deltas joined as they arrive, with a bound. Kept as UTF-8 in one growing
    bytearray: about one byte a character for most text, where a str (or StringIO) of text
    with one emoji in it takes four, so the peak while the final str is made stays near the
    answer's own size (bench/run.py's memory case measures it). ``surrogatepass`` round-trips
    the lone surrogates a JSON string may carry."""

    __slots__ = ("_utf8", "size", "provider")

    def __init__(self, provider: str, initial: str = "") -> None:
        self._utf8 = bytearray()
        self.size = 0
        self.provider = provider
        if initial:
            self.add(initial)

    def add(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_STREAM_TEXT_CHARS:
            raise ProtocolError(f"stream text over {MAX_STREAM_TEXT_CHARS} characters",
                                provider=self.provider)
        self._utf8 += text.encode("utf-8", "surrogatepass")

    def value(self) -> str:
        return self._utf8.decode("utf-8", "surrogatepass")

    def __bool__(self) -> bool:
        return self.size > 0


# json.loads without its Python-level wrapper frames (the C scanner json.loads calls).
_scan: Callable[[str, int], tuple[Any, int]] = JSONDecoder().scan_once  # type: ignore[attr-defined]
NOT_QUICK = object()


def quick_json(text: str) -> Any:
    """``text`` as JSON by the C scanner alone (the common, well-formed chunk); NOT_QUICK for
    anything it does not take whole (leading or trailing whitespace, malformed JSON): the
    caller then parses with the full rules (``parse_json``), which say what is wrong."""
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return NOT_QUICK
    return value if end == len(text) else NOT_QUICK


def check_tool_calls(count: int, provider: str) -> None:
    if count > MAX_TOOL_CALLS:
        raise ProtocolError(f"more than {MAX_TOOL_CALLS} tool calls in one response",
                            provider=provider)


class Accumulator:
    """Turns decoded stream items (SSE events or NDJSON objects) into what the caller sees, and
    at the end into the final CompletionResponse. One per stream. A text delta is given as the
    ``str`` itself (a StreamEvent is made only for a caller of ``events()``: most callers only
    iterate text); everything else as a StreamEvent."""

    def feed(self, item: Any) -> Iterable[str | StreamEvent]:
        raise NotImplementedError

    def finish(self) -> CompletionResponse:
        raise NotImplementedError

    def partial(self) -> CompletionResponse | None:
        """What arrived before a failure, as a response (for ``error.partial``)."""
        return None
