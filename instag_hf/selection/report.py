"""The selection report's data: a subset against its pool (coverage, complexity, Jensen-Shannon
divergence, over- and under-represented tags, rows per group). Rendering lives in ``reporting``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from .. import schema
from ..strict_json import finite
from ..analysis.tagsets import TagSets, group_codes, to_tagsets


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
        """Plain JSON data; a statistic that is not a number (coverage or divergence without tags) is ``None``."""
        return finite(asdict(self))


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
    return build_report(ts, indices, strategy, requested,
                        group_codes(pool, groups) if groups is not None else None, top, params)


def build_report(ts: TagSets, indices: np.ndarray, strategy: str, requested: int | None,
                 groups: tuple[np.ndarray, list] | None, top: int, params: dict | None) -> SelectionReport:
    """The report of the rows ``indices`` of ``ts`` (checked already); ``groups``: codes and labels per row."""
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
