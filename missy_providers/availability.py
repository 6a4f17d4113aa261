"""Which providers are available now: probed in parallel, each answer kept a few seconds.

Missy's registry answers "which providers can I use?" (``get_available``, ``select_weighted``,
``set_default``) without waiting on a slow one: every probe runs on its own daemon thread, all
share one short deadline, and an answer is reused while it is fresh. A probe still running
when the deadline passes counts as unavailable this time; its answer is kept for the next
question. A probe that raises counts as unavailable (its text is not logged: it is the
provider's, and may say anything).
"""

from __future__ import annotations

import threading
import time

from .core.secret import get_logger

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

log = get_logger(__name__)


class AvailabilityCache:
    """Fresh answers (``fresh_for`` seconds) to ``provider.is_available()``, by name."""

    def __init__(self, fresh_for: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.fresh_for = fresh_for
        self._clock = clock
        self._answers: dict[str, tuple[bool, float, Any]] = {}  # name -> (ok, when, provider)
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def available(self, candidates: Sequence[tuple[str, Any]], wait: float) -> list[str]:
        """The names (in ``candidates``' order) whose provider answered yes, asking every
        one without a fresh answer at once and waiting at most ``wait`` seconds in all."""
        deadline = self._clock() + wait
        for event in [self._probe(name, provider) for name, provider in candidates]:
            event.wait(max(0.0, deadline - self._clock()))
        return [name for name, provider in candidates if self.answer(name, provider)]

    def answer(self, name: str, provider: Any) -> bool:
        """The fresh answer for this provider object (a replaced one has none): False when
        there is none."""
        with self._lock:
            found = self._answers.get(name)
        return found is not None and found[2] is provider and found[0] and \
            self._clock() - found[1] <= self.fresh_for

    def forget(self, name: str) -> None:
        with self._lock:
            self._answers.pop(name, None)

    def _probe(self, name: str, provider: Any) -> threading.Event:
        with self._lock:
            found = self._answers.get(name)
            if found is not None and found[2] is provider and \
                    self._clock() - found[1] <= self.fresh_for:
                done = threading.Event()
                done.set()
                return done
            running = self._running.get(name)
            if running is not None:
                return running
            event = self._running[name] = threading.Event()

        def probe() -> None:
            try:
                ok = bool(provider.is_available())
            except Exception as exc:
                ok = False
                log.warning("availability probe of %r raised %s (details withheld)", name,
                            type(exc).__name__)
            with self._lock:
                self._answers[name] = (ok, self._clock(), provider)
                self._running.pop(name, None)
            event.set()

        threading.Thread(target=probe, daemon=True,
                         name=f"missy-provider-probe-{name[:32]}").start()
        return event
