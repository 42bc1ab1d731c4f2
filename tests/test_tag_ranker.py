"""The retrieval tagger's ranker: a logistic model over neighbour-tag signals, fitted leave-one-out on the bank."""

import hashlib

import numpy as np
import pytest

from instag_hf.tagging.ranker import FEATURES, TagRanker, fit_logistic, stems


def bow(texts):
    """Unit bag-of-words vectors hashed into 512 dimensions: deterministic, no model."""
    out = np.zeros((len(texts), 512), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 512] += 1.0
    out[:, 0] += 1e-3
    return out / np.linalg.norm(out, axis=1, keepdims=True)


TOPICS = {
    "sorting": ("sort order list ascending", ["sorting", "list handling"]),
    "translation": ("translate sentence french language", ["translation", "french"]),
    "poetry": ("poem rhyme verse stanza", ["poetry", "creative writing"]),
    "geography": ("capital country river mountain", ["geography", "factual question"]),
    "recipes": ("cook bake oven flour", ["cooking", "recipe"]),
}


def topic_bank(rows_per_topic=8):
    """Each row: its topic's words plus two words of its own; its topic's two tags plus one tag of its own."""
    queries, tags = [], []
    for t, (words, shared) in enumerate(TOPICS.values()):
        for r in range(rows_per_topic):
            queries.append(f"{words} w{t}x{r} v{t}y{r}")
            tags.append([*shared, f"quirk{t}q{r} zz{t}{r}"])
    return queries, tags


def test_logistic_fit_matches_scikit_learn():
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = (X @ np.array([1.5, -2.0, 0.0, 0.5]) + 0.3 + rng.normal(size=400) > 0).astype(float)
    ours = fit_logistic(X, y, ridge=2.0)
    theirs = linear_model.LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(X, y)
    assert np.allclose(ours[:-1], theirs.coef_[0], atol=1e-4)
    assert ours[-1] == pytest.approx(theirs.intercept_[0], abs=1e-4)


def test_fit_learns_that_agreeing_neighbours_beat_one_neighbours_quirk():
    queries, tags = topic_bank()
    ranker = TagRanker(queries, tags, bow(queries), bow, k=6).fit()
    weights = dict(zip(FEATURES, ranker.weights))
    assert weights["votes"] > 0  # shared tags were right in leave-one-out, quirks never were
    query = "please sort this list in ascending order"
    picked = ranker.rank(bow([query])[0] @ bow(queries).T, bow([query])[0], query, threshold=0.5, max_tags=5)
    assert [t for t, _, _ in picked] and {t for t, _, _ in picked} <= {"sorting", "list handling"}
    assert all(n >= 3 for _, _, n in picked)  # held by several of the 6 nearest
    everything = ranker.rank(bow([query])[0] @ bow(queries).T, bow([query])[0], query, threshold=1e-9, max_tags=50)
    probability = {t: p for t, p, _ in everything}
    assert min(probability["sorting"], probability["list handling"]) > max(
        p for t, p in probability.items() if t.startswith("quirk"))


def test_a_code_gate_in_training_sees_only_the_rows_it_allows():
    queries, tags = topic_bank(4)
    allowed = np.array([i < 4 for i in range(len(queries))])  # only the sorting rows
    ranker = TagRanker(queries, tags, bow(queries), bow, k=3, is_code=lambda text: True)
    ranker.fit(allowed)
    sims = bow(["capital country"])[0] @ bow(queries).T
    sims = np.where(allowed, sims, -np.inf)
    picked = {t for t, _, _ in ranker.rank(sims, bow(["capital country"])[0], "capital country", 0.01, 10)}
    assert picked and not picked & {"geography", "factual question"}


def hand_ranker():
    """A ranker scoring by the ``votes`` signal alone (weights set by hand), over a tiny bank."""
    queries = ["a b", "a c", "a d"]
    tags = [["python programming", "python programming!", "rare"], ["python programming"], ["other"]]
    vectors = np.eye(3, dtype=np.float32)

    def tag_vectors(names):
        # "python programming!" is a near-duplicate of "python programming" (cosine 0.9)
        base = {"python programming": [1, 0, 0, 0], "python programming!": [0.9, np.sqrt(1 - 0.81), 0, 0],
                "rare": [0, 0, 1, 0], "other": [0, 0, 0, 1]}
        return np.array([base[n] for n in names], dtype=np.float32)

    ranker = TagRanker(queries, tags, vectors, tag_vectors, k=3)
    ranker.mean, ranker.scale = np.zeros(len(FEATURES)), np.ones(len(FEATURES))
    ranker.weights = np.zeros(len(FEATURES) + 1)
    ranker.weights[FEATURES.index("votes")] = 4.0
    ranker.weights[-1] = -4.0  # probability 0.5 at one full vote
    return ranker


def test_rank_keeps_the_threshold_the_cap_and_one_of_each_near_duplicate():
    ranker = hand_ranker()
    sims, query = np.array([1.0, 0.9, 0.5]), np.array([0, 0, 0, 1], dtype=np.float32)
    picked = ranker.rank(sims, query, "q", threshold=0.3, max_tags=10)
    names = [t for t, _, _ in picked]
    assert names[0] == "python programming" and "python programming!" not in names
    assert names == ["python programming", "rare"]  # "other" (half a vote) is under 0.3
    assert picked[0][2] == 2 and picked[0][1] > picked[1][1]
    assert [t for t, _, _ in ranker.rank(sims, query, "q", threshold=0.3, max_tags=1)] == ["python programming"]
    # the first tag is kept whatever its probability
    assert [t for t, _, _ in ranker.rank(sims, query, "q", threshold=0.999, max_tags=10)] == ["python programming"]
    assert ranker.rank(np.full(3, -np.inf), query, "q", 0.3, 10) == []


def test_misuse_fails_clearly():
    queries, tags = topic_bank(2)
    with pytest.raises(ValueError, match="must match"):
        TagRanker(queries[:-1], tags, bow(queries), bow)
    with pytest.raises(ValueError, match="k must be"):
        TagRanker(queries, tags, bow(queries), bow, k=0)
    with pytest.raises(RuntimeError, match="before fit"):
        TagRanker(queries, tags, bow(queries), bow).rank(np.ones(len(queries)), bow(["x"])[0], "x", 0.5, 3)
    with pytest.raises(ValueError, match="too small"):
        TagRanker(["a", "b"], [[], []], bow(["a", "b"]), bow).fit()


def test_the_cue_needs_the_words_a_tag_s_bank_queries_share_and_leaves_a_row_out():
    queries = ["shorten this to 50 words", "in under 20 words please", "write a poem about cats",
               "write a poem about rain", "describe the sea in 3 sentences"]
    tags = [["length constraint"], ["length constraint"], ["poetry"], ["poetry"], ["length constraint", "description"]]
    ranker = TagRanker(queries, tags, bow(queries), bow)
    t = ranker.vocab.index("length constraint")
    assert stems("Write 50 Words") == {"write", "#", "words"}
    assert ranker.cue(t, stems("write 12 words about cats")) > 0
    assert ranker.cue(t, stems("write a poem about cats")) == 0
    assert ranker.cue(ranker.vocab.index("description"), stems("describe the sea"), leave_out=4) == 0  # only row 4 has it
    without = TagRanker(queries[1:], tags[1:], bow(queries[1:]), bow)  # leaving row 0 out = a bank without it
    for text in ("12 words", "write a poem in 3 sentences", "in under 20 words"):
        assert ranker.cue(t, stems(text), leave_out=0) == pytest.approx(
            without.cue(without.vocab.index("length constraint"), stems(text)))
    assert ranker.cue(t, stems("shorten to 9 words"), leave_out=0) != ranker.cue(t, stems("shorten to 9 words"))


def test_code_agreement_follows_whether_the_tag_s_bank_queries_hold_code():
    queries = ["def f(x):\n    pass", "def g(y):\n    pass", "explain recursion simply", "what is a loop"]
    tags = [["code completion", "python programming"], ["code completion"], ["explanation request"],
            ["explanation request", "python programming"]]
    ranker = TagRanker(queries, tags, bow(queries), bow, k=4, is_code=lambda text: text.startswith("def "))
    sims = np.array([0.9, 0.8, 0.7, 0.6])
    column = FEATURES.index("code_agreement")
    for text, expected in (("def h(z):", {"code completion": 1.0, "explanation request": 0.0, "python programming": 0.5}),
                           ("explain a loop", {"code completion": 0.0, "explanation request": 1.0, "python programming": 0.5})):
        ids, X, _ = ranker.features(sims, bow([text])[0], text)
        assert {ranker.vocab[t]: x for t, x in zip(ids, X[:, column])} == pytest.approx(expected)
