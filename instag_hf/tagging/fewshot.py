"""Few-shot examples chosen per query from a bank of tagged queries, by embedding similarity.

A small model copies the shape and often the words of its examples. Fixed examples
put their tags ("math word problem") on queries that have nothing to do with them;
examples close to the query make the copied words the right ones. The bank
(``data/fewshot_bank.jsonl``) holds our own queries with tags, none from the
reference set the tagger is scored on.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_BANK = "fewshot_bank.jsonl"


def bank_path(name: str = DEFAULT_BANK) -> Path:
    """Path of a bank packaged in ``instag_hf/data``."""
    return Path(str(resources.files("instag_hf") / "data" / name))


@dataclass(frozen=True)
class Example:
    query: str
    tags: tuple[str, ...]
    category: str = ""


class FewShotBank:
    """Tagged example queries and the ``k`` nearest to a query (cosine of sentence embeddings).

    ``embedder``: a callable from texts to vectors (default: the normalization step's
    MiniLM, packaged, no network). Bank embeddings are computed once, on first use.
    """

    def __init__(self, examples: Sequence[Example], embedder=None):
        if not examples:
            raise ValueError("a few-shot bank needs at least one example")
        self.examples = list(examples)
        self._embedder = embedder
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path | None = None, embedder=None) -> FewShotBank:
        """A bank from JSON lines with ``query`` and ``tags`` (default: the packaged bank)."""
        source = Path(path) if path is not None else bank_path()
        examples = []
        with open(source, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row.get("query"), str) or not isinstance(row.get("tags"), list):
                        raise ValueError(f"{source}:{n}: each line needs a 'query' string and a 'tags' list")
                    examples.append(Example(row["query"], tuple(row["tags"]), str(row.get("category") or "")))
        return cls(examples, embedder)

    def embedder(self):
        if self._embedder is None:
            from ..embeddings import SentenceTransformerEmbedder

            self._embedder = SentenceTransformerEmbedder(batch_size=64)
        return self._embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts`` (not cached)."""
        vectors = np.asarray(self.embedder()(list(texts)), dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def vectors(self) -> np.ndarray:
        """Unit vectors of the bank's queries; kept in the embedding cache when the embedder
        has a ``cache_id`` (the packaged MiniLM does), so only the first run pays for them."""
        with self._lock:
            if self._vectors is None:
                from ..embeddings import embed

                self._vectors, _ = embed([e.query for e in self.examples], self.embedder())
            return self._vectors

    def nearest(self, queries: Sequence[str], k: int) -> list[list[Example]]:
        """The ``k`` examples nearest to each query, least similar first (the closest sits next to the query)."""
        bank = self.vectors()
        scores = self.embed(queries) @ bank.T
        k = min(k, len(self.examples))
        out = []
        for row in scores:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([self.examples[i] for i in top[::-1]])
        return out


_BANKS: dict[str, FewShotBank] = {}
_BANKS_LOCK = threading.Lock()


def default_bank() -> FewShotBank:
    """The packaged bank, shared by every template that retrieves (loaded once per process)."""
    with _BANKS_LOCK:
        if DEFAULT_BANK not in _BANKS:
            _BANKS[DEFAULT_BANK] = FewShotBank.load()
        return _BANKS[DEFAULT_BANK]
