"""Step 4: association aggregation, merging a tag into the tag it (almost) never appears without.

A single-item rule A -> B says nearly every sample tagged A is also tagged B, so A
adds nothing B does not already say and A is merged into B. Its support is the number
of samples holding both, its confidence that number over the samples holding A, so
the rules come from pair counts: the sparse product ``X.T @ X`` of the samples x tags
matrix, summed over row chunks (:func:`~instag_hf.analysis.tagsets.pair_counts`). That gives exactly the rules mlxtend's
FP-Growth finds at ``max_len=2`` with ``association_rules(metric="confidence")``, in
memory that grows with the co-occurring pairs, not with samples x tags.
``max_len > 2`` (or ``None``) still runs FP-Growth, only to count multi-item rules for
the report: it needs the samples x frequent-tags table in memory, so it is for small pools.

The merge, made precise:

1. Candidates are the rules A -> B with one antecedent and one consequent, held by
   at least ``min_support`` samples and with confidence at least ``min_confidence``.
2. An edge A -> B is kept only when B ranks before A (held by more samples; ties:
   shorter, then alphabetical). If A -> B holds and B is held by fewer samples than A,
   then B -> A holds too, so two tags that always co-occur merge into the more
   frequent one, and the edges can never form a cycle.
3. Each tag keeps its best edge: highest confidence, then the best-ranked target.
4. Chains are followed to their end (A -> B -> C merges A and B into C), a fixed
   point reached in at most as many hops as there are tags.
5. A blank tag (no letter or digit, such as "") is in no edge: nothing merges into or out of it.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .base import StepResult, check_count_or_fraction, is_blank, representative_order, to_count
from ..analysis.tagsets import CHUNK_ENTRIES, pair_counts

#: slack on the confidence test, so that a rule exactly at ``min_confidence`` is kept despite float rounding
TOLERANCE = 1e-9


class AssociationAggregator:
    """Merges tags joined by high-confidence single-item association rules.

    Parameters
    ----------
    min_support:
        The least number of samples a rule's two tags must share: an ``int`` count (the
        paper: 40 of 306,044) or a ``float`` fraction of the tagged samples. A common
        mistake of other ports is reading 40 as the fraction 0.4, which finds nothing.
    min_confidence:
        The least confidence of a rule A -> B (samples with A and B / samples with A).
    max_len:
        The largest itemset mined. Only single-item rules are merged, so 2 (pair counts,
        bounded memory) is enough; ``None`` or more than 2 runs mlxtend's FP-Growth on the
        whole samples x tags table, only to add multi-item rules to the report's count
        (the merges are the same), which does not scale past a few hundred thousand samples.
    chunk_entries:
        Tag entries per row chunk of the pair count (memory per chunk, not the result).
    """

    name = "association"
    title = "association aggregation"

    def __init__(self, min_support: int | float = 40, min_confidence: float = 0.99, max_len: int | None = 2,
                 chunk_entries: int = CHUNK_ENTRIES):
        self.min_support = check_count_or_fraction(min_support, "min_support")
        if isinstance(self.min_support, float) and self.min_support >= 0.01:
            warnings.warn(f"min_support={self.min_support} is a fraction of the samples "
                          f"({self.min_support:.0%}); the paper's setting is the count 40 (an int)",
                          UserWarning, stacklevel=2)
        if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) \
                or not 0 < min_confidence <= 1:
            raise ValueError(f"min_confidence must be in (0, 1], got {min_confidence!r}")
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2):
            raise ValueError(f"max_len must be None or an int >= 2, got {max_len!r}")
        if isinstance(chunk_entries, bool) or not isinstance(chunk_entries, int) or chunk_entries < 1:
            raise ValueError(f"chunk_entries must be an int >= 1, got {chunk_entries!r}")
        self.min_confidence, self.max_len, self.chunk_entries = float(min_confidence), max_len, chunk_entries

    def __repr__(self) -> str:
        return (f"AssociationAggregator(min_support={self.min_support!r}, "
                f"min_confidence={self.min_confidence}, max_len={self.max_len})")

    def rules(self, corpus) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], dict]:
        """Single-item rules as arrays ``(antecedent, consequent, samples with both, samples with antecedent)``."""
        counts = corpus.counts
        min_count = to_count(self.min_support, corpus.n_usable)
        frequent = np.flatnonzero(counts >= min_count)
        stats = {"min_support": self.min_support, "min_count": min_count, "min_confidence": self.min_confidence,
                 "frequent_tags": len(frequent), "method": "pairs" if self.max_len == 2 else "fpgrowth"}
        if len(frequent) < 2:
            return _no_rules(), {**stats, "itemsets": len(frequent), "rules": 0, "single_item_rules": 0}
        t0 = time.perf_counter()
        if self.max_len == 2:
            a, b, both = pair_counts(corpus.offsets, corpus.ids, frequent, len(corpus.vocab), self.chunk_entries)
            stats["cooccurring_pairs"] = len(both)
            keep = both >= min_count
            a, b, both = frequent[a[keep]], frequent[b[keep]], both[keep]
            stats["itemsets"] = len(frequent) + len(both)
            # each frequent pair gives up to two rules, A -> B and B -> A
            ante = np.concatenate([a, b])
            cons = np.concatenate([b, a])
            both = np.concatenate([both, both])
            found, n_rules = self._confident(ante, cons, both, counts), None
        else:
            found, n_rules, n_itemsets = self._fpgrowth(corpus, frequent, min_count)
            stats["itemsets"] = n_itemsets
        stats["seconds"] = time.perf_counter() - t0
        stats["single_item_rules"] = len(found[0])
        stats["rules"] = stats["single_item_rules"] if n_rules is None else n_rules
        return found, stats

    def _confident(self, ante, cons, both, counts):
        alone = counts[ante]
        ok = both >= self.min_confidence * alone - TOLERANCE
        return ante[ok].astype(np.int64), cons[ok].astype(np.int64), both[ok].astype(np.int64), alone[ok]

    def _fpgrowth(self, corpus, frequent: np.ndarray, min_count: int):
        """FP-Growth on the samples x frequent-tags table: (single-item rules, all rules, itemsets)."""
        import pandas as pd
        from mlxtend.frequent_patterns import association_rules, fpgrowth

        sub = corpus.matrix[:, frequent].tocsr()
        sub = sub[np.diff(sub.indptr) > 0]
        n_rows = sub.shape[0]
        table = pd.DataFrame.sparse.from_spmatrix(sub.astype(bool), columns=range(len(frequent)))
        # mlxtend turns the fraction back into ceil(fraction * rows); half a sample below the count
        # keeps that exactly min_count (min_count / rows * rows can round up past it)
        itemsets = fpgrowth(table, min_support=(min_count - 0.5) / n_rows, use_colnames=True, max_len=self.max_len)
        del table
        if not len(itemsets) or itemsets["itemsets"].map(len).max() < 2:
            return _no_rules(), 0, len(itemsets)
        found = association_rules(itemsets, num_itemsets=n_rows, metric="confidence",
                                  min_threshold=self.min_confidence - TOLERANCE,
                                  return_metrics=["antecedent support", "support", "confidence"])
        single = (found["antecedents"].map(len) == 1) & (found["consequents"].map(len) == 1)
        pairs = found[single]
        ante = frequent[[next(iter(s)) for s in pairs["antecedents"]]].astype(np.int64)
        cons = frequent[[next(iter(s)) for s in pairs["consequents"]]].astype(np.int64)
        both = np.rint(pairs["support"].to_numpy() * n_rows).astype(np.int64)
        return self._confident(ante, cons, both, corpus.counts), len(found), len(itemsets)

    def fit(self, corpus, progress: bool = False) -> StepResult:
        vocab, counts = corpus.vocab, corpus.counts
        (ante, cons, both, alone), stats = self.rules(corpus)
        if not len(ante):
            warnings.warn(f"association aggregation found no rule with support >= {stats['min_count']} samples "
                          f"and confidence >= {self.min_confidence}; no tag was merged", UserWarning, stacklevel=2)
        rank = representative_order(list(vocab), counts)
        blank = np.zeros(len(vocab), dtype=bool)
        involved = np.unique(np.concatenate([ante, cons]))
        blank[involved] = [is_blank(vocab[j]) for j in involved]
        edge = (rank[cons] < rank[ante]) & ~blank[ante] & ~blank[cons]
        a, b, conf = ante[edge], cons[edge], both[edge] / alone[edge]
        # each antecedent's best edge: highest confidence, then the best-ranked target
        order = np.lexsort((rank[b], -conf, a))
        first = np.ones(len(order), dtype=bool)
        first[1:] = a[order][1:] != a[order][:-1]
        a, b = a[order][first], b[order][first]
        root = np.arange(len(vocab), dtype=np.int64)
        for j in np.argsort(rank[a], kind="stable"):  # targets rank first, so they are resolved first
            root[a[j]] = root[b[j]]
        reps = np.unique(root)
        reps = reps[np.argsort(rank[reps], kind="stable")]
        new_id = np.full(len(vocab), -1, dtype=np.int64)
        new_id[reps] = np.arange(len(reps))
        stats["merged_tags"] = len(a)
        examples = sorted(range(len(ante)), key=lambda r: (-int(alone[r]), vocab[ante[r]], vocab[cons[r]]))[:10] \
            if len(ante) <= 100_000 else np.lexsort((cons, ante, -alone))[:10]
        stats["rule_examples"] = [
            {"antecedent": vocab[ante[r]], "consequent": vocab[cons[r]], "samples_with_both": int(both[r]),
             "samples_with_antecedent": int(alone[r])} for r in examples]
        return StepResult(new_id[root], [vocab[j] for j in reps], stats)


def _no_rules():
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, empty, empty
