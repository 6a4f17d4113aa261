"""KeyRing: one provider's API keys, rotated round robin, shared by the registry and provider."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .config import Secret


class KeyRing:
    """The keys of one provider, rotated round robin. Thread-safe; never shows a key."""

    def __init__(self, keys: Sequence[Secret] = ()) -> None:
        self._keys = tuple(keys)
        self._index = 0
        self._lock = threading.Lock()

    def current(self) -> Secret | None:
        with self._lock:
            return self._keys[self._index] if self._keys else None

    def rotate(self) -> int:
        """Move to the next key (a no-op with fewer than two); returns the new index."""
        with self._lock:
            if len(self._keys) > 1:
                self._index = (self._index + 1) % len(self._keys)
            return self._index

    def advance_from(self, index: int) -> None:
        """Rotate past ``index`` unless another thread already has: two callers that both saw
        the same key fail must not skip the good key after it."""
        with self._lock:
            if self._index == index and len(self._keys) > 1:
                self._index = (index + 1) % len(self._keys)

    def key_at(self, index: int) -> Secret | None:
        return self._keys[index % len(self._keys)] if self._keys else None

    @property
    def index(self) -> int:
        return self._index

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._keys)} keys, index={self._index})"
