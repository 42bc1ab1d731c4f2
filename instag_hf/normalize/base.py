"""What every normalization step returns, and the count-or-fraction thresholds they share."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class StepResult:
    """Column ``j`` of the step's input becomes ``vocab[target[j]]`` (``target[j] == -1``: dropped)."""

    target: np.ndarray
    vocab: list[str]
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def identity(cls, vocab: list[str], **stats: Any) -> "StepResult":
        return cls(np.arange(len(vocab), dtype=np.int64), list(vocab), dict(stats))


def is_empty(tag: Any) -> bool:
    """True for a missing tag: not a string, or only whitespace. No step may output one."""
    return not isinstance(tag, str) or not tag.strip()


def is_blank(tag: Any) -> bool:
    """True for a tag that names nothing: empty, or without a letter or digit ("...", "?!").

    Nothing merges into or out of a blank tag, and the rules drop a tag they leave empty.
    """
    return is_empty(tag) or not any(ch.isalnum() for ch in tag)


def drop_empty(result: StepResult) -> tuple[StepResult, int]:
    """``result`` with every empty output tag (see :func:`is_empty`) dropped, and how many were."""
    blank = np.fromiter((is_empty(t) for t in result.vocab), dtype=bool, count=len(result.vocab))
    if not blank.any():
        return result, 0
    new_id = np.full(len(result.vocab), -1, dtype=np.int64)
    new_id[~blank] = np.arange(int((~blank).sum()))
    target = np.where(result.target >= 0, new_id[np.maximum(result.target, 0)], -1)
    vocab = [t for t, b in zip(result.vocab, blank) if not b]
    return StepResult(target, vocab, {**result.stats, "dropped_empty_tags": int(blank.sum())}), int(blank.sum())


def check_count_or_fraction(value: Any, name: str, allow_one: bool = True) -> int | float:
    """An ``int >= 1`` (a count) or a ``float`` in (0, 1) (a fraction of the tagged samples)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be an int count (>= 1) or a float fraction in (0, 1), got {value!r}")
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ValueError(f"{name} must be >= 1 as a count, got {value}")
        return int(value)
    value = float(value)
    upper_ok = value <= 1 if allow_one else value < 1
    if not (0 < value and upper_ok):
        hint = f"; pass int({value:g}) for a count" if value >= 1 and value.is_integer() else ""
        raise ValueError(f"{name} as a float is a fraction of the tagged samples in (0, 1), got {value}{hint}")
    return value


def to_count(value: int | float, n_samples: int) -> int:
    """The absolute threshold: counts stay, fractions become ``ceil(value * n_samples)`` (at least 1)."""
    if isinstance(value, int):
        return value
    return max(1, math.ceil(value * n_samples - 1e-9))


def representative_order(texts: list[str], counts: np.ndarray) -> np.ndarray:
    """Rank of every tag as a representative: most samples first, then shorter, then alphabetical."""
    order = sorted(range(len(texts)), key=lambda i: (-int(counts[i]), len(texts[i]), texts[i]))
    rank = np.empty(len(texts), dtype=np.int64)
    rank[order] = np.arange(len(texts))
    return rank


def groups_to_result(labels: np.ndarray, texts: list[str], counts: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Columns sharing a label merge into their best-ranked member (see :func:`representative_order`).

    Labels below zero are singletons. The new vocabulary is ordered by the representatives' rank.
    """
    n = len(texts)
    rank = representative_order(texts, counts)
    labels = np.asarray(labels, dtype=np.int64).copy()
    solo = labels < 0
    labels[solo] = labels.max(initial=-1) + 1 + np.arange(int(solo.sum()))
    best: dict[int, int] = {}
    for i in range(n):
        b = best.get(labels[i])
        if b is None or rank[i] < rank[b]:
            best[labels[i]] = i
    reps = sorted(best.values(), key=lambda i: rank[i])
    new_id = {rep: k for k, rep in enumerate(reps)}
    target = np.fromiter((new_id[best[labels[i]]] for i in range(n)), dtype=np.int64, count=n)
    return target, [texts[r] for r in reps]


def largest_groups(target: np.ndarray, old_vocab: list[str], new_vocab: list[str], counts: np.ndarray,
                   top: int = 10) -> list[tuple[str, list[str]]]:
    """The ``top`` new tags that absorbed the most old tags, with their members (most frequent first)."""
    members: dict[int, list[int]] = {}
    for j, t in enumerate(target):
        if t >= 0:
            members.setdefault(int(t), []).append(j)
    merged = [(t, m) for t, m in members.items() if len(m) > 1]
    merged.sort(key=lambda tm: (-len(tm[1]), -int(sum(counts[j] for j in tm[1])), new_vocab[tm[0]]))
    return [
        (new_vocab[t], [old_vocab[j] for j in sorted(m, key=lambda j: (-int(counts[j]), old_vocab[j]))])
        for t, m in merged[:top]
    ]
