"""The lazy greedy's priority queue: rows keyed by upper bounds that only fall.

Rows are filed by level, ``floor(log(top / bound) / log(1 + BUCKET))``. Bounds only
fall, so rows only move to later levels and the first non-empty level only moves on:
a row waits, un-scored, until its level comes first. Levels are grouped in tiers, as
in a radix heap: rows far behind the first level are filed by a coarse group of levels
(``BLOCK ** 2`` or ``BLOCK`` levels) and sorted into finer groups when their group
comes first, so filing a batch of rows costs a few numpy slices, not a heap operation
per row.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

#: level width: bounds within a factor ``1 + BUCKET`` share a level
BUCKET = 3e-3
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
    arrival); beyond ``max_runs`` runs the two smallest are merged, so every row is
    merged a few times at most and the order questions the greedy asks (how many rows
    come before a key, which are the first ``k``) cost a binary search per run.
    """

    def __init__(self, rank: np.ndarray, max_runs: int = 8):
        self.rank = rank
        self.max_runs = max_runs
        self.runs: list[list] = []  # [rows, negative bounds, ranks, head]

    def __len__(self) -> int:
        return sum(r[0].size - r[3] for r in self.runs)

    def add(self, rows: np.ndarray, bounds: np.ndarray) -> None:
        if rows.size == 0:
            return
        neg, rank = -bounds, self.rank[rows]
        order = np.lexsort((rank, neg))
        self.runs.append([rows[order], neg[order], rank[order], 0])
        while len(self.runs) > self.max_runs:
            self.runs.sort(key=lambda r: r[0].size - r[3])
            a, b = self.runs.pop(0), self.runs.pop(0)
            rows = np.concatenate([a[0][a[3]:], b[0][b[3]:]])
            neg = np.concatenate([a[1][a[3]:], b[1][b[3]:]])
            rank = np.concatenate([a[2][a[3]:], b[2][b[3]:]])
            order = np.lexsort((rank, neg))
            self.runs.append([rows[order], neg[order], rank[order], 0])

    def ahead(self, bound: float, rank: int) -> list[int]:
        """Per run, how many of its unread rows come before ``(bound, rank)`` in queue order."""
        out = []
        for rows, neg, ranks, head in self.runs:
            lo = head + int(np.searchsorted(neg[head:], -bound, side="left"))
            hi = lo + int(np.searchsorted(neg[lo:], -bound, side="right"))
            out.append(lo + int(np.searchsorted(ranks[lo:hi], rank, side="left")) - head)
        return out

    def take(self, k: int, limits: list[int] | None = None) -> np.ndarray:
        """Remove and return the first ``k`` rows in queue order (within ``limits[i]`` of run ``i``)."""
        parts = []
        for i, (rows, neg, ranks, head) in enumerate(self.runs):
            m = min(k, rows.size - head if limits is None else limits[i])
            if m > 0:
                parts.append((i, rows[head:head + m], neg[head:head + m], ranks[head:head + m]))
        if not parts:
            return np.zeros(0, dtype=np.int64)
        if len(parts) == 1:
            i, rows, _, _ = parts[0]
            self.runs[i][3] += rows.size
            chosen = rows
        else:
            run = np.concatenate([np.full(p[1].size, p[0]) for p in parts])
            rows = np.concatenate([p[1] for p in parts])
            order = np.lexsort((np.concatenate([p[3] for p in parts]), np.concatenate([p[2] for p in parts])))[:k]
            chosen = rows[order]
            counts = np.bincount(run[order], minlength=len(self.runs))
            for i in np.flatnonzero(counts).tolist():
                self.runs[i][3] += int(counts[i])
        self.runs = [r for r in self.runs if r[3] < r[0].size]
        return chosen
