"""The lazy greedy's queues: rows keyed by upper bounds of their gains, which only fall.

Rows are filed by level, ``floor(log(top / bound) / log(1 + BUCKET))``. Bounds only
fall, so rows only move to later levels and the first non-empty level only moves on:
a row waits, un-scored, until its level comes first. Levels are grouped in tiers, as
in a radix heap: rows far behind the first level are filed by a coarse group of levels
(``BLOCK ** 2`` or ``BLOCK`` levels) and sorted into finer groups when their group
comes first, so filing a batch of rows costs a few numpy slices, not a heap operation
per row (:class:`BucketQueue`).

The rows of the first level are worked on in queue order, largest bound first, then
lowest rank (:class:`Level`: the rows not yet re-scored as :class:`SortedRuns`, the
re-scored ones beside them).
"""

from __future__ import annotations

import heapq
import math

import numpy as np

#: level width: bounds within a factor ``1 + BUCKET`` share a level
BUCKET = 3e-4
#: levels per group of the middle tier (the coarse tier groups ``BLOCK ** 2``)
BLOCK = 64
_SPANS = (BLOCK * BLOCK, BLOCK, 1)  # levels per group in each tier, coarse first
_CAP = 2 ** 58  # the last level of a positive bound
_LAST = 2 ** 59  # the level of rows with gain 0 (a score of 0); keys are level * 4 + tier < 2 ** 63


class BucketQueue:
    """A monotone priority queue of rows and upper bounds of their gains (see the module docstring).

    A group is keyed ``(first level, tier)``; coarser tiers sort first among equal levels,
    so a group is always sorted into finer ones before any of its levels is taken.
    """

    def __init__(self, rows: np.ndarray, bounds: np.ndarray):
        positive = bounds[bounds > 0]
        self.top = float(positive.max()) if positive.size else 1.0
        self.log_width = math.log1p(BUCKET)
        self.groups: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}
        self.maxima: dict[tuple[int, int], float] = {}
        self.keys: list[tuple[int, int]] = []
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # deferred: filed on the next pop
        self.pending_max = -math.inf
        self.floor = 0
        self.push(rows, bounds, 0)

    def level(self, bounds: np.ndarray) -> np.ndarray:
        """The level of each bound: 0 for the largest first bound, ``_LAST`` for 0."""
        if bounds.size and bounds.min() > 0:
            ratio = (math.log(self.top) - np.log(bounds)) / self.log_width
            return np.floor(np.clip(ratio, 0, _CAP)).astype(np.int64)
        out = np.full(bounds.size, _LAST, dtype=np.int64)
        positive = bounds > 0
        ratio = (math.log(self.top) - np.log(bounds[positive])) / self.log_width
        out[positive] = np.floor(np.clip(ratio, 0, _CAP))
        return out

    def push(self, rows: np.ndarray, bounds: np.ndarray, floor: int, levels: np.ndarray | None = None) -> None:
        """File ``rows`` (never before level ``floor``): each in the coarsest group that lies past ``floor``'s."""
        if rows.size == 0:
            return
        levels = np.maximum(self.level(bounds) if levels is None else levels, floor)
        coarse, middle = levels // _SPANS[0], levels // _SPANS[1]
        tier = np.where(coarse > floor // _SPANS[0], 0, np.where(middle > floor // _SPANS[1], 1, 2))
        tier[levels == _LAST] = 2
        start = np.choose(tier, (coarse * _SPANS[0], middle * _SPANS[1], levels))
        key = start * 4 + tier  # groups in heap order: coarser first among equal starts
        if key.size > 1:
            order = np.argsort(key, kind="stable")
            key, rows, bounds = key[order], rows[order], bounds[order]
            cuts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
            maxima = np.maximum.reduceat(bounds, cuts).tolist()
            ends = cuts[1:].tolist() + [rows.size]
            found = zip(key[cuts].tolist(), cuts.tolist(), ends, maxima)
        else:
            found = [(int(key[0]), 0, 1, float(bounds[0]))]
        for k, a, b, top in found:
            group_key = (k >> 2, k & 3)
            group = self.groups.get(group_key)
            if group is None:
                self.groups[group_key] = group = []
                self.maxima[group_key] = top
                heapq.heappush(self.keys, group_key)
            elif top > self.maxima[group_key]:
                self.maxima[group_key] = top
            group.append((rows[a:b], bounds[a:b]))

    def defer(self, rows: np.ndarray, bounds: np.ndarray, levels: np.ndarray) -> None:
        """Queue ``rows`` (levels past the last one popped) but file them only when the queue is next popped:
        one filing for many small batches."""
        if rows.size:
            self.pending.append((rows, bounds, levels))
            self.pending_max = max(self.pending_max, float(bounds.max()))

    def peek(self) -> float:
        """The largest bound in the queue (``-inf`` when empty)."""
        head = self.maxima[self.keys[0]] if self.keys else -math.inf
        return max(head, self.pending_max)

    def pop(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        """The first non-empty level: its number, rows and bounds, taken out of the queue."""
        head = self.maxima[self.keys[0]] if self.keys else -math.inf
        if self.pending and self.pending_max >= head:  # a deferred row may come first: file them all
            parts = self.pending
            self.pending, self.pending_max = [], -math.inf
            self.push(*(np.concatenate([p[i] for p in parts]) for i in range(2)), self.floor,
                      np.concatenate([p[2] for p in parts]))
        while self.keys:
            key = heapq.heappop(self.keys)
            parts = self.groups.pop(key)
            del self.maxima[key]
            rows = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
            bounds = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
            if key[1] == len(_SPANS) - 1:
                self.floor = key[0]
                return key[0], rows, bounds
            self.push(rows, bounds, key[0])  # a group comes first: sort it into finer ones
        return None


class SortedRuns:
    """Rows in queue order (largest bound first, then lowest rank), held as a few sorted runs.

    Each run is read from its head on. New rows come as a run of their own (sorted on
    arrival); runs are merged like the digits of a binary counter (a run at most twice
    the size of a smaller one absorbs it), so there are about ``log2`` of the rows of
    them, every row is merged a few times at most, and the order questions the greedy
    asks cost a binary search per run.
    """

    def __init__(self, rank: np.ndarray):
        self.rank = rank
        self.runs: list[list] = []  # [rows, negative bounds, ranks, head], largest first

    def add(self, rows: np.ndarray, bounds: np.ndarray) -> None:
        if rows.size == 0:
            return
        neg, rank = -bounds, self.rank[rows]
        order = np.lexsort((rank, neg))
        run = [rows[order], neg[order], rank[order], 0]
        runs = self.runs
        while runs and runs[-1][0].size - runs[-1][3] <= 2 * run[0].size:
            last = runs.pop()
            h = last[3]
            rows = np.concatenate([last[0][h:], run[0]])
            neg = np.concatenate([last[1][h:], run[1]])
            rank = np.concatenate([last[2][h:], run[2]])
            order = np.lexsort((rank, neg))
            run = [rows[order], neg[order], rank[order], 0]
        runs.append(run)
        runs.sort(key=lambda r: r[3] - r[0].size)  # largest unread part first

    def ahead(self, bound: float, rank: int) -> list[int]:
        """Per run, how many of its unread rows come before ``(bound, rank)`` in queue order."""
        out = []
        for rows, neg, ranks, head in self.runs:
            lo = head + int(np.searchsorted(neg[head:], -bound, side="left"))
            hi = lo + int(np.searchsorted(neg[lo:], -bound, side="right"))
            out.append(lo + int(np.searchsorted(ranks[lo:hi], rank, side="left")) - head)
        return out

    def take(self, k: int, limits: list[int] | None = None) -> np.ndarray:
        """Remove and return up to ``k`` unread rows of each run, no more than ``limits[i]`` of run ``i``;
        without limits, the first ``k`` of the run whose next row comes first in queue order."""
        runs = self.runs
        if not runs:
            return np.zeros(0, dtype=np.int64)
        if limits is None:
            first = min(range(len(runs)), key=lambda i: (runs[i][1][runs[i][3]], runs[i][2][runs[i][3]]))
            limits = [0] * len(runs)
            limits[first] = k
        parts = []
        for run, limit in zip(runs, limits):
            m = min(k, limit, run[0].size - run[3])
            if m > 0:
                parts.append(run[0][run[3]:run[3] + m])
                run[3] += m
        self.runs = [r for r in runs if r[3] < r[0].size]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def first_in_order(candidates: np.ndarray, bound: np.ndarray, rk: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` of ``candidates`` (positions) first in queue order: largest bound, then lowest rank."""
    if candidates.size <= k:
        return candidates
    b = bound[candidates]
    kth = np.partition(b, b.size - k)[b.size - k]  # the k-th largest bound
    above, at = candidates[b > kth], candidates[b == kth]
    take = k - above.size
    if at.size > take:
        at = at[np.argpartition(rk[at], take - 1)[:take]]
    return np.concatenate([above, at])


class Level:
    """The rows of the queue's first level, worked on by the lazy greedy.

    ``main``: rows not re-scored since they were taken from the queue, in queue order
    (:class:`SortedRuns`). ``side``: rows re-scored since
    (unordered, with a flag for a gain current at this pick). Only ``side`` holds current
    gains, so a pick is sure once no row ahead of the best current one in queue order is
    stale: in ``main``, a prefix of each run.
    """

    def __init__(self, rank: np.ndarray):
        self.main = SortedRuns(rank)
        self.s_rows, self.s_bound, self.s_rank = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, np.int64)
        self.s_fresh = np.zeros(0, dtype=bool)

    def __bool__(self) -> bool:
        return bool(self.main.runs) or self.s_rows.size > 0

    def keep_side(self, keep: np.ndarray) -> None:
        self.s_rows, self.s_bound, self.s_rank, self.s_fresh = (
            self.s_rows[keep], self.s_bound[keep], self.s_rank[keep], self.s_fresh[keep])

    def side_to_main(self) -> None:
        """Move ``side`` (all stale) back into ``main``: a run of its own."""
        self.main.add(self.s_rows, self.s_bound)
        self.keep_side(np.zeros(self.s_rows.size, dtype=bool))
