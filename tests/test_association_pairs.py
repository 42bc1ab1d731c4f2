"""Association aggregation from pair counts against mlxtend's FP-Growth itself, on random pools."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from instag_hf.analysis.tagsets import TagSets
from instag_hf.normalize import AssociationAggregator
from instag_hf.normalize.base import representative_order, to_count
from instag_hf.analysis.tagsets import pair_counts

SETTINGS = [(5, 0.99), (2, 0.6), (0.01, 0.9), (20, 0.5), (3, 1.0), (0.05, 0.75), (1, 0.3)]


def random_pool(seed: int, n_rows: int = 600, n_tags: int = 40) -> TagSets:
    """Zipf-popular tags plus implied partners (so that confident rules exist), some failed rows."""
    rng = np.random.default_rng(seed)
    names = [f"tag {i}" for i in range(n_tags)]
    weights = 1 / np.arange(1, n_tags + 1) ** 0.8
    weights /= weights.sum()
    partner = {int(a): int(rng.integers(0, 5)) for a in rng.choice(np.arange(8, n_tags), 8, replace=False)}
    rows, usable = [], []
    for _ in range(n_rows):
        k = int(rng.integers(0, 7))
        tags = set(rng.choice(n_tags, size=k, p=weights).tolist())
        for a in list(tags):
            if a in partner and rng.random() < 0.97:
                tags.add(partner[a])
        rows.append([names[t] for t in sorted(tags)])
        usable.append(bool(rng.random() > 0.03))
    return TagSets.from_lists(rows, usable=usable)


def mlxtend_rules(corpus: TagSets, min_support, min_confidence) -> set:
    """Single-item rules by mlxtend on the dense table of the usable rows, as (A, B, both, A's count)."""
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    usable = np.flatnonzero(corpus.usable)
    table = pd.DataFrame(corpus.matrix[usable].toarray().astype(bool))
    n = len(table)
    min_count = to_count(min_support, corpus.n_usable)
    # mlxtend counts ceil(fraction * rows): half a sample below the count is exactly min_count
    itemsets = fpgrowth(table, min_support=(min_count - 0.5) / n, max_len=2)
    if not len(itemsets) or itemsets["itemsets"].map(len).max() < 2:
        return set()
    found = association_rules(itemsets, num_itemsets=n, metric="confidence", min_threshold=min_confidence - 1e-9)
    out = set()
    for ante, cons, ab, a in zip(found["antecedents"], found["consequents"], found["support"],
                                 found["antecedent support"]):
        both, alone = round(ab * n), round(a * n)
        if both >= min_confidence * alone - 1e-9:
            out.add((next(iter(ante)), next(iter(cons)), both, alone))
    return out


def reference_merge(corpus: TagSets, rules: set) -> tuple[list, list, int]:
    """The merge rule of the module docstring, written plainly over a rule set."""
    vocab, counts = list(corpus.vocab), corpus.counts
    rank = representative_order(vocab, counts)
    best: dict[int, tuple] = {}
    for a, b, both, alone in rules:
        if rank[b] < rank[a]:
            cand = (-both / alone, int(rank[b]), b)
            best[a] = min(best.get(a, cand), cand)
    parent = {a: b for a, (_, _, b) in best.items()}

    def root(t):
        while t in parent:
            t = parent[t]
        return t

    roots = [root(t) for t in range(len(vocab))]
    reps = sorted(set(roots), key=lambda t: rank[t])
    return [reps.index(r) for r in roots], [vocab[r] for r in reps], len(parent)


@pytest.mark.filterwarnings("ignore:min_support=")
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("min_support,min_confidence", SETTINGS)
def test_rules_and_merges_equal_mlxtend(seed, min_support, min_confidence):
    corpus = random_pool(seed)
    step = AssociationAggregator(min_support=min_support, min_confidence=min_confidence)
    (ante, cons, both, alone), stats = step.rules(corpus)
    ours = set(zip(ante.tolist(), cons.tolist(), both.tolist(), alone.tolist()))
    expected = mlxtend_rules(corpus, min_support, min_confidence)
    assert ours == expected
    assert stats["rules"] == stats["single_item_rules"] == len(expected) and stats["method"] == "pairs"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = step.fit(corpus)
    target, vocab, merged = reference_merge(corpus, expected)
    assert result.target.tolist() == target and result.vocab == vocab and result.stats["merged_tags"] == merged


@pytest.mark.parametrize("min_support,min_confidence", SETTINGS[:4])
def test_fpgrowth_path_gives_the_same_merges(min_support, min_confidence):
    corpus = random_pool(7, n_rows=400, n_tags=25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = AssociationAggregator(min_support, min_confidence).fit(corpus)
        fp = AssociationAggregator(min_support, min_confidence, max_len=3).fit(corpus)
    assert pairs.target.tolist() == fp.target.tolist() and pairs.vocab == fp.vocab
    assert fp.stats["method"] == "fpgrowth" and fp.stats["rules"] >= fp.stats["single_item_rules"]
    assert fp.stats["single_item_rules"] == pairs.stats["single_item_rules"]


def test_support_count_is_exact_where_a_fraction_rounds_up():
    # 3 / 187 * 187 > 3 in floating point: a pair held by exactly 3 of 187 rows must still count
    rows = [["a", "b"]] * 3 + [["c"]] * 184
    corpus = TagSets.from_lists(rows)
    (ante, cons, both, _), _ = AssociationAggregator(min_support=3, min_confidence=0.99).rules(corpus)
    assert sorted(zip(ante.tolist(), cons.tolist(), both.tolist())) == [(0, 1, 3), (1, 0, 3)]


def test_pair_counts_equal_brute_force_for_any_chunk_size():
    corpus = random_pool(3, n_rows=300, n_tags=30)
    columns = np.flatnonzero(corpus.counts >= 4)
    keep = set(columns.tolist())
    brute: dict = {}
    for row in range(len(corpus)):
        ids = [int(i) for i in corpus.ids[corpus.offsets[row]:corpus.offsets[row + 1]] if int(i) in keep]
        for x, y in itertools.combinations(sorted(ids), 2):
            brute[(x, y)] = brute.get((x, y), 0) + 1
    for chunk in (1, 5, 64, 10_000):
        a, b, both = pair_counts(corpus.offsets, corpus.ids, columns, len(corpus.vocab), chunk_entries=chunk)
        got = {(int(columns[x]), int(columns[y])): int(n) for x, y, n in zip(a, b, both)}
        assert got == brute and (a < b).all()


def test_chunked_fit_equals_one_chunk_and_validation():
    corpus = random_pool(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = AssociationAggregator(3, 0.8, chunk_entries=11).fit(corpus)
        big = AssociationAggregator(3, 0.8).fit(corpus)
    assert small.target.tolist() == big.target.tolist() and small.vocab == big.vocab
    with pytest.raises(ValueError, match="chunk_entries"):
        AssociationAggregator(chunk_entries=0)
    with pytest.raises(ValueError, match="max_len"):
        AssociationAggregator(max_len=1)


def test_memory_grows_with_pairs_not_rows_times_tags():
    # 200,000 rows x 5,000 frequent tags as a dense table would be 1 GB; the pair count holds only the pairs
    import tracemalloc

    rng = np.random.default_rng(0)
    n, k = 200_000, 5_000
    tags = rng.integers(0, k, size=(n, 2))
    tags[:, 1] = (tags[:, 0] + 1) % k  # every row: two neighbouring tags, so k distinct pairs
    ids = np.sort(tags, axis=1).ravel().astype(np.int32)
    offsets = np.arange(0, 2 * n + 1, 2, dtype=np.int64)
    tracemalloc.start()
    a, b, both = pair_counts(offsets, ids, np.arange(k), k, chunk_entries=100_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(both) == k and both.sum() == n
    assert peak < 20 * 2**20


def test_top_pairs_of_the_analysis_equal_brute_force():
    from instag_hf.analysis.metrics import cooccurrence

    corpus = random_pool(5, n_rows=500, n_tags=30)
    brute: dict = {}
    for tags in corpus.to_lists():
        for x, y in itertools.combinations(sorted(tags), 2):
            brute[(x, y)] = brute.get((x, y), 0) + 1
    ranked = sorted(((x, y, c) for (x, y), c in brute.items()), key=lambda r: (-r[2], r[0], r[1]))
    for k in (1, 7, 10_000):
        assert cooccurrence(corpus, k) == ranked[:k]


def test_tag_sets_deduplicate_and_order_rows_after_remap():
    corpus = TagSets.from_lists([["b", "a", "b"], [], None, ["c", "a"]], usable=[True, True, False, True])
    assert [sorted(r) for r in corpus.to_lists()] == [["a", "b"], [], [], ["a", "c"]]
    assert corpus.ids.dtype == np.int32 and list(corpus.vocab) == ["b", "a", "c"]  # first-seen order
    merged = corpus.remap(np.array([0, 0, 1]), ["x", "y"])  # a and b become x, counted once per row
    assert merged.to_lists() == [["x"], [], [], ["x", "y"]] and merged.counts.tolist() == [2, 1]
