"""Step 1: frequency filtering, dropping tags seen in fewer than ``alpha`` samples."""

from __future__ import annotations

import numpy as np

from .base import StepResult, check_count_or_fraction, to_count
from ..analysis.tagsets import TagSets


class FrequencyFilter:
    """Drops raw tags held by fewer than ``alpha`` tagged samples (the paper: 20 of 306,044).

    Parameters
    ----------
    alpha:
        An ``int`` is a sample count; a ``float`` in (0, 1) is a fraction of the tagged
        samples, rounded up to a count, so one setting fits corpora of any size. Rare tags
        are mostly the teacher's noise (typos, one-off phrasings); the threshold is
        scale-dependent, which is why a fraction is offered.
    """

    name = "frequency"
    title = "frequency filtering"

    def __init__(self, alpha: int | float = 20):
        self.alpha = check_count_or_fraction(alpha, "alpha", allow_one=False)

    def __repr__(self) -> str:
        return f"FrequencyFilter(alpha={self.alpha!r})"

    def fit(self, corpus: TagSets, progress: bool = False) -> StepResult:
        counts = corpus.counts
        threshold = to_count(self.alpha, corpus.n_usable)
        kept = np.flatnonzero(counts >= threshold)
        kept = kept[np.lexsort((kept, -counts[kept]))]
        target = np.full(len(corpus.vocab), -1, dtype=np.int64)
        target[kept] = np.arange(len(kept))
        dropped = counts < threshold
        occurrences = int(counts.sum())
        stats = {
            "alpha": self.alpha,
            "min_count": threshold,
            "dropped_tags": int(dropped.sum()),
            "dropped_occurrences": int(counts[dropped].sum()),
            "dropped_occurrence_share": float(counts[dropped].sum() / occurrences) if occurrences else 0.0,
        }
        return StepResult(target, [corpus.vocab[j] for j in kept], stats)
