"""Diversity, complexity, coverage and tag recall of tagged datasets (InsTag paper, section 3).

Everything but :func:`summarize` reads tags through :class:`~instag_hf.analysis.tagsets.TagSets`
(pyarrow + numpy), so a million rows take seconds, not minutes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .. import schema
from ..strict_json import finite
from .tagsets import TagSets, group_codes, pair_counts, resolve_tags_column, to_tagsets


def _tag_names(value) -> list[str]:
    """Tag titles from an ``instag_tags`` cell (items) or an ``instag_norm_tags`` cell (strings)."""
    return [v["tag"] if isinstance(v, dict) else v for v in value or []]


@dataclass
class TagSummary:
    """What a tagging run produced.

    ``complexity`` and the tag counts use only rows whose status is usable
    (``ok`` or ``truncated``): a failed row is missing data, not a row with zero tags.
    """

    rows: int
    tagged_rows: int
    statuses: dict[str, int]
    diversity: int
    complexity: float
    top_tags: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok_rate(self) -> float:
        return self.tagged_rows / self.rows if self.rows else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "ok_rate": self.ok_rate}

    def to_text(self) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        top = ", ".join(f"{t} ({n})" for t, n in self.top_tags[:10])
        return (
            f"rows: {self.rows}  tagged: {self.tagged_rows} ({self.ok_rate:.1%})  statuses: {statuses}\n"
            f"diversity (unique tags): {self.diversity}  complexity (tags per tagged sample): {self.complexity:.2f}\n"
            f"top tags: {top or '-'}"
        )


def summarize(tags: Iterable, statuses: Iterable[str], top: int = 20) -> TagSummary:
    """Summary of parallel ``tags`` and ``statuses`` columns."""
    counts: Counter = Counter()
    status_counts: Counter = Counter()
    rows = tagged = total = 0
    for value, status in zip(tags, statuses):
        rows += 1
        status_counts[status] += 1
        if status not in schema.TAGGED_STATUSES:
            continue
        names = set(_tag_names(value))
        tagged += 1
        total += len(names)
        counts.update(names)
    return TagSummary(
        rows=rows,
        tagged_rows=tagged,
        statuses=dict(status_counts),
        diversity=len(counts),
        complexity=total / tagged if tagged else 0.0,
        top_tags=counts.most_common(top),
    )


def summarize_dataset(ds, tags_column: str = schema.TAGS, top: int = 20) -> TagSummary:
    """:func:`summarize` over a tagged ``Dataset``, computed on its Arrow columns.

    Without an ``instag_status`` column every row counts as tagged. Ties among top tags go by tag.
    """
    table = ds.with_format("arrow")
    status = table[schema.STATUS] if schema.STATUS in ds.column_names else None
    ts = TagSets.from_arrow(table[resolve_tags_column(ds.column_names, tags_column)], status)
    statuses = schema.status_counts(ds)
    usable = int(ts.usable.sum())
    return TagSummary(
        rows=len(ts),
        tagged_rows=usable,
        statuses=statuses,
        diversity=int(np.count_nonzero(ts.tag_counts())),
        complexity=ts.ids.size / usable if usable else 0.0,
        top_tags=_top(ts.tag_counts(), ts.vocab, top),
    )


# --------------------------------------------------------------------------------------
# Columnar metrics: diversity, coverage, complexity, tag recall (InsTag paper, section 3)
# --------------------------------------------------------------------------------------

def _tagsets(data, tags_column: str | None = None, status_column: str | None = schema.STATUS) -> TagSets:
    return to_tagsets(data, tags_column, status_column)


def _tag_set(data, tags_column: str | None = None, status_column: str | None = schema.STATUS) -> frozenset[str]:
    if isinstance(data, (set, frozenset)):
        return frozenset(data)
    return _tagsets(data, tags_column, status_column).tag_set()


def diversity(data, tags_column: str | None = None, status_column: str | None = schema.STATUS) -> int:
    """Unique tags over the usable rows of ``data`` (a ``Dataset``, :class:`TagSets` or tag lists)."""
    return int(np.count_nonzero(_tagsets(data, tags_column, status_column).tag_counts()))


def complexity(data, tags_column: str | None = None, status_column: str | None = schema.STATUS) -> float:
    """Average tags per usable row (0.0 when there is none)."""
    ts = _tagsets(data, tags_column, status_column)
    usable = int(ts.usable.sum())
    return ts.ids.size / usable if usable else 0.0


def coverage(data, pool, tags_column: str | None = None, status_column: str | None = schema.STATUS) -> float:
    """``|tags(data) ∩ tags(pool)| / |tags(pool)|``; ``pool`` may also be a set of tags. NaN for an empty pool."""
    mine, theirs = _tag_set(data, tags_column, status_column), _tag_set(pool, tags_column, status_column)
    return len(mine & theirs) / len(theirs) if theirs else float("nan")


def tag_recall(a, b, tags_column: str | None = None, status_column: str | None = schema.STATUS) -> float:
    """Recall of ``a`` by ``b``: ``|tags(a) ∩ tags(b)| / |tags(a)|``, the share of a's tags that b also has.

    Either argument is a dataset (as for :func:`diversity`) or a set of tags. NaN when ``a`` has no tags.
    """
    return coverage(b, a, tags_column, status_column)


def recall_matrix(tag_sets: Mapping[str, Iterable[str]] | Sequence[Iterable[str]]) -> np.ndarray:
    """``M[i, j]`` = recall of tag set ``i`` by tag set ``j`` (the paper's Figure 2b). Rows of empty sets are NaN."""
    sets = [frozenset(s) for s in (tag_sets.values() if isinstance(tag_sets, Mapping) else tag_sets)]
    out = np.full((len(sets), len(sets)), np.nan)
    for i, a in enumerate(sets):
        if a:
            for j, b in enumerate(sets):
                out[i, j] = len(a & b) / len(a)
    return out


def _top(counts: np.ndarray, vocab: np.ndarray, k: int) -> list[tuple[str, int]]:
    """The ``k`` largest counts as ``(tag, count)``, ties by tag."""
    nonzero = np.flatnonzero(counts)
    if k <= 0 or nonzero.size == 0:
        return []
    if k < nonzero.size:
        kth = np.partition(counts[nonzero], nonzero.size - k)[nonzero.size - k]
        nonzero = nonzero[counts[nonzero] >= kth]
    ranked = sorted(zip(vocab[nonzero].tolist(), counts[nonzero].tolist()), key=lambda x: (-x[1], x[0]))
    return ranked[:k]


def top_tags(data, k: int = 20, tags_column: str | None = None, status_column: str | None = schema.STATUS
             ) -> list[tuple[str, int]]:
    """The ``k`` tags on the most rows, as ``(tag, rows)``; ties by tag."""
    ts = _tagsets(data, tags_column, status_column)
    return _top(ts.tag_counts(), ts.vocab, k)


def tag_count_histogram(data, tags_column: str | None = None, status_column: str | None = schema.STATUS
                        ) -> dict[int, int]:
    """Usable rows per number of tags, ``{tags: rows}`` in ascending order (rows with 0 tags included)."""
    ts = _tagsets(data, tags_column, status_column)
    hist = np.bincount(ts.lengths[ts.usable], minlength=1)
    return {k: int(v) for k, v in enumerate(hist.tolist()) if v}


def _pairs(ts: TagSets) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair of tags within a row, as parallel id arrays (smaller id first)."""
    lengths, ids = ts.lengths, ts.ids
    rows = ts.row_ids
    later = ts.offsets[1:][rows] - np.arange(ids.size, dtype=np.int64) - 1
    firsts, seconds = [], []
    at = np.flatnonzero(later > 0)
    step = 1
    while at.size:
        firsts.append(ids[at])
        seconds.append(ids[at + step])
        step += 1
        at = at[later[at] >= step]
    if not firsts or not lengths.size:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    return np.minimum(a, b), np.maximum(a, b)


def cooccurrence(data, k: int = 20, tags_column: str | None = None, status_column: str | None = schema.STATUS
                 ) -> list[tuple[str, str, int]]:
    """The ``k`` tag pairs found together on the most rows, as ``(tag, tag, rows)`` (each pair in name order)."""
    ts = _tagsets(data, tags_column, status_column)
    if k <= 0 or not ts.ids.size:
        return []
    # distinct pairs counted in row chunks: memory grows with the pairs, not with the pair occurrences
    carried = np.flatnonzero(ts.tag_counts())
    first, second, counts = pair_counts(ts.offsets, ts.ids, carried, len(ts.vocab))
    if counts.size == 0:
        return []
    if k < counts.size:
        kth = np.partition(counts, counts.size - k)[counts.size - k]
        first, second, counts = first[counts >= kth], second[counts >= kth], counts[counts >= kth]
    first, second = carried[first], carried[second]
    names = zip(ts.vocab[first].tolist(), ts.vocab[second].tolist(), counts.tolist())
    rows = [(*sorted((x, y)), c) for x, y, c in names]
    return sorted(rows, key=lambda x: (-x[2], x[0], x[1]))[:k]


def cooccurrence_matrix(data, tags: Sequence[str], tags_column: str | None = None,
                        status_column: str | None = schema.STATUS) -> np.ndarray:
    """``M[i, j]``: rows carrying both ``tags[i]`` and ``tags[j]`` (the diagonal: rows carrying ``tags[i]``)."""
    ts = _tagsets(data, tags_column, status_column)
    position = {t: i for i, t in enumerate(ts.vocab.tolist())}
    local = np.full(len(ts.vocab), -1, dtype=np.int64)
    for j, t in enumerate(tags):
        if t in position:
            local[position[t]] = j
    out = np.zeros((len(tags), len(tags)), dtype=np.int64)
    mapped = local[ts.ids]
    keep = mapped >= 0
    if not keep.any():
        return out
    rows = ts.row_ids[keep]
    sub = TagSets._from_pairs(rows, mapped[keep], np.asarray(list(tags), dtype=object), ts.usable)
    np.add.at(out, (np.arange(len(tags)), np.arange(len(tags))), sub.tag_counts())
    a, b = _pairs(sub)
    np.add.at(out, (a, b), 1)
    np.add.at(out, (b, a), 1)
    return out


@dataclass
class DatasetMetrics:
    """Diversity and complexity of one dataset (InsTag paper, section 3).

    ``diversity``: unique tags; ``coverage``: the share of the reference pool's tags
    it covers (None without a pool); ``complexity``: average tags per usable row;
    ``tag_count_histogram``: ``{tags: rows}``; ``top_tags``: ``(tag, rows)``;
    ``top_pairs``: ``(tag, tag, rows)`` co-occurring most; ``tag_counts``: rows per
    tag for every tag, most frequent first (for long-tail plots).
    """

    name: str
    rows: int
    tagged_rows: int
    diversity: int
    complexity: float
    coverage: float | None = None
    tag_count_histogram: dict[int, int] = field(default_factory=dict)
    top_tags: list[tuple[str, int]] = field(default_factory=list)
    top_pairs: list[tuple[str, str, int]] = field(default_factory=list)
    tag_counts: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self.tag_counts)

    def as_dict(self, include_tag_counts: bool = False) -> dict:
        """Plain JSON data; a statistic that is not a number (coverage of an empty pool) is ``None``."""
        out = asdict(self)
        out["tag_count_histogram"] = {str(k): v for k, v in self.tag_count_histogram.items()}
        if not include_tag_counts:
            out.pop("tag_counts")
        return finite(out)


def dataset_metrics(data, name: str = "dataset", *, pool=None, top: int = 20, pairs: int = 10,
                    tags_column: str | None = None, status_column: str | None = schema.STATUS) -> DatasetMetrics:
    """All metrics of one dataset in one pass over its tags.

    Parameters
    ----------
    data:
        A ``Dataset``, a :class:`TagSets`, or a list of tag lists.
    pool:
        The reference for ``coverage``: a dataset or a set of tags (default: none).
    top, pairs:
        How many top tags and top co-occurring pairs to keep (``pairs=0`` skips the
        pair count, the only step that grows with the square of tags per row).
    tags_column, status_column:
        See :meth:`TagSets.from_dataset`.
    """
    if top < 0 or pairs < 0:
        raise ValueError(f"top and pairs must be >= 0, got top={top}, pairs={pairs}")
    ts = _tagsets(data, tags_column, status_column)
    counts = ts.tag_counts()
    present = np.flatnonzero(counts)
    order = present[np.lexsort((ts.vocab[present].astype(str), -counts[present]))] if present.size else present
    tag_counts = dict(zip(ts.vocab[order].tolist(), counts[order].tolist()))
    usable = int(ts.usable.sum())
    cov = None
    if pool is not None:
        ref = _tag_set(pool, tags_column, status_column)
        cov = len(ref.intersection(tag_counts)) / len(ref) if ref else float("nan")
    hist = np.bincount(ts.lengths[ts.usable], minlength=1)
    return DatasetMetrics(
        name=name,
        rows=len(ts),
        tagged_rows=usable,
        diversity=int(present.size),
        complexity=ts.ids.size / usable if usable else 0.0,
        coverage=cov,
        tag_count_histogram={k: int(v) for k, v in enumerate(hist.tolist()) if v},
        top_tags=list(tag_counts.items())[:top],
        top_pairs=cooccurrence(ts, pairs) if pairs else [],
        tag_counts=tag_counts,
    )


@dataclass
class Analysis:
    """Metrics of several datasets side by side, as :func:`analyze` returns them.

    ``datasets``: one :class:`DatasetMetrics` per dataset (coverage against the pool);
    ``combined``: the same for all of them together (``"all"``), or for the pool when one
    was given (``"pool"``: subsets are never added to the data they were drawn from);
    ``show_combined``: whether tables and plots give ``combined`` a panel of its own
    (not when it would repeat a dataset already shown); ``recall[i, j]``: recall of
    dataset ``i`` by dataset ``j``; ``cooccurrence``: rows carrying both of two of the
    combined data's top tags (``cooccurrence_tags``).
    """

    datasets: list[DatasetMetrics]
    combined: DatasetMetrics
    recall: np.ndarray
    cooccurrence_tags: list[str]
    cooccurrence: np.ndarray
    tags_column: str | None = None
    source_column: str | None = None
    show_combined: bool = True

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.datasets]

    def as_dict(self) -> dict:
        """Plain JSON data; a statistic that is not a number (recall of a dataset without tags) is ``None``."""
        return finite({
            "tags_column": self.tags_column,
            "source_column": self.source_column,
            "datasets": [m.as_dict() for m in self.datasets],
            "combined": self.combined.as_dict(),
            "recall": {"names": self.names, "matrix": self.recall.tolist()},
            "cooccurrence": {"tags": self.cooccurrence_tags, "matrix": self.cooccurrence.tolist()},
        })


def _named_parts(data, names: Sequence[str] | None) -> list[tuple[str, Any]]:
    from datasets import Dataset

    if isinstance(data, Mapping):
        parts = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, (Dataset, TagSets)):
        parts = [("dataset", data)]
    elif isinstance(data, (list, tuple)):
        parts = [(f"dataset_{i}", d) for i, d in enumerate(data)]
    else:
        raise ValueError(f"expected a Dataset, a list of them or a mapping name -> Dataset, not {type(data).__name__}")
    if names is not None:
        if len(names) != len(parts):
            raise ValueError(f"got {len(names)} names for {len(parts)} datasets")
        parts = [(str(n), d) for n, (_, d) in zip(names, parts)]
    seen = [n for n, _ in parts]
    if len(set(seen)) != len(seen):
        raise ValueError(f"dataset names must be unique, got {seen}")
    return parts


def analyze(data, *, names: Sequence[str] | None = None, source_column: str | None = None,
            tags_column: str | None = None, status_column: str | None = schema.STATUS, pool=None,
            top: int = 20, pairs: int = 10, cooccurrence_top: int = 15) -> Analysis:
    """Diversity, complexity, coverage and tag recall of one or several datasets.

    Parameters
    ----------
    data:
        A ``Dataset`` (or :class:`TagSets`), a list of them, or a mapping ``name -> Dataset``.
    names:
        Names for the datasets of a list (default ``dataset_0``, ...).
    source_column:
        Split every dataset by the values of this column and analyze each part
        (named by the value, or ``name/value`` when there are several datasets).
    tags_column, status_column:
        See :meth:`TagSets.from_dataset` (default: normalized tags when present).
    pool:
        The reference for coverage (a dataset or a set of tags); default: all the
        analyzed data together. A pool dataset is also what ``combined`` measures, so
        subsets drawn from it are compared with it, never summed with it.
    top, pairs, cooccurrence_top:
        Top tags and top pairs kept per dataset; tags in the co-occurrence matrix.
    """
    parts = _named_parts(data, names)
    whole = [to_tagsets(d, tags_column, status_column) for _, d in parts]
    named: list[tuple[str, TagSets]] = []
    if source_column is None:
        named = [(n, ts) for (n, _), ts in zip(parts, whole)]
    else:
        for (n, d), ts in zip(parts, whole):
            codes, labels = group_codes(d, source_column)
            for code in sorted(range(len(labels)), key=lambda c: str(labels[c])):
                label = str(labels[code])
                named.append((label if len(parts) == 1 else f"{n}/{label}", ts.take(np.flatnonzero(codes == code))))
    combined_name, show_combined = "all", len(named) > 1
    if pool is not None and not isinstance(pool, (set, frozenset)):
        combined_ts, combined_name = to_tagsets(pool, tags_column, status_column), "pool"
        show_combined = len(named) > 1 and not (source_column is None and any(d is pool for _, d in parts))
    else:
        combined_ts = whole[0] if len(whole) == 1 else TagSets.concat(whole)
    reference = combined_ts.tag_set() if pool is None else _tag_set(pool, tags_column, status_column)
    metrics = [dataset_metrics(ts, n, pool=reference, top=top, pairs=pairs) for n, ts in named]
    if len(named) == 1 and named[0][1] is combined_ts:  # one dataset is its own whole: counted once
        combined = replace(metrics[0], name=combined_name)
    else:
        combined = dataset_metrics(combined_ts, combined_name, pool=reference, top=top, pairs=pairs)
    co_tags = [t for t, _ in combined.top_tags[:cooccurrence_top]]
    column = None
    if parts and hasattr(parts[0][1], "column_names"):
        column = resolve_tags_column(parts[0][1].column_names, tags_column)
    return Analysis(
        datasets=metrics,
        combined=combined,
        recall=recall_matrix([m.tags for m in metrics]),
        cooccurrence_tags=co_tags,
        cooccurrence=cooccurrence_matrix(combined_ts, co_tags),
        tags_column=column,
        source_column=source_column,
        show_combined=show_combined,
    )
