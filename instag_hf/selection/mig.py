"""MIG: greedy maximisation of information gain over the label graph (Chen et al., 2025).

Each row ``i`` with tag set ``T_i`` and quality score ``s_i`` puts ``s_i / |T_i|`` on each of
its tags (``v_i``); the propagation matrix ``P`` (the graph's weights, off-diagonal entries
times ``prop_weight``, each column divided by its sum) spreads it to similar tags:
``u_i = v_i P``. A selection ``S`` holds ``x = sum of u_i over S`` and is worth
``sum_t phi(x_t)`` with the concave ``phi(x) = (x + a)^b``. The greedy takes, again and
again, the row with the largest gain ``u_i . phi'(x)`` (as published), ties to the lowest
rank (row index with ``ties="index"``), then adds ``u_i`` to ``x``.

Equal gains are equal floats: ``h`` below is kept on a fixed grid far finer than any
difference that matters, so a row's sum of ``h`` is exact in any order, and a tie is
decided by rank, never by the order of a floating-point sum.

Speed. ``u_i . phi'(x) = v_i . h`` with ``h = P phi'(x)``, so a row's gain is a sum over
its own few tags and ``u_i`` is never stored (rows stay sparse). A pick changes ``x``
on the tags next to the row's tags and ``h`` only next to those, recomputed there.
``phi'`` only falls as ``x`` grows and every weight is non-negative, so gains only
shrink: the lazy greedy keeps stale gains as upper bounds in a priority queue
(:mod:`~instag_hf.selection.lazy_queue`) and re-scores, in numpy batches, only the rows
that come before the best current gain in queue order. It picks what the plain greedy
(:func:`mig_plain`, every gain re-computed at every pick) picks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..analysis.tagsets import TagSets
from .checks import check_real
from .label_graph import LabelGraph
from .lazy_queue import BucketQueue, Level, first_in_order

if TYPE_CHECKING:
    from .strategies import Limits

logger = logging.getLogger(__name__)

PROP_WEIGHT, PHI_A, PHI_B = 1.0, 1e-6, 0.8


@dataclass
class MigParams:
    """MIG's settings, checked: the graph (``None``: built from the data's tags), scores, ``phi``'s ``a`` and ``b``."""

    label_graph: LabelGraph | None = None
    scores: np.ndarray | None = None
    prop_weight: float = PROP_WEIGHT
    phi_a: float = PHI_A
    phi_b: float = PHI_B
    extra: dict = field(default_factory=dict)
    #: True (the paper's, default): ``s_i / |T_i|`` on each tag of row ``i``; False: ``s_i`` on each
    #: (the official command line's ``--norm False``)
    norm: bool = True

    def __post_init__(self):
        if self.label_graph is not None and not isinstance(self.label_graph, LabelGraph):
            raise ValueError(f"label_graph must be an instag_hf.LabelGraph, got {type(self.label_graph).__name__}; "
                             "wrap a matrix with LabelGraph(tags, similarity) or load one with LabelGraph.load")
        self.prop_weight = check_real("prop_weight", self.prop_weight, 0.0)
        self.phi_a = check_real("phi_a", self.phi_a, 0.0, low_open=True)
        self.phi_b = check_real("phi_b", self.phi_b, 0.0, 1.0, low_open=True)
        if not isinstance(self.norm, (bool, np.bool_)):
            raise ValueError(f"norm must be True or False, got {self.norm!r}")

    def describe(self) -> dict:
        graph = self.label_graph
        return {"prop_weight": self.prop_weight, "phi_a": self.phi_a, "phi_b": self.phi_b, "norm": bool(self.norm),
                "label_graph": None if graph is None else {"tags": len(graph), "edges": graph.n_edges},
                "scores": self.scores is not None, **self.extra}


def check_scores(scores, size: int) -> np.ndarray:
    """Per-row quality weights as float64: finite, non-negative, one per row."""
    try:
        values = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scores must be numbers, one per row ({exc})") from exc
    if values.ndim != 1 or values.size != size:
        raise ValueError(f"scores must hold one number per row: got shape {values.shape} for {size} rows")
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        raise ValueError(f"scores must be finite and >= 0 (gains must only shrink); {bad.size} are not, "
                         f"e.g. row {int(bad[0])}: {values[bad[0]]!r}")
    return values


def propagation_matrix(graph: LabelGraph, prop_weight: float):
    """``P`` (CSR): the graph's weights, off-diagonal ones times ``prop_weight``, each column divided by its sum."""
    from scipy import sparse

    w = graph.similarity
    if prop_weight != 1.0:
        w = w * prop_weight + sparse.identity(len(graph), format="csr") * (1.0 - prop_weight)
        w.eliminate_zeros()
    w = w.tocsr()
    column_sums = np.asarray(w.sum(axis=0)).ravel()
    w.data /= column_sums[w.indices]
    w.sort_indices()
    return w


def _gather(indptr: np.ndarray, lengths: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the entries of CSR ``rows`` (concatenated) and where each row's run starts."""
    counts = lengths[rows]
    ends = np.cumsum(counts)
    bounds = ends - counts
    total = int(ends[-1]) if ends.size else 0
    return np.repeat(indptr[rows] - bounds, counts) + np.arange(total, dtype=np.int64), bounds


class _Model:
    """The pool in MIG's terms and the selection's state.

    ``gid``: graph id of every tag entry of ``ts``; ``weight``: ``s_i / |T_i|`` per row;
    ``P``: the propagation matrix; ``x``: information so far per graph tag; ``grad``:
    ``phi'(x)``; ``h = P grad``, so that a row's gain ``u_i . grad`` is ``v_i . h``.

    ``h`` is kept on a fixed grid (``2^-(52 - log2 of the longest row)`` of its first
    largest value, far below any difference that matters), so that the sum of a row's
    ``h`` is exact in any order and equal gains compute equal: a tie is a tie, decided
    by rank, whatever the order of a floating-point sum.
    """

    def __init__(self, ts: TagSets, params: MigParams, graph: LabelGraph):
        carried = np.flatnonzero(ts.tag_counts())
        to_graph = np.full(len(ts.vocab), -1, dtype=np.int64)
        to_graph[carried] = graph.indices(ts.vocab[carried].tolist())
        self.gid = to_graph[ts.ids].astype(np.int32)
        self.offsets, self.lengths = ts.offsets, ts.lengths
        self.scores = params.scores if params.scores is not None else np.ones(len(ts))
        self.norm = params.norm
        self.weight = (np.divide(self.scores, self.lengths, out=np.zeros(len(ts)), where=self.lengths > 0)
                       if self.norm else np.where(self.lengths > 0, self.scores, 0.0))
        self.P = propagation_matrix(graph, params.prop_weight)
        self.p_lengths = np.diff(self.P.indptr)
        self.identity = self.P.nnz == len(graph)  # no edge: a row informs only its own tags
        self.a, self.b = params.phi_a, params.phi_b
        size = len(graph)
        self.x = np.zeros(size)
        self.grad = self._phi_grad(self.x)
        self.scale = 1.0
        first = self._h(np.arange(size))
        longest = int(self.lengths.max()) if self.lengths.size else 1
        if first.size and first.max() > 0:
            bits = 52 - max(1, math.ceil(math.log2(longest + 1)))
            self.scale = 2.0 ** (math.ceil(math.log2(first.max())) - bits)
        self.h = self._h(np.arange(size))
        self._sum = np.zeros(size)  # scratch: u of the row being added
        self._seen = np.zeros(size, dtype=bool)

    def _phi_grad(self, x: np.ndarray) -> np.ndarray:
        return self.b * (x + self.a) ** (self.b - 1.0)

    def _h(self, tags: np.ndarray) -> np.ndarray:
        """``(P grad)[tags]`` on the grid (``scale`` is a power of two: scaling is exact)."""
        gather, bounds = _gather(self.P.indptr, self.p_lengths, tags)
        if gather.size == 0:
            return np.zeros(tags.size)
        raw = np.add.reduceat(self.P.data[gather] * self.grad[self.P.indices[gather]], bounds)
        return np.round(raw / self.scale) * self.scale

    def gains(self, rows: np.ndarray) -> np.ndarray:
        """Current gains ``s_i * (sum of h over T_i) / |T_i|`` of ``rows`` (each must have tags).

        The sum is exact; the division, then the product, round once each, so rows whose
        gains are equal in exact arithmetic (same score) get the same float.
        """
        if rows.size == 0:
            return np.zeros(0)
        starts = self.offsets[rows]
        counts = self.offsets[rows + 1] - starts  # the same cache line as starts
        ends = np.cumsum(counts)
        bounds = ends - counts
        gather = np.repeat(starts - bounds, counts) + np.arange(int(ends[-1]), dtype=np.int64)
        sums = np.add.reduceat(self.h[self.gid[gather]], bounds)
        return self.scores[rows] * (sums / counts) if self.norm else self.scores[rows] * sums

    def _distinct(self, ids: np.ndarray) -> np.ndarray:
        """The distinct values of ``ids``, ascending (a mark per graph tag instead of a sort)."""
        self._seen[ids] = True
        out = np.flatnonzero(self._seen)
        self._seen[out] = False
        return out

    def info(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """``u_row`` as (graph ids, values): the row's weight times the sum of ``P``'s rows of its tags."""
        tags = self.gid[self.offsets[row]:self.offsets[row + 1]]
        weight = self.weight[row]
        if self.identity:
            return tags, np.full(tags.size, weight)
        gather, _ = _gather(self.P.indptr, self.p_lengths, tags)
        cols = self.P.indices[gather]
        np.add.at(self._sum, cols, self.P.data[gather])
        ids = self._distinct(cols)
        values = self._sum[ids] * weight
        self._sum[ids] = 0.0
        return ids, values

    def add(self, row: int) -> None:
        """Take ``row``: ``x += u_row``; ``phi'`` and ``h`` recomputed where they change."""
        ids, values = self.info(row)
        self.x[ids] += values
        self.grad[ids] = self._phi_grad(self.x[ids])
        if self.identity:
            self.h[ids] = np.round(self.grad[ids] / self.scale) * self.scale
            return
        gather, _ = _gather(self.P.indptr, self.p_lengths, ids)
        touched = self._distinct(self.P.indices[gather])  # P's pattern is symmetric: h changes next to ids
        self.h[touched] = self._h(touched)

    def objective(self) -> float:
        return float(np.sum((self.x + self.a) ** self.b))


def default_graph(ts: TagSets) -> LabelGraph:
    """The label graph of the tags the rows carry, built with the normalization step's embedder."""
    tags = ts.vocab[np.flatnonzero(ts.tag_counts())].tolist()
    logger.info("building the label graph of %d tags with the default embedder (pass label_graph= to reuse one)",
                len(tags))
    return LabelGraph.from_tags(tags)


#: fewest rows re-scored at once: a pick starts with half as many as the last pick needed (at least
#: this many), doubling while the pick is not yet sure
BATCH = 16
#: rows re-scored while in the first level are merged back into its ordered rows beyond this many
SIDE = 4096


def mig_greedy(ts: TagSets, rows: np.ndarray, rank: np.ndarray, n: int, limits: Limits | None,
               params: MigParams) -> list[int]:
    """The lazy greedy over the tagged ``rows``: up to ``n`` picks in order (see the module docstring).

    Queue order is largest bound first, then lowest rank. The best current gain (lowest
    rank among equals) is the pick once every row ahead of it in queue order has a
    current gain; until then the first stale rows are re-scored in batches. Rows whose
    gain falls below the first level go back to the queue.
    """
    if n == 0 or rows.size == 0:
        return []
    if params.label_graph is None:
        params.label_graph = default_graph(ts)
        params.extra["label_graph_built"] = "from the data's tags, default embedder"
    model = _Model(ts, params, params.label_graph)
    rows = np.asarray(rows, dtype=np.int64)
    rank = np.asarray(rank, dtype=np.int64)
    queue = BucketQueue(rows, model.gains(rows))
    cur, level = Level(rank), -1
    batch, used = BATCH, 0
    picks: list[int] = []
    while len(picks) < n:
        c = -1  # the best current gain, in side
        if cur.s_fresh.any():
            fresh = np.flatnonzero(cur.s_fresh)
            best = cur.s_bound[fresh].max()
            tied = fresh[cur.s_bound[fresh] == best]
            c = int(tied[np.argmin(cur.s_rank[tied])])
            best_rank = int(cur.s_rank[c])
        if not cur or (c >= 0 and queue.peek() >= best):  # the next level may hold a row ahead: take it in
            nxt = queue.pop()
            if nxt is not None:
                level = nxt[0]
                cur.main.add(nxt[1], nxt[2])
                continue
            if not cur:
                break
        stale = ~cur.s_fresh
        if c >= 0:
            limits_main = cur.main.ahead(best, best_rank)
            need = np.flatnonzero(stale & ((cur.s_bound > best) | ((cur.s_bound == best) & (cur.s_rank < best_rank))))
        else:
            limits_main = None
            need = np.flatnonzero(stale)
        if need.size == 0 and (limits_main is not None and not any(limits_main)):
            row = int(cur.s_rows[c])  # nothing ahead of the best is stale: pick it
            keep = np.ones(cur.s_rows.size, dtype=bool)
            keep[c] = False
            cur.keep_side(keep)
            if limits is not None:
                if not limits.ok(row):
                    continue  # a limit, once reached, stays reached
                limits.take(row)
            picks.append(row)
            model.add(row)
            cur.s_fresh[:] = False
            batch, used = max(BATCH, used // 2), 0  # the last pick's re-scoring predicts the next one's
            if cur.s_rows.size > SIDE:
                cur.side_to_main()
            continue
        # re-score the first stale rows: main's and side's first ones in queue order
        sel = first_in_order(need, cur.s_bound, cur.s_rank, batch)
        taken = cur.main.take(batch, limits_main)
        batch *= 2
        used += sel.size + taken.size
        both = np.concatenate([cur.s_rows[sel], taken])
        gains = model.gains(both)
        levels = queue.level(gains)
        stay = levels <= level
        cur.s_bound[sel], cur.s_fresh[sel] = gains[:sel.size], True
        new = taken[stay[sel.size:]]
        if new.size:
            cur.s_rows = np.concatenate([cur.s_rows, new])
            cur.s_bound = np.concatenate([cur.s_bound, gains[sel.size:][stay[sel.size:]]])
            cur.s_rank = np.concatenate([cur.s_rank, rank[new]])
            cur.s_fresh = np.concatenate([cur.s_fresh, np.ones(new.size, dtype=bool)])
        if not stay.all():
            queue.defer(both[~stay], gains[~stay], np.maximum(levels[~stay], level))
            gone = sel[~stay[:sel.size]]
            if gone.size:
                keep = np.ones(cur.s_rows.size, dtype=bool)
                keep[gone] = False
                cur.keep_side(keep)
    return picks


def mig_plain(ts: TagSets, rows: np.ndarray, rank: np.ndarray, n: int, params: MigParams) -> list[int]:
    """The plain greedy (every gain re-computed at every pick): the reference the lazy one is measured against."""
    graph = params.label_graph if params.label_graph is not None else default_graph(ts)
    model = _Model(ts, params, graph)
    left = np.asarray(rows, dtype=np.int64)
    picks: list[int] = []
    while len(picks) < n and left.size:
        gains = model.gains(left)
        best = np.flatnonzero(gains == gains.max())
        k = best[np.argmin(rank[left[best]])]
        row = int(left[k])
        picks.append(row)
        model.add(row)
        left = np.delete(left, k)
    return picks


def mig_objective(ts: TagSets, picks, params: MigParams) -> float:
    """``sum_t phi(x_t)`` of the rows ``picks`` (the quantity the greedy raises)."""
    graph = params.label_graph if params.label_graph is not None else default_graph(ts)
    model = _Model(ts, params, graph)
    for row in np.asarray(picks, dtype=np.int64).tolist():
        if ts.lengths[row]:
            ids, values = model.info(row)
            model.x[ids] += values
    return model.objective()
