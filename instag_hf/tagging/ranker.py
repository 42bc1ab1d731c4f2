"""Which of the tags near a query to keep: a small logistic model fitted on the tagged bank itself.

The retrieval tagger's candidates for a query are the tags of its ``k`` nearest bank
queries. Plain voting keeps the tags those neighbours agree on, and so misses a tag
only one neighbour holds even when the query names it ("shortest path" on a Dijkstra
request). :class:`TagRanker` scores every candidate from a few signals instead:

- ``votes_top3``, ``votes``: the neighbours holding the tag among the 3 and the ``k``
  nearest, each weighing its similarity over the nearest one's;
- ``first_holder``: 1 / (rank of the nearest neighbour holding it);
- ``soft_votes``: as ``votes``, but a neighbour counts by its closest tag's cosine to
  the candidate, so "python coding" supports "python programming";
- ``tag_query_cos`` and ``tag_query_rank``: how close the tag's own embedding is to the
  query's (cosine, and 1 / rank among all bank tags);
- ``nearest_cos``: the nearest neighbour's similarity (how far from the bank we are);
- ``word_overlap``: the share of the tag's words the query contains (by a 5-letter stem);
- ``cue``: the mean positive PMI, over the bank, between the tag and the query's words,
  so a tag whose bank queries say "words" or "sentences" ("length constraint") needs
  the query to say so too, however close the neighbours' topics;
- ``code_agreement``: the share of the tag's bank queries that hold code, or that do
  not when the query holds none ("code completion" presupposes code to complete).

The weights come from the bank alone (leave-one-out: each bank query is tagged from
the rest of the bank and its own tags say which candidates were right, a candidate
counting as right when its cosine to one of them is at least 0.8; the ``cue`` counts
then leave that query out too), so the reference set we score on is never seen.
Fitting takes seconds; the weights depend only on the bank, ``k`` and the embedder.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

FEATURES = ("votes_top3", "votes", "first_holder", "soft_votes", "tag_query_cos", "nearest_cos", "word_overlap",
            "tag_query_rank", "cue", "code_agreement")
#: A candidate counts as right (training) and two tags as one (selection) at this cosine, the fuzzy F1's.
SAME_TAG = 0.8
_WORD = re.compile(r"[a-z0-9+#]+")


def stems(text: str) -> set[str]:
    """The words of ``text`` as the word signals see them: lowercase, cut to 5 letters, any number as ``#``."""
    return {"#" if w.isdigit() else w[:5] for w in _WORD.findall(text.lower())}


def fit_logistic(X: np.ndarray, y: np.ndarray, ridge: float = 1.0, iterations: int = 50) -> np.ndarray:
    """Weights (intercept last) of an L2-penalized logistic regression, by Newton steps.

    Deterministic and dependency-free; the intercept is not penalized.
    """
    Xb = np.hstack([X, np.ones((len(X), 1))])
    w = np.zeros(Xb.shape[1])
    penalty = np.full(Xb.shape[1], float(ridge))
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(Xb @ w, -30, 30)))
        grad = Xb.T @ (p - y) + penalty * w
        hess = (Xb * (p * (1 - p))[:, None]).T @ Xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


class TagRanker:
    """Scores the tags of a query's ``k`` nearest bank queries; :meth:`fit` on the bank, then :meth:`rank`.

    Parameters
    ----------
    queries:
        The bank queries' texts (for the ``cue`` signal, and the word overlap while fitting).
    tags_of:
        Each bank query's tags, in bank order.
    vectors:
        Unit embeddings of the bank queries (``n x d``).
    tag_vectors:
        Callable from tag strings to unit embeddings (the same encoder as ``vectors``).
    k:
        Neighbours whose tags are candidates.
    is_code:
        Whether a text holds source code (the retrieval backend passes its code detector).
    """

    def __init__(self, queries: Sequence[str], tags_of: Sequence[Sequence[str]], vectors: np.ndarray,
                 tag_vectors: Callable[[list[str]], np.ndarray], k: int = 20,
                 is_code: Callable[[str], bool] = lambda text: False):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if len(queries) != len(tags_of) or len(queries) != len(vectors):
            raise ValueError(f"{len(queries)} queries, {len(tags_of)} tag lists and {len(vectors)} vectors: they must match")
        self.k = k
        self.is_code = is_code
        self.queries = list(queries)
        self.vectors = vectors
        self.vocab = sorted({t for tags in tags_of for t in tags})
        index = {t: i for i, t in enumerate(self.vocab)}
        self.holds = [np.array(sorted({index[t] for t in tags}), dtype=np.int64) for tags in tags_of]
        self._held = [set(h.tolist()) for h in self.holds]
        self.tag_vecs = np.asarray(tag_vectors(self.vocab), dtype=np.float32) if self.vocab else np.zeros((0, 0))
        self.tag_stems = [stems(t) for t in self.vocab]
        self.query_stems = [stems(q) for q in self.queries]
        self.df: dict[str, int] = {}
        self.tag_df: list[dict[str, int]] = [{} for _ in self.vocab]
        self.tag_n = np.zeros(len(self.vocab))
        self.holds_code = np.array([bool(is_code(q)) for q in self.queries])
        self.code_share = np.zeros(len(self.vocab))
        for words, held, code in zip(self.query_stems, self.holds, self.holds_code):
            for w in words:
                self.df[w] = self.df.get(w, 0) + 1
            for t in held:
                self.tag_n[t] += 1
                self.code_share[t] += code
                counts = self.tag_df[t]
                for w in words:
                    counts[w] = counts.get(w, 0) + 1
        self.code_share /= np.maximum(self.tag_n, 1)
        self.weights: np.ndarray | None = None
        self.mean = self.scale = None

    def cue(self, t: int, words: set[str], leave_out: int | None = None) -> float:
        """Mean positive PMI between tag ``t`` and the query's words over the bank's queries
        (``leave_out``: a bank row whose own words and tags do not count)."""
        own = self.query_stems[leave_out] if leave_out is not None else set()
        held = leave_out is not None and t in self._held[leave_out]
        n = len(self.queries) - (leave_out is not None)
        n_t = self.tag_n[t] - held
        if n_t <= 0 or not words:
            return 0.0
        counts, total = self.tag_df[t], 0.0
        for w in words:
            df = self.df.get(w, 0) - (w in own)
            df_t = counts.get(w, 0) - (held and w in own)
            if df_t > 0:
                total += max(0.0, np.log((df_t / n_t) / ((df + 0.5) / n)))
        return total / len(words)

    def features(self, sims: np.ndarray, query_vec: np.ndarray, text: str,
                 leave_out: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(candidate tag ids, feature matrix, holders among the k nearest)`` for one query.

        ``sims``: the query's cosine to every bank query, ``-inf`` where it may not vote.
        """
        finite = np.flatnonzero(np.isfinite(sims))
        if finite.size == 0 or not self.vocab:
            return np.zeros(0, dtype=np.int64), np.zeros((0, len(FEATURES))), np.zeros(0, dtype=np.int64)
        k = min(self.k, finite.size)
        top = finite[np.argsort(-sims[finite], kind="stable")[:k]]
        best = float(sims[top[0]])
        weights = sims[top] / best if best > 0 else np.ones(k)
        ids = np.unique(np.concatenate([self.holds[n] for n in top]))
        if ids.size == 0:
            return ids, np.zeros((0, len(FEATURES))), np.zeros(0, dtype=np.int64)
        pos = {int(t): j for j, t in enumerate(ids)}
        cand_vecs = self.tag_vecs[ids]
        votes3, votes, first, soft, holders = (np.zeros(ids.size) for _ in range(5))
        for rank, (n, w) in enumerate(zip(top, weights)):
            held = self.holds[n]
            if held.size == 0:
                continue
            soft += w * (cand_vecs @ self.tag_vecs[held].T).max(axis=1)
            for t in held:
                j = pos[int(t)]
                votes[j] += w
                holders[j] += 1
                if rank < 3:
                    votes3[j] += w
                if first[j] == 0:
                    first[j] = 1.0 / (rank + 1)
        all_cos = self.tag_vecs @ query_vec
        cos = all_cos[ids]
        rank_of = 1.0 / (1.0 + (all_cos[None, :] > cos[:, None]).sum(axis=1))
        words = stems(text)
        overlap = np.array([len(self.tag_stems[t] & words) / max(1, len(self.tag_stems[t])) for t in ids])
        cue = np.array([self.cue(int(t), words, leave_out) for t in ids])
        agreement = self.code_share[ids] if self.is_code(text) else 1.0 - self.code_share[ids]
        X = np.column_stack([votes3, votes, first, soft, cos, np.full(ids.size, best), overlap, rank_of, cue, agreement])
        return ids, X, holders.astype(np.int64)

    def fit(self, code_rows: np.ndarray | None = None, chunk: int = 512) -> TagRanker:
        """Fit the weights leave-one-out on the bank (see the module docstring).

        ``code_rows``: the bank rows a query holding code (by ``is_code``) may vote with,
        so training sees the same gate as tagging.
        """
        n = len(self.holds)
        Xs, ys = [], []
        for start in range(0, n, chunk):
            block = self.vectors[start:start + chunk] @ self.vectors.T
            for offset, sims in enumerate(block):
                i = start + offset
                sims = sims.astype(np.float64)
                sims[i] = -np.inf
                if code_rows is not None and self.holds_code[i]:
                    sims = np.where(code_rows, sims, -np.inf)
                ids, X, _ = self.features(sims, self.vectors[i], self.queries[i], leave_out=i)
                if ids.size == 0 or self.holds[i].size == 0:
                    continue
                right = (self.tag_vecs[ids] @ self.tag_vecs[self.holds[i]].T).max(axis=1) >= SAME_TAG - 1e-6
                Xs.append(X)
                ys.append(right.astype(np.float64))
        if not Xs:
            raise ValueError("the bank is too small to fit a tag ranker: no query has neighbours with tags")
        X, y = np.vstack(Xs), np.concatenate(ys)
        self.mean, self.scale = X.mean(axis=0), X.std(axis=0) + 1e-9
        self.weights = fit_logistic((X - self.mean) / self.scale, y)
        return self

    def rank(self, sims: np.ndarray, query_vec: np.ndarray, text: str, threshold: float,
             max_tags: int, leave_out: int | None = None) -> list[tuple[str, float, int]]:
        """``(tag, probability, neighbours holding it)``, most likely first.

        Takes tags down the ranking while their probability reaches ``threshold`` (the
        first one always), skipping a tag within cosine 0.8 of one already taken, up to
        ``max_tags``. ``leave_out``: a bank row to tag as if the bank lacked it.
        """
        if self.weights is None:
            raise RuntimeError("TagRanker.rank before fit")
        if leave_out is not None:
            sims = np.array(sims, dtype=np.float64)
            sims[leave_out] = -np.inf
        ids, X, holders = self.features(sims, query_vec, text, leave_out)
        if ids.size == 0:
            return []
        z = ((X - self.mean) / self.scale) @ self.weights[:-1] + self.weights[-1]
        prob = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        taken: list[int] = []
        for j in np.argsort(-prob, kind="stable"):
            if len(taken) >= max_tags or (taken and prob[j] < threshold):
                break
            if taken and float((self.tag_vecs[ids[taken]] @ self.tag_vecs[ids[j]]).max()) >= SAME_TAG:
                continue
            taken.append(int(j))
        return [(self.vocab[ids[j]], float(prob[j]), int(holders[j])) for j in taken]
