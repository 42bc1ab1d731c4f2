"""The selection strategies by name: one registry of functions with one signature.

Every strategy is a function ``pick(candidates, n) -> row indices in pick order`` over the
pool's tagged rows (:class:`Candidates`); rows without tags, the fill after the picks and
quotas are the caller's (:class:`~instag_hf.selection.pool.SelectionPool`). A name is
checked here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..analysis.tagsets import TagSets
from .checks import check_choice
from .mig import MigParams, mig_greedy
from .strategies import Limits, cfd_loop, cfd_order, max_coverage, take_in_order


@dataclass
class Candidates:
    """What a strategy picks from: the pool's tag sets, its tagged ``rows`` (index order), the tie
    ``rank`` of every row, the ``limits`` (group quotas, per-tag caps) and the settings a strategy may need.

    ``codes``/``quota`` are the group of every row and the group quotas, read whole by the
    vectorised Cf-D (``limits`` holds the same quotas for the row-by-row paths).
    """

    ts: TagSets
    rows: np.ndarray
    rank: np.ndarray
    limits: Limits | None = None
    codes: np.ndarray | None = None
    quota: np.ndarray | None = None
    mig: MigParams | None = None

    def by_rank(self) -> np.ndarray:
        """The tagged rows in tie order."""
        return self.rows[np.argsort(self.rank[self.rows], kind="stable")]

    def by_tags(self) -> np.ndarray:
        """The tagged rows, most tags first, ties in tie order."""
        return self.rows[np.lexsort((self.rank[self.rows], -self.ts.lengths[self.rows]))]


Pick = Callable[[Candidates, int], np.ndarray]


@dataclass(frozen=True)
class Strategy:
    """A named strategy: its ``pick`` function; ``shuffled`` ranks rows by the seeded permutation
    whatever ``ties`` says (``random``)."""

    name: str
    pick: Pick
    shuffled: bool = False


def _in_order(order: np.ndarray, c: Candidates, n: int) -> np.ndarray:
    if c.limits is None:
        return order[:n]
    return np.asarray(take_in_order(order.tolist(), n, c.limits), dtype=np.int64)


def pick_cfd(c: Candidates, n: int) -> np.ndarray:
    """Complexity-first Diverse sampling (Algorithm 1): vectorised passes, row by row under per-tag caps."""
    if c.limits is not None and c.limits.cap is not None:
        return np.asarray(cfd_loop(c.by_tags().tolist(), c.limits.tags, n, c.limits), dtype=np.int64)
    picks = cfd_order(c.ts, c.by_tags(), n, c.codes, c.quota)
    if c.limits is not None:
        c.limits.consume(picks)
    return picks


def pick_random(c: Candidates, n: int) -> np.ndarray:
    """The tagged rows in the seeded random order."""
    return _in_order(c.by_rank(), c, n)


def pick_complexity(c: Candidates, n: int) -> np.ndarray:
    """Most tags first (Algorithm 1 without the coverage test)."""
    return _in_order(c.by_tags(), c, n)


def pick_diversity(c: Candidates, n: int) -> np.ndarray:
    """Greedy maximum coverage in rounds."""
    return np.asarray(max_coverage(c.ts, c.rows, c.rank, n, c.limits), dtype=np.int64)


def pick_mig(c: Candidates, n: int) -> np.ndarray:
    """Greedy information gain over the label graph (Chen et al., 2025)."""
    return np.asarray(mig_greedy(c.ts, c.rows, c.rank, n, c.limits, c.mig or MigParams()), dtype=np.int64)


REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("cfd", pick_cfd),
    Strategy("random", pick_random, shuffled=True),
    Strategy("complexity", pick_complexity),
    Strategy("diversity", pick_diversity),
    Strategy("mig", pick_mig),
)}


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``, or a ValueError naming the choices."""
    check_choice("strategy", name, REGISTRY)
    return REGISTRY[name]


def check_strategies(strategies: Sequence[str] | str) -> list[str]:
    """A non-empty list of distinct strategy names (a string may list them comma-separated)."""
    if isinstance(strategies, str):
        strategies = [s.strip() for s in strategies.split(",") if s.strip()]
    strategies = list(strategies)
    unknown = [s for s in strategies if s not in tuple(REGISTRY)]
    if not strategies or unknown:
        raise ValueError(f"strategies must be a non-empty list from {list(REGISTRY)}, got {strategies!r}")
    if len(set(strategies)) != len(strategies):
        raise ValueError(f"strategies are listed twice: {strategies!r}")
    return strategies
