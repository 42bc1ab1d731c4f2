"""Step 4: association aggregation, merging a tag into the tag it (almost) never appears without.

FP-Growth (mlxtend) mines the frequent itemsets of the per-sample tag sets and
``association_rules`` keeps the rules at or above ``min_confidence``. A single-item
rule A -> B says nearly every sample tagged A is also tagged B, so A adds nothing B
does not already say and A is merged into B.

The merge, made precise:

1. Candidates are the rules A -> B with one antecedent and one consequent.
2. An edge A -> B is kept only when B ranks before A (held by more samples; ties:
   shorter, then alphabetical). If A -> B holds and B is held by fewer samples than A,
   then B -> A holds too, so two tags that always co-occur merge into the more
   frequent one, and the edges can never form a cycle.
3. Each tag keeps its best edge: highest confidence, then the best-ranked target.
4. Chains are followed to their end (A -> B -> C merges A and B into C), a fixed
   point reached in at most as many hops as there are tags.
5. A blank tag (no letter or digit, such as "") is in no edge: nothing merges into or out of it.

Only tags held by at least ``min_support`` samples can be in a rule, so the one-hot
table handed to mlxtend is sparse and restricted to those tags, and rows without any
of them are left out (support fractions are rescaled, so counts are unchanged).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .base import StepResult, check_count_or_fraction, is_blank, representative_order, to_count


class AssociationAggregator:
    """Merges tags joined by high-confidence association rules (FP-Growth).

    Parameters
    ----------
    min_support:
        The least number of samples an itemset must be held by: an ``int`` count (the
        paper: 40 of 306,044) or a ``float`` fraction of the tagged samples. A common
        mistake of other ports is reading 40 as the fraction 0.4, which finds nothing.
    min_confidence:
        The least confidence of a rule A -> B (samples with A and B / samples with A).
    max_len:
        The largest itemset mined. Only single-item rules are merged, so 2 is enough;
        larger values only add multi-item rules to the count in the report.
    """

    name = "association"
    title = "association aggregation"

    def __init__(self, min_support: int | float = 40, min_confidence: float = 0.99, max_len: int | None = 2):
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
        self.min_support, self.min_confidence, self.max_len = self.min_support, float(min_confidence), max_len

    def __repr__(self) -> str:
        return (f"AssociationAggregator(min_support={self.min_support!r}, "
                f"min_confidence={self.min_confidence}, max_len={self.max_len})")

    def rules(self, corpus) -> tuple[list[tuple[int, int, int, int]], dict]:
        """Single-item rules as ``(antecedent, consequent, samples with both, samples with antecedent)``."""
        import pandas as pd
        from mlxtend.frequent_patterns import association_rules, fpgrowth

        counts = corpus.counts
        min_count = to_count(self.min_support, corpus.n_usable)
        frequent = np.flatnonzero(counts >= min_count)
        stats = {"min_support": self.min_support, "min_count": min_count, "min_confidence": self.min_confidence,
                 "frequent_tags": len(frequent)}
        if len(frequent) < 2:
            return [], {**stats, "itemsets": len(frequent), "rules": 0, "single_item_rules": 0}
        sub = corpus.matrix[:, frequent].tocsr()
        sub = sub[np.diff(sub.indptr) > 0]
        n_rows = sub.shape[0]
        table = pd.DataFrame.sparse.from_spmatrix(sub.astype(bool), columns=range(len(frequent)))
        t0 = time.perf_counter()
        itemsets = fpgrowth(table, min_support=min_count / n_rows, use_colnames=True, max_len=self.max_len)
        del table
        stats["itemsets"] = len(itemsets)
        stats["fpgrowth_seconds"] = time.perf_counter() - t0
        if itemsets["itemsets"].map(len).max() < 2:
            return [], {**stats, "rules": 0, "single_item_rules": 0}
        found = association_rules(itemsets, num_itemsets=n_rows, metric="confidence",
                                  min_threshold=self.min_confidence - 1e-9,
                                  return_metrics=["antecedent support", "support", "confidence"])
        stats["rules"] = len(found)
        out = []
        for ante, cons, ab, a in zip(found["antecedents"], found["consequents"], found["support"],
                                     found["antecedent support"]):
            if len(ante) == 1 and len(cons) == 1:
                both, alone = round(ab * n_rows), round(a * n_rows)
                if both >= self.min_confidence * alone - 1e-9:
                    out.append((int(frequent[next(iter(ante))]), int(frequent[next(iter(cons))]), both, alone))
        stats["single_item_rules"] = len(out)
        return out, stats

    def fit(self, corpus, progress: bool = False) -> StepResult:
        vocab, counts = corpus.vocab, corpus.counts
        found, stats = self.rules(corpus)
        if not found:
            warnings.warn(f"association aggregation found no rule with support >= {stats['min_count']} samples "
                          f"and confidence >= {self.min_confidence}; no tag was merged", UserWarning, stacklevel=2)
        rank = representative_order(vocab, counts)
        best: dict[int, tuple[float, int, int]] = {}
        for a, b, both, alone in found:
            if rank[b] >= rank[a] or is_blank(vocab[a]) or is_blank(vocab[b]):
                continue
            candidate = (-both / alone, int(rank[b]), b)
            if a not in best or candidate < best[a]:
                best[a] = candidate
        parent = {a: b for a, (_, _, b) in best.items()}
        root = np.arange(len(vocab), dtype=np.int64)
        for a in sorted(parent, key=lambda j: rank[j]):  # targets rank first, so they are resolved first
            b = parent[a]
            root[a] = root[b]
        reps = np.unique(root)
        reps = reps[np.argsort(rank[reps], kind="stable")]
        new_id = np.full(len(vocab), -1, dtype=np.int64)
        new_id[reps] = np.arange(len(reps))
        stats["merged_tags"] = len(parent)
        stats["rule_examples"] = [
            {"antecedent": vocab[a], "consequent": vocab[b], "samples_with_both": both, "samples_with_antecedent": alone}
            for a, b, both, alone in sorted(found, key=lambda r: (-r[3], vocab[r[0]]))[:10]
        ]
        return StepResult(new_id[root], [vocab[j] for j in reps], stats)
