"""Subset selection by intention tags: Complexity-first Diverse sampling and baselines.

``sample(ds, 6000)`` runs Algorithm 1 of the paper (InsTag paper, section 4, Algorithm 1):

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

Tag-based selection can skew domains (as the DaaR paper cautions), so
``quota_column`` caps the rows taken from each value of a column and
``max_per_tag`` caps the rows taken per tag; a row that would break a limit is
skipped. Both are applied inside the strategy's own order.

Cf-D runs on integer tag ids (:class:`~instag_hf.analysis.tagsets.TagSets`): a whole pass is a
few numpy operations (see :func:`_cfd_order`), quotas included; only ``max_per_tag``
falls back to the row-by-row loop. ``diversity`` keeps exact gains up to date with
numpy instead of re-scoring rows.

``mig`` (Chen et al., 2025) greedily maximises information gain over a label graph of
the tags, with optional per-row quality scores (see :mod:`instag_hf.selection.mig`).
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np

from .. import schema
from ..analysis.tagsets import TagSets, group_codes, to_tagsets
from .label_graph import LabelGraph
from .mig import PHI_A, PHI_B, PROP_WEIGHT, MigParams, check_scores, mig_greedy
from .params import STRATEGIES, TIES, UNTAGGED, _check_choice, _check_count
from .quotas import _quota_limits
from .report import _report
from .strategies import _cfd_loop, _cfd_order, _in_order, _Limits, _max_coverage

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- public API


def _row_lists(ts: TagSets) -> list[list[int]]:
    flat, bounds = ts.ids.tolist(), ts.offsets.tolist()
    return list(map(flat.__getitem__, map(slice, bounds[:-1], bounds[1:])))


def _select(ts: TagSets, n: int, strategy: str, seed: int | None, ties: str, untagged: str,
            codes: np.ndarray | None, labels: list | None, quotas, max_per_tag: int | None,
            mig: MigParams | None = None) -> np.ndarray:
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
    elif strategy == "mig":
        picks = np.asarray(mig_greedy(ts, rows, rank, n, limits, mig or MigParams()), dtype=np.int64)
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
                   tags_column: str | None = None, status_column: str | None = schema.STATUS,
                   label_graph: LabelGraph | None = None, scores: Sequence[float] | np.ndarray | str | None = None,
                   prop_weight: float | None = None, phi_a: float | None = None,
                   phi_b: float | None = None) -> np.ndarray:
    """Row indices of the selected subset, in pick order.

    Parameters
    ----------
    data:
        A tagged ``Dataset``, a :class:`~instag_hf.analysis.tagsets.TagSets`, or a list of tag lists.
    n:
        Rows to select; ``n >= len(data)`` selects every row (with ``untagged="last"``).
    strategy:
        ``"cfd"`` (Complexity-first Diverse sampling, Algorithm 1), ``"random"``,
        ``"complexity"`` (most tags first), ``"diversity"`` (greedy maximum coverage) or
        ``"mig"`` (greedy information gain over a label graph, Chen et al., 2025).
    seed:
        Seeds ``random`` and ``ties="shuffle"`` (``None``: fresh entropy, not reproducible).
    ties:
        Order among rows that tie (equal tag counts; equal gains for ``diversity`` and ``mig``)
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
    label_graph:
        ``mig`` only: an :class:`~instag_hf.LabelGraph` holding every tag of the data; ``None``
        builds one from the data's tags with the normalization step's default embedder.
    scores:
        ``mig`` only: one non-negative quality weight per row (or, for a Dataset, a column
        name), e.g. Deita scores; default 1 for every row.
    prop_weight, phi_a, phi_b:
        ``mig`` only: the weight of the graph's edges in propagation (default 1.0; 0 turns
        propagation off) and ``phi(x) = (x + phi_a) ** phi_b`` (defaults 1e-6 and 0.8).
    """
    ts, codes, labels, n, max_per_tag, mig = _prepare(
        data, n, strategy, ties, untagged, quota_column, quotas, max_per_tag, tags_column, status_column,
        label_graph, scores, prop_weight, phi_a, phi_b)
    return _select(ts, n, strategy, seed, ties, untagged, codes, labels, quotas, max_per_tag, mig)


def _prepare(data, n, strategy, ties, untagged, quota_column, quotas, max_per_tag, tags_column, status_column,
             label_graph=None, scores=None, prop_weight=None, phi_a=None, phi_b=None):
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("ties", ties, TIES)
    _check_choice("untagged", untagged, UNTAGGED)
    n = _check_count("n", n, 0)
    if max_per_tag is not None:
        max_per_tag = _check_count("max_per_tag", max_per_tag, 1)
    if quotas is not None and quota_column is None:
        raise ValueError("quotas need a quota_column (the column whose values they are for)")
    options = {"label_graph": label_graph, "scores": scores, "prop_weight": prop_weight, "phi_a": phi_a,
               "phi_b": phi_b}
    given = [name for name, value in options.items() if value is not None]
    if given and strategy != "mig":
        raise ValueError(f"{', '.join(given)} apply only to strategy='mig', not {strategy!r}")
    mig = None
    if strategy == "mig":
        mig = MigParams(label_graph, None, PROP_WEIGHT if prop_weight is None else prop_weight,
                        PHI_A if phi_a is None else phi_a, PHI_B if phi_b is None else phi_b)
    ts = to_tagsets(data, tags_column, status_column)
    if scores is not None:
        mig.scores = check_scores(_score_values(data, scores), len(ts))
        if isinstance(scores, str):
            mig.extra["score_column"] = scores
    codes = labels = None
    if quota_column is not None:
        codes, labels = group_codes(data, quota_column)
    return ts, codes, labels, n, max_per_tag, mig


def _score_values(data, scores):
    """Scores as given, or read from a Dataset column (missing values are an error)."""
    if not isinstance(scores, str):
        return scores
    if not hasattr(data, "column_names"):
        raise ValueError(f"a score column name ({scores!r}) needs a Dataset; pass one score per row instead")
    if scores not in data.column_names:
        raise ValueError(f"score column {scores!r} not found; the dataset has columns {data.column_names}")
    import pyarrow as pa

    column = data.with_format("arrow")[scores]
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise ValueError(f"score column {scores!r} must hold numbers, not {column.type}")
    if column.null_count:
        raise ValueError(f"score column {scores!r} has {column.null_count} missing value(s); fill them first")
    return column.to_numpy()


def sample(ds, n: int, strategy: str = "cfd", *, seed: int | None = 0, ties: str = "index", untagged: str = "last",
           quota_column: str | Sequence | None = None, quotas: str | Mapping[str, int] | None = None,
           max_per_tag: int | None = None, tags_column: str | None = None,
           status_column: str | None = schema.STATUS, return_report: bool = False,
           label_graph: LabelGraph | None = None, score_column: str | None = None, prop_weight: float | None = None,
           phi_a: float | None = None, phi_b: float | None = None):
    """A subset of the tagged ``Dataset`` ``ds`` with every column kept, rows in pick order.

    The parameters are those of :func:`select_indices`; ``score_column`` names the
    column of per-row quality scores for ``mig``. With ``return_report=True`` the result
    is ``(subset, SelectionReport)``.
    """
    from datasets import Dataset

    if not isinstance(ds, Dataset):
        raise ValueError(f"sample() needs a datasets.Dataset, not {type(ds).__name__}; "
                         "select_indices() also takes TagSets and tag lists")
    if score_column is not None and not isinstance(score_column, str):
        raise ValueError(f"score_column must be a column name, got {type(score_column).__name__}")
    if score_column is not None and strategy != "mig":
        raise ValueError(f"score_column applies only to strategy='mig', not {strategy!r}")
    ts, codes, labels, n, max_per_tag, mig = _prepare(
        ds, n, strategy, ties, untagged, quota_column, quotas, max_per_tag, tags_column, status_column,
        label_graph, score_column, prop_weight, phi_a, phi_b)
    indices = _select(ts, n, strategy, seed, ties, untagged, codes, labels, quotas, max_per_tag, mig)
    subset = ds.select(indices)
    if not return_report:
        return subset
    params = {"seed": seed, "ties": ties, "untagged": untagged,
              "quota_column": quota_column if isinstance(quota_column, (str, type(None))) else "<labels>",
              "quotas": quotas, "max_per_tag": max_per_tag}
    if mig is not None:
        params["mig"] = mig.describe()
    groups = (codes, labels) if codes is not None else None
    return subset, _report(ts, indices, strategy, n, groups, 10, params)
