"""Selection strategies side by side at the same ``n``: the numbers and curves, no rendering.

:func:`compare_strategies` runs each strategy once on one pool and measures its subset
against the pool: coverage of the pool's tags, average tags per row, tag entropy,
Jensen-Shannon divergence from the pool, and each ``source`` value's share. Picks come in
pick order and are prefix-stable, so coverage against subset size (the MIG paper's
curves) reads prefixes of the one run. Plots and tables are in
:mod:`instag_hf.reporting.compare_plots`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..analysis.tagsets import TagSets, group_codes
from .checks import check_count
from .mig import default_graph
from .options import SelectionOptions
from .params import COMPARED
from .pool import SelectionPool
from .registry import check_strategies
from .report import build_report

SOURCE_COLUMN = "source"
#: MIG with every row weighed 1 (no score column), beside ``mig`` (which reads ``instag_score`` when present)
MIG_UNSCORED = "mig-unscored"


@dataclass
class StrategyResult:
    """One strategy's subset against the pool.

    ``coverage``: share of the pool's tags the subset has. ``complexity``: tags per
    usable row. ``entropy``: Shannon entropy (bits) of the subset's tag distribution
    (each tag's share of all tag occurrences). ``js_divergence``: Jensen-Shannon
    divergence (base 2) from the pool's distribution. ``sources``: share of the subset's
    rows per source value (``None`` without a source column). ``curve``: coverage after
    the first ``sizes[k]`` picks (:attr:`StrategyComparison.sizes`). ``indices``: the picks.
    """

    strategy: str
    selected: int
    coverage: float
    diversity: int
    complexity: float
    entropy: float
    js_divergence: float
    sources: dict[str, float] | None
    curve: list[float]
    seconds: float
    indices: list[int] = field(default_factory=list, repr=False)


@dataclass
class StrategyComparison:
    """Every strategy's :class:`StrategyResult` on one pool, and the pool's own numbers."""

    n: int
    pool_rows: int
    pool_tagged_rows: int
    pool_diversity: int
    pool_complexity: float
    pool_entropy: float
    pool_sources: dict[str, float] | None
    sizes: list[int]
    results: list[StrategyResult]
    params: dict = field(default_factory=dict)

    @property
    def strategies(self) -> list[str]:
        return [r.strategy for r in self.results]

    def result(self, strategy: str) -> StrategyResult:
        for r in self.results:
            if r.strategy == strategy:
                return r
        raise KeyError(f"no result for {strategy!r}; compared: {self.strategies}")

    def as_dict(self, indices: bool = False) -> dict:
        """JSON-ready; picks are left out unless ``indices=True``."""
        out = asdict(self)
        for r in out["results"]:
            if not indices:
                r.pop("indices")
            for key in ("coverage", "entropy", "js_divergence"):
                r[key] = _finite(r[key])
            r["curve"] = [_finite(c) for c in r["curve"]]
        return out


def _finite(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def tag_entropy(counts: np.ndarray) -> float:
    """Shannon entropy in bits of a tag-count vector (0 for no tags)."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(max(0.0, -np.sum(p * np.log2(p))))


def coverage_curve(ts: TagSets, picks: np.ndarray, sizes: Sequence[int]) -> list[float]:
    """Share of the pool's tags held by the first ``k`` picks, for every ``k`` in ``sizes``."""
    pool_tags = int(np.count_nonzero(ts.tag_counts()))
    if pool_tags == 0:
        return [math.nan] * len(sizes)
    sub = ts.take(picks)
    first = np.full(len(ts.vocab), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, sub.ids, sub.row_ids)  # position of the pick that first brings each tag
    first = np.sort(first[first < np.iinfo(np.int64).max])
    return (np.searchsorted(first, np.asarray(sizes, dtype=np.int64), side="left") / pool_tags).tolist()


def _sizes(n: int, points: int) -> list[int]:
    grid = np.unique(np.round(np.linspace(0, n, points + 1)).astype(np.int64))
    return grid.tolist()


def _shares(codes: np.ndarray, labels: list, rows: np.ndarray) -> dict[str, float]:
    counts = np.bincount(codes[rows], minlength=len(labels))
    total = max(int(rows.size), 1)
    return {str(labels[c]): counts[c] / total for c in sorted(range(len(labels)), key=lambda c: str(labels[c]))}


def compare_strategies(ds, n: int, strategies: Sequence[str] | str = COMPARED, *,
                       source_column: str | Sequence | None = SOURCE_COLUMN, points: int = 20,
                       options: SelectionOptions | None = None, **keywords: Any) -> StrategyComparison:
    """Run each of ``strategies`` on ``ds`` at the same ``n`` and measure the subsets against the pool.

    ``ds`` is a tagged ``Dataset`` (or what :func:`~instag_hf.select_indices` takes). The
    selection settings (``options`` and/or keywords) are those of :func:`~instag_hf.sample`
    and apply to every strategy (``label_graph``, ``score_column`` and the ``phi``s to
    ``mig`` only; a graph built from the tags is built once). ``source_column``: whose value
    shares are reported (default ``"source"``, skipped when the dataset has no such column).
    ``points``: subset sizes on the coverage curves, evenly spaced from 0 to ``n``. With
    quotas or ``max_per_tag`` a curve reads prefixes of the ``n``-row selection, which
    need not be the selection of that size.

    ``"mig-unscored"`` (:data:`MIG_UNSCORED`) is MIG with every score 1, whatever the data
    holds, so ``("mig", "mig-unscored")`` shows MIG with and without ``instag_score``
    (``mig`` reads that column when it has no null, or ``score_column=``).
    """
    if isinstance(strategies, str):
        strategies = [s.strip() for s in strategies.split(",") if s.strip()]
    strategies = list(strategies)
    unscored = MIG_UNSCORED in strategies
    if len(set(strategies)) != len(strategies):
        raise ValueError(f"strategies are listed twice: {strategies!r}")
    named = check_strategies(list(dict.fromkeys("mig" if s == MIG_UNSCORED else s for s in strategies)))
    points = check_count("points", points, 1)
    options = SelectionOptions.build(named, options, keywords, caller="compare_strategies")
    pool = SelectionPool.read(ds, n, options, named)
    ts, n = pool.ts, pool.n
    runs = {s: (pool, s) for s in strategies}
    if unscored:
        if pool.mig.label_graph is None:  # built once, for both runs
            pool.mig.label_graph = default_graph(ts)
            pool.mig.extra["label_graph_built"] = "from the data's tags, default embedder"
        mig = dataclasses.replace(pool.mig, scores=None,
                                  extra={k: v for k, v in pool.mig.extra.items() if k != "score_column"})
        runs[MIG_UNSCORED] = (dataclasses.replace(pool, mig=mig), "mig")
    sources = _source_codes(ds, source_column)

    sizes = _sizes(n, points)
    results = []
    for strategy in strategies:
        run_pool, name = runs[strategy]
        start = time.perf_counter()
        picks = run_pool.select(name)
        seconds = time.perf_counter() - start
        report = build_report(ts, picks, name, n, None, 0, None)
        results.append(StrategyResult(
            strategy=strategy, selected=report.selected, coverage=report.coverage, diversity=report.subset_diversity,
            complexity=report.subset_complexity, entropy=tag_entropy(ts.take(picks).tag_counts()),
            js_divergence=report.js_divergence, sources=_shares(*sources, picks) if sources else None,
            curve=coverage_curve(ts, picks, sizes), seconds=seconds, indices=picks.tolist()))

    usable = int(ts.usable.sum())
    params = pool.describe()
    if unscored:
        params["mig_unscored"] = runs[MIG_UNSCORED][0].mig.describe()
    params["source_column"] = source_column if sources and isinstance(source_column, str) else None
    return StrategyComparison(
        n=n, pool_rows=len(ts), pool_tagged_rows=usable, pool_diversity=int(np.count_nonzero(ts.tag_counts())),
        pool_complexity=ts.ids.size / usable if usable else 0.0, pool_entropy=tag_entropy(ts.tag_counts()),
        pool_sources=_shares(*sources, np.arange(len(ts))) if sources else None, sizes=sizes, results=results,
        params=params)


def _source_codes(ds, source_column) -> tuple[np.ndarray, list] | None:
    if source_column is None:
        return None
    if isinstance(source_column, str):
        if not hasattr(ds, "column_names"):
            return None
        if source_column not in ds.column_names:
            if source_column == SOURCE_COLUMN:
                return None
            raise ValueError(f"source column {source_column!r} not found; the dataset has columns {ds.column_names}")
    return group_codes(ds, source_column)
