"""Step 1: frequency filtering, dropping tags seen in fewer than ``alpha`` samples."""

from __future__ import annotations

import math

import numpy as np

from .base import StepResult, check_count_or_fraction, to_count
from ..analysis.tagsets import TagSets

#: the samples of the paper's tagged pool, the scale its absolute thresholds were set for
PAPER_SAMPLES = 306_044
#: a filter that drops at least this share of the tag occurrences is warned about
NEARLY_ALL = 0.9
#: the suggested alpha keeps at least this share of the tag occurrences
SUGGEST_KEEP = 0.5


def suggest_alpha(counts: np.ndarray, keep: float = SUGGEST_KEEP) -> int:
    """The largest count threshold that still keeps ``keep`` of the tag occurrences (at least 1)."""
    counts = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    total = int(counts.sum())
    if total == 0:
        return 1
    covered = np.cumsum(counts)
    # the fewest most-frequent tags holding ``keep`` of the occurrences; the last one's count is the threshold
    last = int(np.searchsorted(covered, keep * total - 1e-9))
    return max(1, int(counts[min(last, len(counts) - 1)]))


def _share_kept(counts: np.ndarray, threshold: int) -> float:
    total = int(counts.sum())
    return float(counts[counts >= threshold].sum() / total) if total else 0.0


class FrequencyFilter:
    """Drops raw tags held by fewer than ``alpha`` tagged samples (the paper: 20 of 306,044).

    Parameters
    ----------
    alpha:
        An ``int`` is a sample count; a ``float`` in (0, 1) is a fraction of the tagged
        samples, rounded up to a count, so one setting fits corpora of any size. Rare tags
        are mostly the teacher's noise (typos, one-off phrasings); the threshold is
        scale-dependent, which is why a fraction is offered.

    A filter that drops all or nearly all (:data:`NEARLY_ALL`) tag occurrences leaves
    ``stats["warning"]``, naming alpha and a smaller one for this pool (the normalizer
    logs it and puts it in its report).
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
        share = float(counts[dropped].sum() / occurrences) if occurrences else 0.0
        stats = {
            "alpha": self.alpha,
            "min_count": threshold,
            "dropped_tags": int(dropped.sum()),
            "dropped_occurrences": int(counts[dropped].sum()),
            "dropped_occurrence_share": share,
        }
        if occurrences and share >= NEARLY_ALL:
            stats["warning"] = self._warning(counts, threshold, corpus.n_usable, len(kept), share)
        return StepResult(target, [corpus.vocab[j] for j in kept], stats)

    def _warning(self, counts: np.ndarray, threshold: int, samples: int, kept: int, share: float) -> str:
        """Why nearly everything was dropped, and a smaller alpha for a pool of ``samples``."""
        what = "every tag" if kept == 0 else f"{len(counts) - kept:,} of {len(counts):,} tags"
        suggested = suggest_alpha(counts)
        kept_share = _share_kept(counts, suggested)
        scaled = max(1, math.ceil(20 / PAPER_SAMPLES * samples - 1e-9))
        return (f"frequency filtering dropped {what} ({share:.0%} of tag occurrences): alpha={self.alpha!r} keeps "
                f"only tags held by at least {threshold:,} of the {samples:,} tagged samples (the paper's alpha=20 "
                f"was set for {PAPER_SAMPLES:,} samples). For a pool of {samples:,} samples use a smaller alpha: "
                f"alpha={suggested} (--alpha {suggested}) keeps {kept_share:.0%} of tag occurrences; the 'scaled' "
                f"preset (alpha as the paper's fraction) gives alpha={scaled} here")
