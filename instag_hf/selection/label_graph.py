"""The label graph MIG propagates information over: tags as nodes, similar tags joined by weighted edges.

A :class:`LabelGraph` holds the tag strings and a symmetric similarity matrix in the
same order (1 on the diagonal, a weight in ``[0, 1]`` on each edge), stored sparse.
:meth:`LabelGraph.from_tags` builds it as MIG does: cosine similarity of the tags'
embeddings, kept where it is at least ``threshold``, found with the same FAISS range
search as semantic aggregation (never a dense n² matrix). It saves to one ``.npz``
file with no pickle inside.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..embeddings import Embedder, embed, embedding_cache_argument, make_embedder
from ..normalize.semantic import INDEXES, build_index, neighbor_graph

# scipy loads on first use (as FAISS does), so ``import instag_hf`` stays light

#: how far a given matrix may stray from symmetric / unit diagonal / [0, 1] (rounding of float32 cosines)
TOLERANCE = 1e-5
FORMAT = "instag_hf.LabelGraph/1"
_DEFAULT_EMBEDDER: Embedder | None = None


def default_embedder() -> Embedder:
    """The normalization step's default embedder (all-MiniLM-L6-v2), loaded once per process."""
    global _DEFAULT_EMBEDDER
    if _DEFAULT_EMBEDDER is None:
        _DEFAULT_EMBEDDER = make_embedder(None)
    return _DEFAULT_EMBEDDER


def _check_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, (str, bytes)):
        raise ValueError("tags must be a sequence of tag strings, not one string")
    tags = list(tags)
    bad = [t for t in tags if not isinstance(t, str) or not t]
    if bad:
        raise ValueError(f"tags must be non-empty strings; got {bad[:3]!r}")
    if len(set(tags)) != len(tags):
        seen: set[str] = set()
        dup = [t for t in tags if t in seen or seen.add(t)]
        raise ValueError(f"tags must be unique; repeated: {sorted(set(dup))[:5]!r}")
    return tags


def _as_similarity(similarity, size: int):
    """Validated canonical form: float64 CSR, exactly symmetric, exactly 1 on the diagonal, no stored zeros."""
    from scipy import sparse

    if sparse.issparse(similarity):
        matrix = sparse.csr_matrix(similarity, dtype=np.float64)
    else:
        array = np.asarray(similarity)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"similarity must be a numeric matrix (numpy or scipy sparse), got dtype {array.dtype}")
        if array.ndim != 2:
            raise ValueError(f"similarity must be a 2-D matrix, got {array.ndim} dimension(s)")
        matrix = sparse.csr_matrix(array.astype(np.float64))
    if matrix.shape != (size, size):
        raise ValueError(f"similarity must be {size} x {size} (one row and column per tag), got {matrix.shape}")
    matrix.sum_duplicates()
    data = matrix.data
    if not np.isfinite(data).all():
        raise ValueError("similarity holds NaN or infinite values")
    if data.size and (data.min() < -TOLERANCE or data.max() > 1 + TOLERANCE):
        raise ValueError(f"similarity values must lie in [0, 1], got [{data.min():.6g}, {data.max():.6g}]; "
                         "MIG needs non-negative weights (clip negative cosines to 0)")
    diagonal = matrix.diagonal()
    off = np.flatnonzero(np.abs(diagonal - 1) > TOLERANCE)
    if off.size:
        raise ValueError(f"similarity must be 1 on the diagonal (a tag is itself); {off.size} entries are not, "
                         f"e.g. row {int(off[0])}: {diagonal[off[0]]:.6g}")
    if size:
        gap = abs(matrix - matrix.T).max()
        if gap > TOLERANCE:
            raise ValueError(f"similarity must be symmetric; the largest |S[i, j] - S[j, i]| is {gap:.6g}")
    matrix = ((matrix + matrix.T) * 0.5).tocsr()
    matrix.data = np.clip(matrix.data, 0.0, 1.0)
    matrix.setdiag(1.0)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


class LabelGraph:
    """Tags and their symmetric similarity matrix (1 on the diagonal), kept sparse.

    Parameters
    ----------
    tags:
        Unique tag strings; node ``i`` is ``tags[i]``.
    similarity:
        ``len(tags)`` square, symmetric, 1 on the diagonal, values in ``[0, 1]``: a dense
        numpy array or any scipy sparse matrix (zeros: no edge).
    """

    def __init__(self, tags: Sequence[str], similarity):
        self._tags = _check_tags(tags)
        self._matrix = _as_similarity(similarity, len(self._tags))
        self._index = {t: i for i, t in enumerate(self._tags)}

    @property
    def tags(self) -> list[str]:
        return list(self._tags)

    @property
    def similarity(self):
        """The similarity matrix (CSR, float64); a copy, so the graph stays valid."""
        return self._matrix.copy()

    @property
    def n_edges(self) -> int:
        """Undirected edges between distinct tags."""
        return (self._matrix.nnz - len(self._tags)) // 2

    def __len__(self) -> int:
        return len(self._tags)

    def __contains__(self, tag) -> bool:
        return tag in self._index

    def __repr__(self) -> str:
        return f"LabelGraph(tags={len(self)}, edges={self.n_edges})"

    def indices(self, tags: Iterable[str]) -> np.ndarray:
        """Node ids of ``tags``; a clear error names a few tags the graph lacks."""
        tags = list(tags)
        ids = np.fromiter((self._index.get(t, -1) for t in tags), dtype=np.int64, count=len(tags))
        missing = [t for t, i in zip(tags, ids.tolist()) if i < 0]
        if missing:
            shown = ", ".join(repr(t) for t in missing[:5])
            raise ValueError(f"{len(missing)} data tag(s) are not in the label graph ({len(self)} tags), e.g. "
                             f"{shown}; build the graph from the data's tags (LabelGraph.from_tags) or from the same "
                             "normalized tags column")
        return ids

    def edges(self) -> list[tuple[str, str, float]]:
        """``(tag_a, tag_b, similarity)`` for every edge between distinct tags, each once (``a`` before ``b``)."""
        from scipy import sparse

        upper = sparse.triu(self._matrix, k=1).tocoo()
        order = np.lexsort((upper.col, upper.row))
        tags = self._tags
        return [(tags[i], tags[j], float(w))
                for i, j, w in zip(upper.row[order].tolist(), upper.col[order].tolist(), upper.data[order].tolist())]

    # ------------------------------------------------------------------ building

    @classmethod
    def from_tags(cls, tags: Iterable[str], embedder: str | Embedder | None = None, threshold: float = 0.9, *,
                  index: str = "auto", approximate_above: int = 50_000, nprobe: int = 16,
                  embedding_cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                  progress: bool = False, cache_dir: str | os.PathLike | None = None) -> LabelGraph:
        """Edges between tags whose embeddings have cosine similarity ``>= threshold``, weighted by it.

        ``embedder``: ``None`` (the normalization step's default, all-MiniLM-L6-v2, offline),
        a sentence-transformers model id or folder, or any callable ``list[str] -> array``.
        The pairs come from a FAISS range search over unit vectors (``index`` as in
        :class:`~instag_hf.normalize.SemanticAggregator`: exact up to ``approximate_above``
        tags, IVF beyond), so memory grows with the edges, not with the square of the tags.
        Repeated tags are kept once, in first-seen order.
        """
        from scipy import sparse

        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise ValueError(f"threshold is a cosine similarity in (0, 1], got {threshold!r} (MIG uses 0.9)")
        if index not in INDEXES:
            raise ValueError(f"index must be one of {INDEXES}, got {index!r}")
        if isinstance(tags, (str, bytes)):
            raise ValueError("tags must be a sequence of tag strings, not one string")
        tags = _check_tags(dict.fromkeys(tags))
        size = len(tags)
        if size < 2:
            return cls(tags, sparse.identity(size, format="csr"))
        emb = default_embedder() if embedder is None else make_embedder(embedder)
        cache = embedding_cache_argument(embedding_cache_dir, cache_dir, "LabelGraph.from_tags")
        vectors, _ = embed(tags, emb, cache, use_cache, progress=progress)
        kind = index if index != "auto" else ("flat" if size <= approximate_above else "ivf")
        faiss_index = build_index(vectors, kind, nprobe=nprobe)
        distances = neighbor_graph(vectors, 1.0 - float(threshold), faiss_index, progress=progress)
        del faiss_index, vectors
        sims = distances.copy()
        sims.data = 1.0 - distances.data
        sims.data[sims.data < threshold] = 0.0
        sims.eliminate_zeros()
        sims = sims.maximum(sims.T).tocsr()  # the search may round a pair differently each way
        sims.data = np.minimum(sims.data, 1.0)
        sims.setdiag(1.0)
        return cls(tags, sims)

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` file: the CSR arrays and the tags as JSON text (loads without pickle)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        m = self._matrix
        header = json.dumps({"format": FORMAT, "tags": self._tags}, ensure_ascii=False).encode("utf-8")
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez_compressed(f, header=np.frombuffer(header, dtype=np.uint8), indptr=m.indptr, indices=m.indices,
                                data=m.data)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelGraph:
        """Read a file written by :meth:`save`."""
        from scipy import sparse

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no label graph file at {path}")
        try:
            with np.load(path, allow_pickle=False) as f:
                header = json.loads(f["header"].tobytes().decode("utf-8"))
                indptr, indices, data = f["indptr"], f["indices"], f["data"]
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} is not a label graph file written by LabelGraph.save ({exc})") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{path} is not a label graph file (format {header.get('format')!r}, expected {FORMAT!r})")
        tags = header["tags"]
        size = len(tags)
        if len(indptr) != size + 1:
            raise ValueError(f"{path} is damaged: {size} tags but {len(indptr) - 1} matrix rows")
        return cls(tags, sparse.csr_matrix((data, indices, indptr), shape=(size, size)))
