"""KeyRing: one provider's API keys, shared by the registry and the provider.

The ring has a current key; calls use it. Only a key's own failure moves a call to another
key: a 401 or 403 (the key is refused) or a 429 (the key is out of rate). A key the server
refused is skipped by every call for ``cooldown`` seconds while another key is usable, so a
revoked key is not tried again on the next call, or on a retry after an unrelated failure.

With ``key_rotation_strategy: round_robin`` (Missy's name) each call starts on the next key
instead, picked by smooth weighted round robin over ``account_weights``: the calls are shared
out between the keys (accounts), and a key's failure still moves that call on as above.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from .core.secret import Secret

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from .settings import ProviderConfig

KEY_COOLDOWN_SECONDS = 600.0  # a refused key is skipped this long while another key is usable


class KeyRing:
    """The keys of one provider. Thread-safe; never shows a key."""

    def __init__(self, keys: Sequence[Secret] = (), cooldown: float = KEY_COOLDOWN_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 weights: Sequence[float] | None = None) -> None:
        from .weighted import WeightedRoundRobin

        self._keys = tuple(keys)
        # round_robin: each call starts on the next key by weight (None: failover).
        self._weights = None if weights is None else \
            dict(enumerate(tuple(weights) or (1.0,) * len(self._keys)))
        self._balancer = WeightedRoundRobin()
        self._index = 0
        self._refused: dict[int, float] = {}  # index -> when its cool-down ends
        self._cooldown, self._clock = cooldown, clock
        self._lock = threading.Lock()

    def pick(self, avoid: frozenset[int] | set[int] = frozenset()) -> int | None:
        """The index a call should use: the current key, else the next one round the ring,
        skipping ``avoid`` (this call's refused or rate-limited keys) and, while another key is
        usable, keys in their cool-down. None when every key is in ``avoid``. With no keys, 0
        (and :meth:`key_at` gives None)."""
        count = len(self._keys)
        if count <= 1:  # no key, or the one key: nothing to choose (and no lock to take)
            return 0 if count == 0 or 0 not in avoid else None
        with self._lock:
            now = self._clock()
            order = [(self._index + i) % count for i in range(count)]
            allowed = [i for i in order if i not in avoid]
            fresh = [i for i in allowed if self._refused.get(i, 0.0) <= now]
        if fresh:
            return fresh[0]
        return allowed[0] if allowed else None

    def start(self) -> int | None:
        """The index a new call starts with: :meth:`pick` (failover), or with round robin the
        next key by weight among those not cooling down (which becomes the current key)."""
        if self._weights is None or len(self._keys) < 2:
            return self.pick()
        with self._lock:
            now = self._clock()
            fresh = [i for i in range(len(self._keys)) if self._refused.get(i, 0.0) <= now]
            chosen = self._balancer.select(fresh or list(range(len(self._keys))),
                                           self._weights)
            if chosen is None:  # no weight above 0 (the config refuses that): stay put
                return self._index
            self._index = chosen
            return chosen

    @property
    def round_robin(self) -> bool:
        """Whether calls are shared out between the keys (Missy's multi-account mode)."""
        return self._weights is not None and len(self._keys) > 1

    def current(self) -> Secret | None:
        """The key the next call would start with."""
        index = self.pick()
        return self.key_at(index) if index is not None else None

    def refused(self, index: int) -> None:
        """The server refused key ``index`` (401/403): skip it for the cool-down."""
        with self._lock:
            self._refused[index] = self._clock() + self._cooldown

    def move_to(self, index: int, *, from_index: int) -> None:
        """Make ``index`` the current key, unless another thread already moved the ring off
        ``from_index`` (two callers that saw the same key fail must not skip the good one)."""
        with self._lock:
            if self._index == from_index:
                self._index = index % max(1, len(self._keys))

    def rotate(self) -> int:
        """Move to the next key round the ring (a no-op with fewer than two), skipping keys in
        their cool-down while another key is usable, as :meth:`pick` does; returns the new
        index: the key the next call starts with (failover; with round robin each call still
        picks by weight)."""
        with self._lock:
            count = len(self._keys)
            if count > 1:
                now = self._clock()
                order = [(self._index + i) % count for i in range(1, count + 1)]
                fresh = [i for i in order if self._refused.get(i, 0.0) <= now]
                self._index = (fresh or order)[0]
            return self._index

    def key_at(self, index: int) -> Secret | None:
        return self._keys[index % len(self._keys)] if self._keys else None

    def cooling(self) -> list[int]:
        """Indexes of keys in their cool-down now."""
        with self._lock:
            now = self._clock()
            return sorted(i for i, until in self._refused.items() if until > now)

    @property
    def index(self) -> int:
        return self._index

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        mode = ", round robin" if self.round_robin else ""
        return f"KeyRing({len(self._keys)} keys, index={self._index}{mode})"


def ring_for(config: ProviderConfig) -> KeyRing:
    """The key ring a provider's config asks for: failover, or round robin with its
    weights."""
    round_robin = config.key_rotation_strategy == "round_robin"
    return KeyRing(config.keys, weights=config.account_weights if round_robin else None)
