"""The asyncio API: the same providers and the same audited client, run on a bounded pool.

There is one HTTP stack: every ``a*`` call runs the synchronous call on a worker thread of
the client's bounded pool (``PolicyHTTPClient.executor``), so every policy check, deadline and
limit applies unchanged. Cancelling the awaiting task interrupts the call's connection (its
blocked read returns at once) and frees the thread. asyncio is imported only by this module,
which is imported only when an ``a*`` method is first called.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import threading

from .core.wire import CANCEL_SCOPE, CancelScope

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from concurrent.futures import Executor
    from typing import Any, TypeVar

    from .providers.streaming import StreamResponse
    from .types import CompletionResponse, StreamEvent

    T = TypeVar("T")

_END = object()


async def run(executor: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on ``executor``; a cancel interrupts its connections."""
    loop = asyncio.get_running_loop()
    scope = CancelScope()
    context = contextvars.copy_context()

    def call() -> T:
        CANCEL_SCOPE.set(scope)
        return fn(*args, **kwargs)

    future = loop.run_in_executor(executor, context.run, call)
    try:
        return await future
    except asyncio.CancelledError:
        scope.cancel()  # the worker's blocked read returns now; the thread is freed
        raise


class AsyncStream:
    """``async with provider.astream(...) as stream: async for text in stream``; or
    ``stream.events()`` for typed events; ``stream.response`` once it is exhausted.

    A worker thread reads the stream into a queue; the loop is woken once for whatever
    arrived since it last looked (not once an event: under load, wake-ups coalesce). The
    stream's own caps bound what can queue up."""

    def __init__(self, executor: Executor, start: Callable[[], StreamResponse]) -> None:
        self._executor, self._start = executor, start
        self._stream: StreamResponse | None = None
        self._reader: asyncio.Future[None] | None = None
        self._items: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._wake: asyncio.Event | None = None

    async def __aenter__(self) -> AsyncStream:
        self._stream = await run(self._executor, self._start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the stream: its connection closes at once, from any thread."""
        if self._stream is not None:
            self._stream.close()
        if self._reader is not None:
            try:
                await self._reader
            except Exception:  # noqa: S110 (delivered to the iterator already, or unwanted)
                pass

    def _put(self, loop: asyncio.AbstractEventLoop, item: Any) -> None:
        self._items.append(item)
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        assert self._wake is not None
        loop.call_soon_threadsafe(self._wake.set)

    def _pump(self, loop: asyncio.AbstractEventLoop, events: Iterator[StreamEvent]) -> None:
        try:
            for event in events:
                self._put(loop, event)
        except BaseException as exc:
            self._put(loop, exc)
            return
        self._put(loop, _END)

    async def events(self) -> AsyncIterator[StreamEvent]:
        if self._stream is None:
            raise RuntimeError("use `async with provider.astream(...) as stream`")
        loop = asyncio.get_running_loop()
        if self._wake is None:
            self._wake = asyncio.Event()
            self._reader = loop.run_in_executor(self._executor, self._pump, loop,
                                                self._stream.events())
        items, wake = self._items, self._wake
        try:
            while True:
                while items:
                    item = items.popleft()
                    if item is _END:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                with self._lock:
                    self._wake_pending = False
                wake.clear()
                if not items:
                    await wake.wait()
        except asyncio.CancelledError:
            self._stream.close()
            raise

    async def _texts(self) -> AsyncIterator[str]:
        async for event in self.events():
            if event.type == "text":
                yield event.text

    def __aiter__(self) -> AsyncIterator[str]:
        return self._texts()

    @property
    def response(self) -> CompletionResponse:
        """The final response (after the stream was read to its end)."""
        if self._stream is None:
            raise RuntimeError("the stream has not started")
        return self._stream.response
