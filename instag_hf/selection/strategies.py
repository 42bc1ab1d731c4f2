"""The selection algorithms on integer tag ids: Cf-D passes (vectorised, or row by row under
per-tag caps), picks in a given order and greedy maximum coverage; the limits all of them obey.
:mod:`~instag_hf.selection.registry` names them as strategies."""

from __future__ import annotations

import numpy as np

from ..analysis.tagsets import TagSets

#: how many single-step pointer moves a Cf-D pass does over all tags at once before
#: finishing long runs of already-taken rows tag by tag
_VECTOR_STEPS = 8


def row_lists(ts: TagSets) -> list[list[int]]:
    """Every row's tag ids as a Python list (what the row-by-row paths index per pick)."""
    flat, bounds = ts.ids.tolist(), ts.offsets.tolist()
    return list(map(flat.__getitem__, map(slice, bounds[:-1], bounds[1:])))


def _columns(sub: TagSets) -> tuple[np.ndarray, np.ndarray]:
    """Tag-major view of ``sub``: the ascending row positions of every tag, and their bounds."""
    size = len(sub.vocab)
    col_pos = sub.row_ids[np.argsort(sub.ids, kind="stable")]
    bounds = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(sub.ids, minlength=size), out=bounds[1:])
    return col_pos, bounds


def cfd_order(ts: TagSets, order: np.ndarray, n: int, codes: np.ndarray | None = None,
               quota: np.ndarray | None = None) -> np.ndarray:
    """Algorithm 1 on tagged rows already in processing order, optionally with group quotas.

    Within a pass, a row is taken iff it is the first remaining row that carries some
    tag (a row whose tags all appeared in earlier remaining rows finds them covered,
    and a row that holds a tag no earlier remaining row holds finds it uncovered). So
    a pass takes the first remaining row of every tag at once: each tag keeps a
    pointer into its ascending list of positions, moved past rows already taken.

    With quotas, the rows of a group whose quota fills are removed at once; the pass
    goes on after that point with the tags covered so far in it, as the row-by-row
    loop would.
    """
    if n == 0 or order.size == 0:
        return np.zeros(0, dtype=np.int64)
    sub = ts.take(order)
    col_pos, bounds = _columns(sub)
    ptr, end = bounds[:-1].copy(), bounds[1:]
    active = np.flatnonzero(ptr < end)
    taken = np.zeros(order.size, dtype=bool)
    group = left = None
    if codes is not None:
        group, left = codes[order], quota.astype(np.int64).copy()
        taken[left[group] <= 0] = True
    picked, count = [], 0
    while count < n:
        active = _advance(active, ptr, end, col_pos, taken)
        if active.size == 0:
            break
        tags = active
        covered = None
        while tags.size and count < n:
            heads = np.unique(col_pos[ptr[tags]])[: n - count]
            if group is not None:
                full = _first_fill(group[heads], left)
                if full is not None:
                    heads = heads[: full + 1]
            taken[heads] = True
            picked.append(heads)
            count += heads.size
            if group is None:
                break
            np.subtract.at(left, group[heads], 1)
            if full is None:
                break
            taken[group == group[heads[-1]]] = True
            if covered is None:
                covered = np.zeros(len(ts.vocab), dtype=bool)
            covered[sub.take(heads).ids] = True
            tags = _advance(tags[~covered[tags]], ptr, end, col_pos, taken)
    return order[np.concatenate(picked)] if picked else np.zeros(0, dtype=np.int64)


def _first_fill(groups: np.ndarray, left: np.ndarray) -> int | None:
    """Index of the first row (in order) that fills its group's quota, or None."""
    by_group = np.argsort(groups, kind="stable")
    sorted_groups = groups[by_group]
    starts = np.flatnonzero(np.concatenate(([True], sorted_groups[1:] != sorted_groups[:-1])))
    first = np.repeat(starts, np.diff(np.append(starts, groups.size)))
    seen = np.empty(groups.size, dtype=np.int64)
    seen[by_group] = np.arange(groups.size) - first
    fills = np.flatnonzero(seen + 1 >= left[groups])
    return int(fills[0]) if fills.size else None


def _advance(active: np.ndarray, ptr: np.ndarray, end: np.ndarray, col_pos: np.ndarray,
             taken: np.ndarray) -> np.ndarray:
    """Move every active tag's pointer to its first untaken row; drop exhausted tags."""
    active = active[ptr[active] < end[active]]
    for _ in range(_VECTOR_STEPS):
        dead = taken[col_pos[ptr[active]]]
        if not dead.any():
            return active
        ptr[active[dead]] += 1
        active = active[ptr[active] < end[active]]
        if active.size == 0:
            return active
    for t in active[taken[col_pos[ptr[active]]]].tolist():
        p, e, step = int(ptr[t]), int(end[t]), 64
        while p < e:
            window = taken[col_pos[p:min(e, p + step)]]
            free = np.flatnonzero(~window)
            if free.size:
                p += int(free[0])
                break
            p += window.size
            step *= 4
        ptr[t] = p
    return active[ptr[active] < end[active]]


class Limits:
    """Per-group quotas and per-tag caps; a row that breaks one is never eligible again."""

    def __init__(self, codes: np.ndarray | None, quotas: np.ndarray | None, tags: list[list[int]],
                 max_per_tag: int | None, vocab_size: int):
        self.code_array = codes
        self.codes = codes.tolist() if codes is not None else None
        self.left = quotas.tolist() if quotas is not None else None
        self.tags = tags
        self.cap = max_per_tag
        self.used = [0] * vocab_size

    def ok(self, i: int) -> bool:
        if self.left is not None and self.left[self.codes[i]] <= 0:
            return False
        if self.cap is not None:
            used, cap = self.used, self.cap
            for t in self.tags[i]:
                if used[t] >= cap:
                    return False
        return True

    def take(self, i: int) -> None:
        if self.left is not None:
            self.left[self.codes[i]] -= 1
        if self.cap is not None:
            for t in self.tags[i]:
                self.used[t] += 1

    def consume(self, picks: np.ndarray) -> None:
        """Count ``picks`` made without these limits (the vectorised Cf-D reads the quotas whole), as ``take`` would."""
        if self.cap is not None or self.left is None:
            for i in picks.tolist():
                self.take(i)
            return
        taken = np.bincount(self.code_array[picks], minlength=len(self.left))
        self.left = (np.asarray(self.left, dtype=np.int64) - taken).tolist()


def cfd_loop(order: list[int], tags: list[list[int]], n: int, limits: Limits) -> list[int]:
    """Algorithm 1 row by row, with limits: the path for ``max_per_tag``, whose caps change after every pick."""
    picks: list[int] = []
    remaining = order
    while len(picks) < n and remaining:
        covered: set[int] = set()
        rest: list[int] = []
        before = len(picks)
        for i in remaining:
            if len(picks) >= n:
                break
            if not limits.ok(i):
                continue
            if covered.issuperset(tags[i]):
                rest.append(i)
            else:
                picks.append(i)
                limits.take(i)
                covered.update(tags[i])
        if len(picks) == before:
            break
        remaining = rest
    return picks


def take_in_order(order: list[int], n: int, limits: Limits) -> list[int]:
    """The first ``n`` rows of ``order`` that the limits allow, each counted as it is taken."""
    picks: list[int] = []
    for i in order:
        if len(picks) >= n:
            break
        if limits.ok(i):
            picks.append(i)
            limits.take(i)
    return picks


def max_coverage(ts: TagSets, rows: np.ndarray, rank: np.ndarray, n: int, limits: Limits | None) -> list[int]:
    """Greedy maximum coverage in rounds, with exact gains kept up to date.

    Covering a tag lowers by one the gain of every row that carries it (numpy over the
    tag's rows). Gains only fall within a round, so the picks at gain ``g`` are the
    rows still at ``g``, walked in tie order, before ``g`` drops by one.
    """
    order = rows[np.argsort(rank[rows], kind="stable")]
    if order.size == 0 or n == 0:
        return []
    sub = ts.take(order)
    col_pos, bounds = _columns(sub)
    lengths, ids, offsets = sub.lengths, sub.ids, sub.offsets
    alive = np.ones(order.size, dtype=bool)
    order_list = order.tolist()
    picks: list[int] = []
    while len(picks) < n and alive.any():
        gain = np.where(alive, lengths, -1)
        covered = np.zeros(len(ts.vocab), dtype=bool)
        before = len(picks)
        level = int(gain.max())
        while level > 0 and len(picks) < n:
            for p in np.flatnonzero(gain == level).tolist():
                if gain[p] != level:
                    continue
                i = order_list[p]
                alive[p] = False
                if limits is not None:
                    if not limits.ok(i):
                        gain[p] = -1
                        continue
                    limits.take(i)
                picks.append(i)
                tags = ids[offsets[p]:offsets[p + 1]]
                new = tags[~covered[tags]]
                covered[new] = True
                hit = col_pos[bounds[new[0]]:bounds[new[0] + 1]] if new.size == 1 else \
                    np.concatenate([col_pos[bounds[t]:bounds[t + 1]] for t in new.tolist()])
                np.subtract.at(gain, hit, 1)
                gain[p] = -1
                if len(picks) >= n:
                    break
            level -= 1
        if len(picks) == before:
            break
    return picks
