"""One pool read for selection (:class:`SelectionPool`): its tags, groups and MIG settings, read and
checked once, then any strategy run on it. ``select_indices``, ``sample`` and
``compare_strategies`` all select through it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import schema
from ..analysis.tagsets import TagSets, group_codes, to_tagsets
from .checks import check_count
from .mig import MigParams, check_scores
from .options import SelectionOptions
from .quotas import quota_limits
from .registry import Candidates, get_strategy
from .strategies import Limits, row_lists, take_in_order

logger = logging.getLogger(__name__)


@dataclass
class SelectionPool:
    """A pool ready for selection: ``n`` rows to pick from ``ts`` under ``options``.

    ``groups``: the quota column's code per row and its labels; ``mig``: MIG's settings
    (with the scores read from the data) when ``mig`` is among the strategies to run.
    """

    ts: TagSets
    n: int
    options: SelectionOptions
    groups: tuple[np.ndarray, list] | None = None
    mig: MigParams | None = None

    @classmethod
    def read(cls, data, n: int, options: SelectionOptions, strategies: Sequence[str]) -> SelectionPool:
        """Read ``data`` (a Dataset, TagSets or tag lists) for a selection of ``n`` rows by ``strategies``."""
        n = check_count("n", n, 0)
        mig = options.mig_params() if "mig" in strategies else None
        ts = to_tagsets(data, options.tags_column, options.status_column)
        scores = options.scores
        if mig is not None and scores is None:
            scores = _default_scores(data)
        if mig is not None and scores is not None:
            mig.scores = check_scores(_score_values(data, scores), len(ts))
            if isinstance(scores, str):
                mig.extra["score_column"] = scores
        groups = group_codes(data, options.quota_column) if options.quota_column is not None else None
        return cls(ts, n, options, groups, mig)

    def select(self, strategy: str) -> np.ndarray:
        """Row indices picked by ``strategy``, in pick order, untagged rows filled in as ``options.untagged`` says."""
        spec = get_strategy(strategy)
        ts, n, options = self.ts, self.n, self.options
        size = len(ts)
        rng = np.random.default_rng(options.seed)
        rank = rng.permutation(size) if (options.ties == "shuffle" or spec.shuffled) else np.arange(size)
        tagged = ts.lengths > 0
        codes, labels = self.groups if self.groups is not None else (None, None)
        quota = limits = None
        if codes is not None:
            available = tagged if options.untagged == "never" else np.ones(size, dtype=bool)
            quota = quota_limits(codes, labels, n, options.quotas, available)
        capped = options.max_per_tag is not None
        if codes is not None or capped:
            limits = Limits(codes, quota, row_lists(ts) if capped else [], options.max_per_tag, len(ts.vocab))
        candidates = Candidates(ts, np.flatnonzero(tagged), rank, limits, codes, quota, self.mig)
        picks = np.asarray(spec.pick(candidates, n), dtype=np.int64)

        if picks.size < n and options.untagged == "last":
            zero = np.flatnonzero(~tagged & ts.usable)
            failed = np.flatnonzero(~ts.usable)
            fill = np.concatenate([zero[np.argsort(rank[zero], kind="stable")],
                                   failed[np.argsort(rank[failed], kind="stable")]])
            if limits is None:
                extra = fill[: n - picks.size]
            else:
                extra = np.asarray(take_in_order(fill.tolist(), n - picks.size, limits), dtype=np.int64)
            picks = np.concatenate([picks, extra])
        if picks.size < min(n, size) and (codes is not None or capped):
            logger.warning("selected %d of the %d rows asked for: the quotas or max_per_tag leave no other "
                           "eligible row", picks.size, n)
        return picks

    def describe(self) -> dict:
        """The recipe a report records: the options, and MIG's settings as the run used them."""
        params = self.options.describe()
        if self.mig is not None:
            params["mig"] = self.mig.describe()
        return params


def _default_scores(data) -> str | None:
    """``instag_score`` when ``data`` is a Dataset with that column and no null in it (logged either way)."""
    if not hasattr(data, "column_names") or schema.SCORE not in data.column_names:
        return None
    nulls = data.with_format("arrow")[schema.SCORE].null_count
    if nulls:
        logger.warning("mig: not weighing rows by %s: %d rows have no score (see %s); fill them or pass "
                       "score_column=", schema.SCORE, nulls, schema.SCORE_STATUS)
        return None
    logger.info("mig: weighing rows by the %s column (pass scores= or score_column= to choose)", schema.SCORE)
    return schema.SCORE


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
