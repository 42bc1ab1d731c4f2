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
few numpy operations (see :func:`~instag_hf.selection.strategies.cfd_order`), quotas included; only ``max_per_tag``
falls back to the row-by-row loop. ``diversity`` keeps exact gains up to date with
numpy instead of re-scoring rows.

``mig`` (Chen et al., 2025) greedily maximises information gain over a label graph of
the tags, with optional per-row quality scores (see :mod:`instag_hf.selection.mig`).

Every entry point takes the same settings, as keywords or as one
:class:`~instag_hf.selection.options.SelectionOptions` (``options=``); the strategies are
named in :mod:`~instag_hf.selection.registry`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .options import SelectionOptions
from .pool import SelectionPool
from .registry import get_strategy
from .report import build_report


def _pool(data, n, strategy: str, options: SelectionOptions | None, keywords: dict[str, Any],
          caller: str) -> SelectionPool:
    get_strategy(strategy)
    options = SelectionOptions.build(strategy, options, keywords, caller=caller)
    return SelectionPool.read(data, n, options, [strategy])


def select_indices(data, n: int, strategy: str = "cfd", *, options: SelectionOptions | None = None,
                   **keywords: Any) -> np.ndarray:
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
    options, keywords:
        A :class:`~instag_hf.selection.options.SelectionOptions`, and/or its fields as
        keywords over it: ``seed``, ``ties``, ``untagged``, ``quota_column``, ``quotas``,
        ``max_per_tag``, ``tags_column``, ``status_column``, and for ``mig`` only
        ``label_graph``, ``scores`` (or ``score_column``), ``prop_weight``, ``phi_a``, ``phi_b``.
    """
    return _pool(data, n, strategy, options, keywords, "select_indices").select(strategy)


def sample(ds, n: int, strategy: str = "cfd", *, return_report: bool = False,
           options: SelectionOptions | None = None, **keywords: Any):
    """A subset of the tagged ``Dataset`` ``ds`` with every column kept, rows in pick order.

    The parameters are those of :func:`select_indices`; ``score_column`` names the
    column of per-row quality scores for ``mig``. With ``return_report=True`` the result
    is ``(subset, SelectionReport)``.
    """
    from datasets import Dataset

    if not isinstance(ds, Dataset):
        raise ValueError(f"sample() needs a datasets.Dataset, not {type(ds).__name__}; "
                         "select_indices() also takes TagSets and tag lists")
    pool = _pool(ds, n, strategy, options, keywords, "sample")
    indices = pool.select(strategy)
    subset = ds.select(indices)
    if not return_report:
        return subset
    return subset, build_report(pool.ts, indices, strategy, pool.n, pool.groups, 10, pool.describe())
