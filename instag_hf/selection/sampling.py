"""Subset selection by intention tags: Complexity-first Diverse sampling and baselines.

``sample(ds, 6000)`` runs Algorithm 1 of the paper (instag-facts.md, section 4):

1. Rows are ordered by number of tags, most first. Ties keep the original row order
   (``ties="index"``) or follow a permutation drawn from ``seed`` (``ties="shuffle"``).
2. Passes over the remaining rows, each starting with an empty covered set ``T``: a
   row is taken when it has a tag not in ``T`` (then ``T <- T | tags``), and the
   selection stops as soon as it holds ``n`` rows. A pass always takes at least the
   first remaining tagged row (``T`` starts empty), so passes never stall while
   tagged rows remain; with ``n >= len(ds)`` every row is returned.
3. Rows without tags (a usable status but no tag, or a failed status) never add a
   tag, so no pass takes them. They are used only after every tagged row has been
   taken: first rows with zero tags, then failed rows, each group in the tie order
   (index order, or the seeded permutation with ``ties="shuffle"`` and for ``random``)
   with ``untagged="last"``; or never (``untagged="never"``: the subset may be smaller
   than ``n``).

Rows of the subset come in pick order, so the first ``k`` rows of a selection of
``n`` are the selection of ``k`` (for every strategy, without quotas or caps).

Baselines: ``random`` (seeded), ``complexity`` (most tags first, Algorithm 1 without
the coverage test) and ``diversity`` (greedy maximum coverage: always the row adding
the most uncovered tags, ties in tie order; once every remaining row adds nothing, a
new round starts with an empty covered set, like a new Cf-D pass). The same rules for
untagged rows apply to all strategies.

Tag-based selection can skew domains (the DaaR caution in instag-facts.md), so
``quota_column`` caps the rows taken from each value of a column and
``max_per_tag`` caps the rows taken per tag; a row that would break a limit is
skipped. Both are applied inside the strategy's own order.

Cf-D runs on integer tag ids (:class:`~instag_hf.analysis.tagsets.TagSets`): a whole pass is a
few numpy operations (see :func:`_cfd_order`), quotas included; only ``max_per_tag``
falls back to the row-by-row loop. ``diversity`` keeps exact gains up to date with
numpy instead of re-scoring rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .. import schema
from ..analysis.tagsets import TagSets, group_codes, to_tagsets

logger = logging.getLogger(__name__)

STRATEGIES = ("cfd", "random", "complexity", "diversity")
TIES = ("index", "shuffle")
UNTAGGED = ("last", "never")
QUOTA_MODES = ("proportional", "equal")

#: how many single-step pointer moves a Cf-D pass does over all tags at once before
#: finishing long runs of already-taken rows tag by tag
_VECTOR_STEPS = 8


def _check_choice(name: str, value, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------- strategies


def _columns(sub: TagSets) -> tuple[np.ndarray, np.ndarray]:
    """Tag-major view of ``sub``: the ascending row positions of every tag, and their bounds."""
    size = len(sub.vocab)
    col_pos = sub.row_ids[np.argsort(sub.ids, kind="stable")]
    bounds = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(sub.ids, minlength=size), out=bounds[1:])
    return col_pos, bounds


def _cfd_order(ts: TagSets, order: np.ndarray, n: int, codes: np.ndarray | None = None,
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


class _Limits:
    """Per-group quotas and per-tag caps; a row that breaks one is never eligible again."""

    def __init__(self, codes: np.ndarray | None, quotas: np.ndarray | None, tags: list[list[int]],
                 max_per_tag: int | None, vocab_size: int):
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


def _cfd_loop(order: list[int], tags: list[list[int]], n: int, limits: _Limits) -> list[int]:
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


def _in_order(order: list[int], n: int, limits: _Limits) -> list[int]:
    picks: list[int] = []
    for i in order:
        if len(picks) >= n:
            break
        if limits.ok(i):
            picks.append(i)
            limits.take(i)
    return picks


def _max_coverage(ts: TagSets, rows: np.ndarray, rank: np.ndarray, n: int, limits: _Limits | None) -> list[int]:
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


# ---------------------------------------------------------------------------- quotas


def _largest_remainder(target: int, weights: np.ndarray) -> np.ndarray:
    total = weights.sum()
    if total == 0 or target == 0:
        return np.zeros_like(weights)
    exact = target * weights / total
    base = np.floor(exact).astype(np.int64)
    extra = target - int(base.sum())
    base[np.argsort(-(exact - base), kind="stable")[:extra]] += 1
    return base


def _equal_split(target: int, sizes: np.ndarray) -> np.ndarray:
    out = np.zeros_like(sizes)
    left = target
    open_ = [g for g in range(len(sizes)) if sizes[g] > 0]
    while left > 0 and open_:
        share = left // len(open_)
        if share == 0:
            for g in open_[:left]:
                out[g] += 1
            break
        for g in open_:
            add = min(int(sizes[g] - out[g]), share)
            out[g] += add
            left -= add
        open_ = [g for g in open_ if out[g] < sizes[g]]
    return out


def _quota_limits(codes: np.ndarray, labels: list, n: int, quotas, available: np.ndarray) -> np.ndarray:
    sizes = np.bincount(codes[available], minlength=len(labels)).astype(np.int64)
    target = min(n, int(sizes.sum()))
    if quotas is None or quotas == "proportional":
        return _largest_remainder(target, sizes)
    if quotas == "equal":
        return _equal_split(target, sizes)
    if isinstance(quotas, Mapping):
        index = {str(label): code for code, label in enumerate(labels)}
        unknown = [k for k in quotas if str(k) not in index]
        if unknown:
            raise ValueError(f"quotas name values {unknown} that the quota column does not hold; "
                             f"it holds {sorted(index)}")
        out = np.zeros(len(labels), dtype=np.int64)
        for key, value in quotas.items():
            out[index[str(key)]] = _check_count(f"quotas[{key!r}]", value, 0)
        if out.sum() < n:
            raise ValueError(f"quotas add up to {int(out.sum())} rows but n={n}; raise the quotas or lower n")
        return out
    raise ValueError(f"quotas must be one of {list(QUOTA_MODES)} or a mapping value -> rows, got {quotas!r}")


# ---------------------------------------------------------------------------- public API


def _row_lists(ts: TagSets) -> list[list[int]]:
    flat, bounds = ts.ids.tolist(), ts.offsets.tolist()
    return list(map(flat.__getitem__, map(slice, bounds[:-1], bounds[1:])))


def _select(ts: TagSets, n: int, strategy: str, seed: int | None, ties: str, untagged: str,
            codes: np.ndarray | None, labels: list | None, quotas, max_per_tag: int | None) -> np.ndarray:
    size = len(ts)
    rng = np.random.default_rng(seed)
    rank = rng.permutation(size) if (ties == "shuffle" or strategy == "random") else np.arange(size)
    lengths = ts.lengths
    tagged = lengths > 0
    rows = np.flatnonzero(tagged)
    if strategy == "random":
        order = rows[np.argsort(rank[rows], kind="stable")]
    else:
        order = rows[np.lexsort((rank[rows], -lengths[rows]))]

    quota = None
    if codes is not None:
        available = tagged if untagged == "never" else np.ones(size, dtype=bool)
        quota = _quota_limits(codes, labels, n, quotas, available)
    limits = None
    if max_per_tag is not None or (codes is not None and strategy != "cfd"):
        limits = _Limits(codes, quota, _row_lists(ts) if max_per_tag is not None else [], max_per_tag,
                         len(ts.vocab))

    if strategy == "cfd" and max_per_tag is None:
        picks = _cfd_order(ts, order, n, codes, quota)
        if codes is not None:
            left = quota - np.bincount(codes[picks], minlength=len(quota))
            limits = _Limits(codes, left, [], None, len(ts.vocab))
    elif strategy == "cfd":
        picks = np.asarray(_cfd_loop(order.tolist(), limits.tags, n, limits), dtype=np.int64)
    elif strategy == "diversity":
        picks = np.asarray(_max_coverage(ts, rows, rank, n, limits), dtype=np.int64)
    elif limits is None:
        picks = order[:n]
    else:
        picks = np.asarray(_in_order(order.tolist(), n, limits), dtype=np.int64)
    picks = picks.astype(np.int64)

    if picks.size < n and untagged == "last":
        zero = np.flatnonzero(~tagged & ts.usable)
        failed = np.flatnonzero(~ts.usable)
        fill = np.concatenate([zero[np.argsort(rank[zero], kind="stable")],
                               failed[np.argsort(rank[failed], kind="stable")]])
        if limits is None:
            extra = fill[: n - picks.size]
        else:
            extra = np.asarray(_in_order(fill.tolist(), n - picks.size, limits), dtype=np.int64)
        picks = np.concatenate([picks, extra])
    if picks.size < min(n, size) and (codes is not None or max_per_tag is not None):
        logger.warning("selected %d of the %d rows asked for: the quotas or max_per_tag leave no other eligible row",
                       picks.size, n)
    return picks


def select_indices(data, n: int, strategy: str = "cfd", *, seed: int | None = 0, ties: str = "index",
                   untagged: str = "last", quota_column: str | Sequence | None = None,
                   quotas: str | Mapping[str, int] | None = None, max_per_tag: int | None = None,
                   tags_column: str | None = None, status_column: str | None = schema.STATUS) -> np.ndarray:
    """Row indices of the selected subset, in pick order.

    Parameters
    ----------
    data:
        A tagged ``Dataset``, a :class:`~instag_hf.analysis.tagsets.TagSets`, or a list of tag lists.
    n:
        Rows to select; ``n >= len(data)`` selects every row (with ``untagged="last"``).
    strategy:
        ``"cfd"`` (Complexity-first Diverse sampling, Algorithm 1), ``"random"``,
        ``"complexity"`` (most tags first) or ``"diversity"`` (greedy maximum coverage).
    seed:
        Seeds ``random`` and ``ties="shuffle"`` (``None``: fresh entropy, not reproducible).
    ties:
        Order among rows that tie (equal tag counts; equal gains for ``diversity``)
        and of untagged rows: ``"index"`` (original order, the default) or
        ``"shuffle"`` (a permutation drawn from ``seed``). ``random`` ignores it.
    untagged:
        ``"last"``: rows without usable tags fill the subset after all tagged rows
        (zero-tag rows, then failed rows); ``"never"``: they are never selected.
    quota_column:
        A column name (or one label per row) whose values get quotas.
    quotas:
        ``"proportional"`` (default with a ``quota_column``: each value's share of
        the pool, largest-remainder rounding), ``"equal"`` (the same count per value,
        what a small value cannot fill goes to the others), or a mapping
        ``value -> max rows`` (values not named get none; it must add up to >= n).
    max_per_tag:
        At most this many selected rows carry any one tag.
    tags_column, status_column:
        See :meth:`~instag_hf.analysis.tagsets.TagSets.from_dataset` (default: normalized tags when present).
    """
    ts, codes, labels, n, max_per_tag = _prepare(data, n, strategy, ties, untagged, quota_column, quotas,
                                                 max_per_tag, tags_column, status_column)
    return _select(ts, n, strategy, seed, ties, untagged, codes, labels, quotas, max_per_tag)


def _prepare(data, n, strategy, ties, untagged, quota_column, quotas, max_per_tag, tags_column, status_column):
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("ties", ties, TIES)
    _check_choice("untagged", untagged, UNTAGGED)
    n = _check_count("n", n, 0)
    if max_per_tag is not None:
        max_per_tag = _check_count("max_per_tag", max_per_tag, 1)
    if quotas is not None and quota_column is None:
        raise ValueError("quotas need a quota_column (the column whose values they are for)")
    ts = to_tagsets(data, tags_column, status_column)
    codes = labels = None
    if quota_column is not None:
        codes, labels = group_codes(data, quota_column)
    return ts, codes, labels, n, max_per_tag


def sample(ds, n: int, strategy: str = "cfd", *, seed: int | None = 0, ties: str = "index", untagged: str = "last",
           quota_column: str | Sequence | None = None, quotas: str | Mapping[str, int] | None = None,
           max_per_tag: int | None = None, tags_column: str | None = None,
           status_column: str | None = schema.STATUS, return_report: bool = False):
    """A subset of the tagged ``Dataset`` ``ds`` with every column kept, rows in pick order.

    The parameters are those of :func:`select_indices`. With ``return_report=True``
    the result is ``(subset, SelectionReport)``.
    """
    from datasets import Dataset

    if not isinstance(ds, Dataset):
        raise ValueError(f"sample() needs a datasets.Dataset, not {type(ds).__name__}; "
                         "select_indices() also takes TagSets and tag lists")
    ts, codes, labels, n, max_per_tag = _prepare(ds, n, strategy, ties, untagged, quota_column, quotas,
                                                 max_per_tag, tags_column, status_column)
    indices = _select(ts, n, strategy, seed, ties, untagged, codes, labels, quotas, max_per_tag)
    subset = ds.select(indices)
    if not return_report:
        return subset
    params = {"seed": seed, "ties": ties, "untagged": untagged,
              "quota_column": quota_column if isinstance(quota_column, (str, type(None))) else "<labels>",
              "quotas": quotas, "max_per_tag": max_per_tag}
    groups = (codes, labels) if codes is not None else None
    return subset, _report(ts, indices, strategy, n, groups, 10, params)


# ---------------------------------------------------------------------------- report


@dataclass
class SelectionReport:
    """How a subset compares with its pool.

    ``coverage``: share of the pool's tags the subset has. ``pool_untagged_rows`` /
    ``untagged_selected``: rows without usable tags (zero tags or a failed status) in
    the pool / in the subset. ``js_divergence``:
    Jensen-Shannon divergence (base 2, 0 = same, 1 = disjoint) between the pool's and
    the subset's tag distributions (each tag's share of all tag occurrences).
    ``over_represented`` / ``under_represented``: ``(tag, pool share, subset share)``
    for the tags whose share rose / fell most. ``groups``: ``value -> (pool rows,
    subset rows)`` for a group column.
    """

    strategy: str
    requested: int
    selected: int
    pool_rows: int
    pool_tagged_rows: int
    pool_diversity: int
    pool_complexity: float
    subset_tagged_rows: int
    subset_diversity: int
    subset_complexity: float
    coverage: float
    pool_untagged_rows: int
    untagged_selected: int
    js_divergence: float
    over_represented: list[tuple[str, float, float]] = field(default_factory=list)
    under_represented: list[tuple[str, float, float]] = field(default_factory=list)
    groups: dict[str, tuple[int, int]] | None = None
    params: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["coverage"] = None if math.isnan(self.coverage) else self.coverage
        return out


def _js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def selection_report(pool, indices: Sequence[int] | np.ndarray, *, strategy: str = "", requested: int | None = None,
                     groups: str | Sequence | None = None, top: int = 10, tags_column: str | None = None,
                     status_column: str | None = schema.STATUS, params: dict | None = None) -> SelectionReport:
    """Compare the rows ``indices`` of ``pool`` (a dataset, TagSets or tag lists) with the whole pool.

    ``groups``: a column name (or one label per row) to compare row counts per value.
    """
    ts = to_tagsets(pool, tags_column, status_column)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(ts)):
        raise ValueError(f"indices must lie in [0, {len(ts)})")
    return _report(ts, indices, strategy, requested, group_codes(pool, groups) if groups is not None else None, top,
                   params)


def _report(ts: TagSets, indices: np.ndarray, strategy: str, requested: int | None,
            groups: tuple[np.ndarray, list] | None, top: int, params: dict | None) -> SelectionReport:
    sub = ts.take(indices)
    pool_counts, sub_counts = ts.tag_counts(), sub.tag_counts()
    pool_tags, sub_tags = np.count_nonzero(pool_counts), np.count_nonzero(sub_counts)
    pool_usable, sub_usable = int(ts.usable.sum()), int(sub.usable.sum())
    p = pool_counts / pool_counts.sum() if pool_counts.sum() else pool_counts.astype(float)
    q = sub_counts / sub_counts.sum() if sub_counts.sum() else sub_counts.astype(float)
    diff = q - p
    present = np.flatnonzero(pool_counts)
    names = ts.vocab
    up = present[np.lexsort((names[present].astype(str), -diff[present]))]
    down = present[np.lexsort((names[present].astype(str), diff[present]))]

    def rows(ids: np.ndarray, sign: int) -> list[tuple[str, float, float]]:
        return [(str(names[i]), float(p[i]), float(q[i])) for i in ids[:top] if sign * diff[i] > 0]

    group_rows = None
    if groups is not None:
        codes, labels = groups
        in_pool = np.bincount(codes, minlength=len(labels))
        in_sub = np.bincount(codes[indices], minlength=len(labels))
        group_rows = {str(labels[c]): (int(in_pool[c]), int(in_sub[c]))
                      for c in sorted(range(len(labels)), key=lambda c: str(labels[c]))}
    return SelectionReport(
        strategy=strategy,
        requested=int(requested if requested is not None else indices.size),
        selected=int(indices.size),
        pool_rows=len(ts),
        pool_tagged_rows=pool_usable,
        pool_diversity=int(pool_tags),
        pool_complexity=ts.ids.size / pool_usable if pool_usable else 0.0,
        subset_tagged_rows=sub_usable,
        subset_diversity=int(sub_tags),
        subset_complexity=sub.ids.size / sub_usable if sub_usable else 0.0,
        coverage=sub_tags / pool_tags if pool_tags else float("nan"),
        pool_untagged_rows=int(np.count_nonzero(ts.lengths == 0)),
        untagged_selected=int(np.count_nonzero(sub.lengths == 0)),
        js_divergence=_js_divergence(pool_counts.astype(float), sub_counts.astype(float)),
        over_represented=rows(up, 1),
        under_represented=rows(down, -1),
        groups=group_rows,
        params=dict(params or {}),
    )
