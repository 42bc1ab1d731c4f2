"""Which predicted tags of one query match which reference (gold) tags.

The rule, applied per query:

1. Both tag lists are lightly normalized with :func:`normalize_tag` (Unicode
   case-fold, whitespace runs -> one space, trimmed) and de-duplicated.
2. Exact match: a predicted and a gold tag match when their normalized strings are
   equal.
3. Fuzzy match: exact pairs are matched first. The remaining predicted and gold tags
   are then paired one-to-one on the cosine similarity of their embeddings, a pair
   being eligible when its cosine is at or above ``threshold``.
   ``matching="hungarian"`` (default) takes the largest possible number of pairs,
   and among those the one with the highest total cosine (an assignment problem
   solved exactly); ``"greedy"`` walks the eligible pairs by descending cosine and
   keeps each whose tags are both still free (simple, may pair fewer tags).

One-to-one matching keeps precision and recall honest: a gold tag is credited to at
most one prediction and the other way round, so the number of matched predicted tags
equals the number of matched gold tags. Fuzzy matching never pairs fewer tags than
exact matching.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterable, Sequence

import numpy as np

MATCHINGS = ("hungarian", "greedy")
_SPACES = re.compile(r"\s+")


def normalize_tag(tag: str) -> str:
    """The light normalization shared by exact and fuzzy matching: NFKC, case-fold, single spaces."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", tag).casefold()).strip()


def tag_names(tags: Iterable[Any] | None) -> list[str]:
    """Normalized, de-duplicated tag strings (first occurrence order) from strings or ``{"tag": ...}`` items."""
    out: dict[str, None] = {}
    for item in tags or ():
        name = item.get("tag") if isinstance(item, dict) else item
        if isinstance(name, str):
            key = normalize_tag(name)
            if key:
                out.setdefault(key, None)
    return list(out)


def exact_pairs(predicted: Sequence[str], gold: Sequence[str]) -> list[tuple[int, int]]:
    """``(predicted index, gold index)`` of equal (already normalized) tags."""
    where = {g: j for j, g in enumerate(gold)}
    return [(i, where[p]) for i, p in enumerate(predicted) if p in where]


def fuzzy_pairs(predicted: Sequence[str], gold: Sequence[str], similarity: np.ndarray, threshold: float,
                matching: str = "hungarian") -> list[tuple[int, int, float]]:
    """One-to-one ``(predicted index, gold index, cosine)`` pairs by the rule of the module docstring.

    ``similarity`` is the ``len(predicted) x len(gold)`` cosine matrix.
    """
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.shape != (len(predicted), len(gold)):
        raise ValueError(f"similarity has shape {sim.shape}, expected {(len(predicted), len(gold))}")
    pairs = [(i, j, 1.0) for i, j in exact_pairs(predicted, gold)]
    free_p = np.ones(len(predicted), dtype=bool)
    free_g = np.ones(len(gold), dtype=bool)
    for i, j, _ in pairs:
        free_p[i] = free_g[j] = False
    rows, cols = np.flatnonzero(free_p), np.flatnonzero(free_g)
    if rows.size == 0 or cols.size == 0:
        return pairs
    sub = sim[np.ix_(rows, cols)]
    eligible = sub >= threshold
    if not eligible.any():
        return pairs
    if matching == "greedy" or _no_conflict(eligible):
        order = np.argsort(-sub, axis=None, kind="stable")
        for flat in order:
            a, b = divmod(int(flat), sub.shape[1])
            if not eligible[a, b]:
                break
            if free_p[rows[a]] and free_g[cols[b]]:
                free_p[rows[a]] = free_g[cols[b]] = False
                pairs.append((int(rows[a]), int(cols[b]), float(sub[a, b])))
        return pairs
    from scipy.optimize import linear_sum_assignment

    # Every eligible pair is worth more than any sum of cosines a matching can hold, so the
    # optimum has the most pairs first and the highest total cosine second.
    bonus = float(min(sub.shape) + 1)
    weight = np.where(eligible, bonus + sub, 0.0)
    ra, cb = linear_sum_assignment(weight, maximize=True)
    for a, b in zip(ra.tolist(), cb.tolist()):
        if eligible[a, b]:
            pairs.append((int(rows[a]), int(cols[b]), float(sub[a, b])))
    return pairs


def _no_conflict(eligible: np.ndarray) -> bool:
    """Every tag has at most one eligible partner: any matching algorithm gives the same pairs."""
    return bool((eligible.sum(axis=0) <= 1).all() and (eligible.sum(axis=1) <= 1).all())
