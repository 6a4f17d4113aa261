"""Smooth weighted round robin: picks shared out by weight, deterministically.

The nginx "current weight" method, which Missy uses for its fallback providers and its
round-robin keys: each pick adds every candidate's weight to its running credit, takes the
candidate with the most credit (the first one listed on a tie) and charges it the total. Over
any run of picks each candidate's share is its weight's share, spread out rather than in
bursts: weights 3 and 1 give ``a a b a a a b a`` over 8 picks. A weight of 0 (or below) is
never picked; with every weight 0 there is no pick (None), and the caller decides.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping, Sequence
    from typing import TypeVar

    K = TypeVar("K", bound=Hashable)


class WeightedRoundRobin:
    """The running credit of each candidate (kept across calls, so shares hold over many
    picks, also while the candidates change: one absent keeps its credit). Thread-safe."""

    def __init__(self) -> None:
        self._credit: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def select(self, candidates: Sequence[K], weights: Mapping[K, float],
               default: float = 1.0) -> K | None:
        """The next pick among ``candidates`` (in their order, which breaks ties);
        ``weights`` maps a candidate to its weight (``default`` when missing)."""
        with self._lock:
            pool = [(c, w) for c in candidates if (w := max(0.0, weights.get(c, default))) > 0]
            if not pool:
                return None
            credit = self._credit
            for candidate, weight in pool:
                credit[candidate] = credit.get(candidate, 0.0) + weight
            picked = max(pool, key=lambda cw: credit[cw[0]])[0]  # max: the first on a tie
            credit[picked] -= sum(w for _, w in pool)
            return picked
