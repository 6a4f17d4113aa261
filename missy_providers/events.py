"""Call events: one small typed record per step of a call, for operators and auditors.

A hook (any callable taking a CallEvent) sees what each call did: which provider and model,
each attempt (the key's index in the ring, never the key) and why it was retried, rotations,
fallbacks, the first token, and how it ended. Never prompt or answer text, never a header
value. A hook that raises is logged and ignored, except a required one (the call log): a call
whose events cannot be recorded fails (fail closed). With no hook, nothing is built.
"""

from __future__ import annotations

import itertools
import os
import time

from .core.secret import get_logger, sanitize
from .core.values import Value

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Hook = Callable[["CallEvent"], None]

log = get_logger(__name__)

# Every event type and the fields it carries (checked when emitted: a typo fails loudly).
EVENT_FIELDS: dict[str, frozenset[str]] = {
    "call_started": frozenset({"model", "tier", "stream", "session_id", "task_id"}),
    "attempt": frozenset({"number", "key_index", "host"}),
    "retry": frozenset({"reason", "wait_s"}),
    "key_rotated": frozenset({"from_index", "to_index", "why"}),
    "fallback": frozenset({"to_provider", "error_type"}),
    "first_token": frozenset({"ms"}),
    "call_finished": frozenset({"latency_ms", "attempts", "usage", "finish_reason",
                                "stop_reason", "request_id", "refusal"}),
    "call_failed": frozenset({"latency_ms", "error_type", "status", "attempts"}),
}


class CallEvent(Value):
    """``type`` (a key of EVENT_FIELDS), the call it belongs to (``run`` names the registry's
    run, unique across processes, and ``call_id`` counts calls within it), the provider, when
    (epoch seconds), and the type's fields."""

    __slots__ = ("type", "call_id", "provider", "time", "fields", "run")
    type: str
    call_id: int
    provider: str
    time: float
    fields: dict[str, Any]
    run: str

    def __init__(self, type: str, call_id: int, provider: str, time: float,
                 fields: dict[str, Any], run: str = "") -> None:
        self._set(type=type, call_id=call_id, provider=provider, time=time, fields=fields,
                  run=run)

    def __hash__(self) -> int:
        return hash((self.type, self.run, self.call_id, self.time))

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "run": self.run, "call_id": self.call_id,
                "provider": self.provider, "time": self.time, **self.fields}

    def line(self) -> str:
        """One short line for a terminal (``missy ask -v``)."""
        shown = " ".join(f"{k}={v}" for k, v in self.fields.items() if v not in (None, ""))
        return f"[{self.call_id}] {self.provider} {self.type} {shown}".rstrip()


class Hooks:
    """The hooks a registry and its providers share; subscribing one reaches every call.
    ``run`` is random per Hooks (per registry): call logs written by many processes, or by
    many registries, tell their calls apart by (run, call_id)."""

    __slots__ = ("_hooks", "_required", "run", "_ids")

    def __init__(self) -> None:
        self._hooks: tuple[Hook, ...] = ()
        self._required: frozenset[int] = frozenset()
        self.run = os.urandom(6).hex()
        self._ids = itertools.count(1)

    def subscribe(self, hook: Hook, *, required: bool = False) -> Callable[[], None]:
        """Add ``hook``; returns a function that removes it. A ``required`` hook's failure
        fails the call (the call log: nothing is sent, or returned, unrecorded)."""
        self._hooks = (*self._hooks, hook)
        if required:
            self._required = self._required | {id(hook)}

        def unsubscribe() -> None:
            self._hooks = tuple(h for h in self._hooks if h is not hook)
            self._required = self._required - {id(hook)}

        return unsubscribe

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def trace(self, provider: str) -> Trace:
        """A trace for one call: a real one only when someone listens."""
        if not self._hooks:
            return NO_TRACE
        return Trace(self._hooks, provider, self.run, next(self._ids), self._required)


class Trace:
    """The events of one call."""

    __slots__ = ("hooks", "provider", "run", "call_id", "required", "started", "attempts",
                 "first_token", "key_index")

    def __init__(self, hooks: tuple[Hook, ...], provider: str, run: str = "",
                 call_id: int = 0, required: frozenset[int] = frozenset()) -> None:
        self.hooks, self.provider, self.run, self.call_id = hooks, provider, run, call_id
        self.required = required
        self.started = time.monotonic()
        self.attempts = 0
        self.first_token = False
        self.key_index: int | None = None  # the ring's key the next send uses

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def elapsed_ms(self) -> float:
        return round((time.monotonic() - self.started) * 1000, 1)

    def emit(self, type: str, provider: str = "", **fields: Any) -> None:
        if not self.hooks:
            return
        expected = EVENT_FIELDS[type]
        if set(fields) != expected:
            raise TypeError(f"{type} takes {sorted(expected)}, got {sorted(fields)}")
        # A field may hold a server's words (a request id, a stop reason): sanitized like any
        # outside text, so neither a call log nor a terminal line carries a key or an escape.
        event = CallEvent(type, self.call_id, provider or self.provider, time.time(),
                          {k: _clean(v) for k, v in fields.items()}, self.run)
        for hook in self.hooks:
            try:
                hook(event)
            except Exception as exc:  # a hook never breaks the call it watches...
                if id(hook) in self.required:  # ...unless the call must be recorded
                    raise
                log.warning("call event hook %r raised %s; ignored", hook,
                            f"{exc.__class__.__name__}: {exc}")

    def attempt(self, url: str, key_index: int | None) -> None:
        """One request about to be sent to ``url`` (with the ring's key ``key_index``; None:
        no key of the ring, as a token refresh): counted and recorded before it is sent, by
        the one place each kind of send goes through, so every request on the wire is one
        ``attempt`` (a required hook that cannot record it stops it)."""
        if not self.hooks:
            return
        self.attempts += 1
        authority = url.partition("://")[2].partition("/")[0].partition("?")[0]
        self.emit("attempt", number=self.attempts, key_index=key_index,
                  host=authority.rpartition("@")[2])

    def failed(self, exc: BaseException) -> None:
        self.emit("call_failed", latency_ms=self.elapsed_ms(), error_type=type(exc).__name__,
                  status=getattr(exc, "status", None), attempts=self.attempts)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return sanitize(value, 200)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


NO_TRACE = Trace((), "")
