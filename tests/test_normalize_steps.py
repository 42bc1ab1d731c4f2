"""Each normalization step on hand-made cases, and parameter validation."""

import warnings

import numpy as np
import pytest

from instag_hf.normalize import (AssociationAggregator, FrequencyFilter, RuleAggregator, SemanticAggregator,
                                 TagNormalizer)
from instag_hf.analysis.tagsets import TagSets
from instag_hf.normalize.rules import lemma
from instag_hf.normalize.semantic import build_index, dbscan_labels, neighbor_graph


def corpus(*samples):
    return TagSets.from_lists(samples)


def apply(step, c):
    result = step.fit(c)
    return {c.vocab[j]: (result.vocab[t] if t >= 0 else None) for j, t in enumerate(result.target)}, result


class TableEmbedder:
    """Fixed vectors for known texts: a cheap deterministic embedder for tests."""

    def __init__(self, table):
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}
        self.calls = 0

    def __call__(self, texts):
        self.calls += 1
        return np.stack([self.table[t] for t in texts])


def angle(degrees):
    r = np.deg2rad(degrees)
    return [np.cos(r), np.sin(r), 0.0]


# --- frequency -------------------------------------------------------------------------
def test_frequency_filter_counts_samples_not_occurrences():
    c = corpus(["a", "b", "a"], ["a"], ["b"], ["c"])
    mapped, result = apply(FrequencyFilter(alpha=2), c)
    assert mapped == {"a": "a", "b": "b", "c": None}
    assert result.stats["min_count"] == 2 and result.stats["dropped_tags"] == 1


def test_frequency_alpha_as_fraction_scales_with_corpus():
    samples = [["common"]] * 90 + [["rare"]] * 5 + [["mid"]] * 10 + [[]] * 95  # 200 samples
    mapped, result = apply(FrequencyFilter(alpha=0.05), corpus(*samples))
    assert result.stats["min_count"] == 10
    assert mapped == {"common": "common", "mid": "mid", "rare": None}


@pytest.mark.parametrize("alpha", [0, -3, 1.5, 1.0, True, "20", None])
def test_frequency_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        FrequencyFilter(alpha=alpha)


# --- rules -----------------------------------------------------------------------------
@pytest.mark.parametrize("raw, key", [
    ("Social Media", "social medium"),  # WordNet-like lemmas, as in the paper's figure
    ("Problem Solving", "problem solve"),
    ("Data-Analyses", "data analysis"),
    ("  data_analysis. ", "data analysis"),
    ("SQL Queries", "sql query"),
    ("APIs", "api"),
    ("C++ Programming", "c++ program"),
    ("C# programming", "c# program"),
    ("Math + Science", "math science"),
    ("ＳＱＬ", "sql"),
    ("Creative Writing", "creative writing"),
])
def test_rule_key(raw, key):
    assert RuleAggregator().key(raw) == key


def test_rule_switches():
    assert RuleAggregator(lemmatize=False).key("Data-Analyses") == "data analyses"
    assert RuleAggregator(keep_chars="").key("C++") == "c"
    assert RuleAggregator(lowercase=False, lemmatize=False).key("Data-Analysis") == "Data Analysis"
    assert RuleAggregator(strip_special=False, lemmatize=False).key("Data-Analysis") == "data-analysis"
    assert lemma("programming") == "program" and lemma("media") == "medium" and lemma("kubernetes") == "kubernetes"


def test_rule_groups_map_to_lemma_or_most_frequent_form():
    c = corpus(*([["Social Media"]] * 3 + [["social-media"]] * 2 + [["SOCIAL MEDIA"]] + [["Cooking"]]))
    mapped, result = apply(RuleAggregator(), c)
    assert set(mapped.values()) == {"social medium", "cook"}
    mapped, _ = apply(RuleAggregator(label="frequent"), c)
    assert mapped == {"Social Media": "social media", "social-media": "social media",
                      "SOCIAL MEDIA": "social media", "Cooking": "cooking"}
    assert result.stats["merged_groups"] == 1


def test_rule_rejects_bad_params():
    with pytest.raises(ValueError, match="label"):
        RuleAggregator(label="stem")
    with pytest.raises(ValueError, match="keep_chars"):
        RuleAggregator(keep_chars="a")


# --- semantic --------------------------------------------------------------------------
def test_semantic_merges_within_eps_into_most_frequent_member(tmp_path):
    # "b" and "a" are 10 degrees apart (similarity 0.985), "c" 60 degrees from both
    emb = TableEmbedder({"a": angle(0), "b": angle(10), "c": angle(70)})
    c = corpus(["a"], ["b"], ["b"], ["c"])
    mapped, result = apply(SemanticAggregator(eps=0.05, embedder=emb, embedding_cache_dir=tmp_path), c)
    assert mapped == {"a": "b", "b": "b", "c": "c"}
    assert result.stats["clusters"] == 1 and result.stats["noise_tags"] == 1
    mapped, _ = apply(SemanticAggregator(eps=0.01, embedder=emb, embedding_cache_dir=tmp_path), c)
    assert mapped == {"a": "a", "b": "b", "c": "c"}


def test_semantic_ties_break_by_length_then_alphabet():
    emb = TableEmbedder({"zz": angle(0), "yy": angle(1), "xxx": angle(2)})
    mapped, _ = apply(SemanticAggregator(eps=0.05, embedder=emb), corpus(["zz"], ["yy"], ["xxx"]))
    assert set(mapped.values()) == {"yy"}


def test_semantic_min_samples_counts_the_point_itself():
    # a chain a - b - c: a~b, b~c (13 degrees), a and c not (26 degrees: similarity 0.899)
    emb = TableEmbedder({"a": angle(0), "b": angle(13), "c": angle(26)})
    c = corpus(["a"], ["b"], ["c"], ["b"])
    for min_samples in (1, 2, 3):  # b is core with 3 points (a, b, c) within eps
        mapped, _ = apply(SemanticAggregator(eps=0.05, min_samples=min_samples, embedder=emb), c)
        assert set(mapped.values()) == {"b"}, min_samples
    mapped, _ = apply(SemanticAggregator(eps=0.05, min_samples=4, embedder=emb), c)
    assert mapped == {"a": "a", "b": "b", "c": "c"}


def test_semantic_graph_equals_dense_dbscan_and_ivf_finds_the_same():
    from sklearn.cluster import DBSCAN

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(60, 16))
    x = np.repeat(centers, 4, axis=0) + rng.normal(scale=0.05, size=(240, 16))
    x = np.vstack([x, rng.normal(size=(200, 16))]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dense = DBSCAN(eps=0.05, min_samples=2, metric="cosine").fit(x).labels_
    for kind in ("flat", "ivf"):
        index = build_index(x, kind, nprobe=1000)
        sparse_labels = dbscan_labels(neighbor_graph(x, 0.05, index), 0.05, 2)
        pairs = {(a, b) for a, b in zip(dense, sparse_labels)}
        assert len(pairs) == len(set(dense)) == len(set(sparse_labels)), kind  # same partition
    assert (dense >= 0).sum() > 100  # the case is not trivial


def test_semantic_caches_embeddings_per_embedder(tmp_path):
    emb = TableEmbedder({"a": angle(0), "b": angle(50)})
    emb.cache_id = "table-v1"
    step = SemanticAggregator(embedder=emb, embedding_cache_dir=tmp_path)
    first = step.fit(corpus(["a"], ["b"]))
    second = step.fit(corpus(["a"], ["b"]))
    assert emb.calls == 1
    assert first.stats["embedding_cache_hits"] == 0 and second.stats["embedding_cache_hits"] == 2
    assert list(tmp_path.glob("*.sqlite"))


@pytest.mark.parametrize("kw, match", [
    (dict(eps=0), "eps"), (dict(eps=3), "eps"), (dict(min_samples=0), "min_samples"),
    (dict(index="hnsw2"), "index"), (dict(embedder=42), "embedder"), (dict(nprobe=0), "nprobe"),
])
def test_semantic_rejects_bad_params(kw, match):
    with pytest.raises(ValueError, match=match):
        SemanticAggregator(**kw)


def test_semantic_warns_on_eps_read_as_similarity():
    with pytest.warns(UserWarning, match="cosine distance"):
        SemanticAggregator(eps=0.95, embedder=TableEmbedder({}))


# --- association -----------------------------------------------------------------------
def test_association_merges_antecedent_into_consequent():
    samples = [["python", "code"]] * 50 + [["code"]] * 30 + [["poem"]] * 60 + [["poem", "rhyme"]] * 10
    mapped, result = apply(AssociationAggregator(min_support=5, min_confidence=0.99), corpus(*samples))
    assert mapped["python"] == "code"  # every python sample is a code sample
    assert mapped["code"] == "code" and mapped["rhyme"] == "poem" and mapped["poem"] == "poem"
    assert result.stats["single_item_rules"] == 2 and result.stats["merged_tags"] == 2


def test_association_follows_chains_and_never_cycles():
    # x, y, z always together (rules in every direction) -> one tag; a -> b -> c chain
    samples = [["x", "y", "z"]] * 20 + [["x"]] * 0 + [["a", "b", "c"]] * 10 + [["b", "c"]] * 10 + [["c"]] * 10
    mapped, _ = apply(AssociationAggregator(min_support=5), corpus(*samples))
    assert mapped["x"] == mapped["y"] == mapped["z"] == "x"  # equal counts: shortest, then alphabetical
    assert mapped["a"] == mapped["b"] == mapped["c"] == "c"


def test_association_confidence_threshold_and_support_as_fraction():
    samples = [["a", "b"]] * 98 + [["a"]] * 2 + [["b"]] * 100
    with pytest.warns(UserWarning, match="no rule"):
        mapped, _ = apply(AssociationAggregator(min_support=10, min_confidence=0.99), corpus(*samples))
    assert mapped["a"] == "a"  # confidence 0.98
    mapped, _ = apply(AssociationAggregator(min_support=10, min_confidence=0.98), corpus(*samples))
    assert mapped["a"] == "b"
    as_fraction, _ = apply(AssociationAggregator(min_support=0.005, min_confidence=0.98), corpus(*samples))
    assert as_fraction == mapped
    with pytest.warns(UserWarning, match="no rule"):
        mapped, _ = apply(AssociationAggregator(min_support=99, min_confidence=0.98), corpus(*samples))
    assert mapped["a"] == "a"  # the pair is held by 98 < 99 samples


def test_association_warns_when_no_rule_is_found():
    with pytest.warns(UserWarning, match="no rule"):
        mapped, result = apply(AssociationAggregator(min_support=2), corpus(["a"], ["b"], ["a", "b"], ["c"]))
    assert mapped == {"a": "a", "b": "b", "c": "c"} and result.stats["rules"] == 0


def test_association_support_validation_and_paper_mistake_warning():
    with pytest.raises(ValueError, match="min_support"):
        AssociationAggregator(min_support=0)
    with pytest.raises(ValueError, match="min_confidence"):
        AssociationAggregator(min_confidence=1.5)
    with pytest.warns(UserWarning, match="count 40"):
        AssociationAggregator(min_support=0.4)


# --- the normalizer --------------------------------------------------------------------
def test_presets_and_overrides():
    paper = TagNormalizer(embedder=TableEmbedder({})).get_params()
    assert (paper["alpha"], paper["eps"], paper["min_support"], paper["min_confidence"]) == (20, 0.05, 40, 0.99)
    scaled = TagNormalizer(preset="scaled", embedder=TableEmbedder({})).get_params()
    assert abs(scaled["alpha"] * 306_044 - 20) < 1e-9 and scaled["min_support"] == 40
    assert TagNormalizer(alpha=3, embedder=TableEmbedder({})).get_params()["alpha"] == 3
    with pytest.raises(ValueError, match="preset"):
        TagNormalizer(preset="iclr")
    with pytest.raises(ValueError, match="unknown"):
        TagNormalizer(unknown="guess")


def test_steps_switch_off():
    samples = [["Data Analysis"]] * 3 + [["data analysis"]] * 2 + [["Rare"]]
    n = TagNormalizer(alpha=2, semantic=False, association=False, progress=False)
    m = n.fit(samples)
    assert m.as_mapping() == {"Data Analysis": "data analysis", "data analysis": "data analysis"}
    m = TagNormalizer(alpha=2, frequency=False, rules=False, semantic=False, association=False,
                      progress=False).fit(samples)
    assert m.as_mapping() == {t: t for t in ("Data Analysis", "data analysis", "Rare")}
    assert [s.enabled for s in m.report.stages] == [False] * 4


def test_fit_on_empty_input_gives_empty_mapping():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = TagNormalizer(progress=False, embedder=TableEmbedder({})).fit([[], []])
    assert len(m) == 0 and m.vocabulary == [] and m.report.samples == 2


def test_fit_rejects_what_is_not_tag_lists():
    with pytest.raises(ValueError, match="iterable of tag lists"):
        TagNormalizer(progress=False).fit("Data Analysis")
    with pytest.raises(ValueError, match="list of tags"):
        TagNormalizer(progress=False).fit(["Data Analysis", "Poetry"])


# --- issue 24: no empty canonical tag; a frequency filter that drops everything says so ----------
PUNCTUATION = ["...", "-", "…", "—", "?!"]
# each real tag always comes with a punctuation-only tag, and "" (their old common rule key) is the most frequent
EMPTY_BAIT = ([["Math Problem", "..."]] * 12 + [["Algebra", "-"]] * 12 + [["C++", "…"]] * 12
              + [["C#", "—"]] * 12 + [["?!"]] * 6)


def test_rules_drop_a_tag_with_nothing_left_and_count_it():
    c = corpus(*EMPTY_BAIT)
    mapped, result = apply(RuleAggregator(), c)
    assert all(mapped[p] is None for p in PUNCTUATION)
    assert "" not in result.vocab and all(t.strip() for t in result.vocab)
    assert {mapped[t] for t in ("Math Problem", "Algebra", "C++", "C#")} == {"math problem", "algebra", "c++", "c#"}
    assert result.stats["dropped_tags"] == 5 and result.stats["dropped_occurrences"] == 54


def test_tech_names_keep_their_symbols_and_stay_apart():
    names = ["C++", "C#", ".NET", "F#", "C", "NET"]
    r = RuleAggregator()
    keys = [r.key(n) for n in names]
    assert keys == ["c++", "c#", ".net", "f#", "c", "net"]
    mapped, result = apply(r, corpus(*[[n] for n in names]))
    assert len(set(mapped.values())) == 6 and None not in mapped.values()
    assert r.key("ASP.NET Core") == "asp net core" and r.key("(.NET)") == ".net" and r.key("e.g.") == "e g"
    assert RuleAggregator(keep_leading="").key(".NET") == "net"  # the paper's literal rule


def test_no_stage_merges_into_an_empty_tag():
    from datasets import Dataset

    emb = TableEmbedder({"math problem": angle(0), "algebra": angle(40), "c++": angle(80), "c#": angle(120)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = TagNormalizer(alpha=1, min_support=2, embedder=emb, progress=False).fit(EMPTY_BAIT)
    assert m.as_mapping() == {"Math Problem": "math problem", "Algebra": "algebra", "C++": "c++", "C#": "c#"}
    for p in PUNCTUATION:
        assert m[p] is None
    stages = dict(zip(m.columns["raw_tag"], m.columns["stage"]))
    assert all(stages[p] == "dropped" for p in PUNCTUATION)
    assert "" not in m.canonical_counts and "" not in m.vocabulary
    assert m.report["rules"].stats["dropped_tags"] == 5 and m.report.dropped_tags == 5
    assert ("...", None) in m.report["rules"].examples
    rows = [[{"tag": t, "explanation": ""} for t in row] for row in EMPTY_BAIT]
    out = m.map(Dataset.from_dict({"instag_tags": rows}))
    assert all("" not in row for row in out["instag_norm_tags"])
    assert out["instag_norm_tags"][0] == ["math problem"] and out["instag_norm_tags"][-1] == []


def test_association_and_semantic_never_merge_into_or_out_of_a_blank_tag():
    # "..." is on every row with "Math" and on more rows: a rule Math -> "..." holds with confidence 1
    c = corpus(*([["Math", "..."]] * 50 + [["..."]] * 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapped, result = apply(AssociationAggregator(min_support=5), c)
    assert mapped == {"Math": "Math", "...": "..."}
    emb = TableEmbedder({"Math": angle(0), "Mathematics": angle(1)})  # no vector for "...": it must not be embedded
    mapped, _ = apply(SemanticAggregator(eps=0.05, embedder=emb, use_cache=False),
                      corpus(["Math", "..."], ["Mathematics"], ["Mathematics"]))
    assert mapped == {"Math": "Mathematics", "Mathematics": "Mathematics", "...": "..."}


def test_an_old_mapping_with_an_empty_canonical_tag_never_yields_it():
    from instag_hf.normalize import TagMapping

    columns = {"raw_tag": ["Math", "...", "Algebra"], "count": [3, 2, 2], "rule_tag": ["math", "", "algebra"],
               "semantic_tag": ["math", "", "algebra"], "canonical_tag": ["math", "", ""],
               "stage": ["rules", "rules", "association"]}
    m = TagMapping(columns, canonical_counts={"math": 3, "": 4}, unknown="keep")
    assert m.apply(["Math", "...", "Algebra", "", "  "]) == ["math"]
    assert m["Algebra"] is None and m.vocabulary == ["math"]


def test_frequency_filter_that_drops_every_tag_warns_with_a_smaller_alpha(caplog):
    import logging

    samples = [[f"Tag {i % 200}", f"Other {i % 150}"] for i in range(400)]  # every tag on 2 or 3 of 400 samples
    logger = logging.getLogger("instag_hf")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="instag_hf"):
            m = TagNormalizer(preset="paper", semantic=False, progress=False).fit(samples)
    finally:
        logger.removeHandler(caplog.handler)
    assert m.report.final_tags == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned == m.report.warnings
    text = warned[0]
    assert "alpha=20" in text and "400" in text and "alpha=2 " in text
    assert "Warning:" in m.report.to_markdown() and text.split(":")[0] in m.report.to_markdown()
    assert m.report.dropped_tags == 350
    ok = TagNormalizer(alpha=2, semantic=False, association=False, progress=False).fit(samples)
    assert ok.report.warnings == [] and ok.report.final_tags > 0


def test_nearly_all_dropped_also_warns_and_the_suggestion_keeps_half():
    from instag_hf.normalize.frequency import suggest_alpha

    samples = [["Common"]] * 30 + [[f"Rare {i}"] for i in range(600)]  # 5% of occurrences survive alpha=20
    _, result = apply(FrequencyFilter(alpha=20), corpus(*samples))
    assert "warning" in result.stats and "alpha=20" in result.stats["warning"]
    _, fine = apply(FrequencyFilter(alpha=2), corpus(*([["A"]] * 5 + [["B"]] * 5 + [["c"]])))
    assert "warning" not in fine.stats
    counts = np.array([10, 6, 3, 1, 1, 1])  # 22 occurrences: threshold 6 keeps 16 (73%), 10 keeps 10 (45%)
    assert suggest_alpha(counts) == 6 and suggest_alpha(np.array([1, 1, 1])) == 1


def test_the_embedding_cache_has_its_own_name_and_the_old_one_warns(tmp_path):
    """``cache_dir`` is the request cache in the Tagger; the embedding cache is ``embedding_cache_dir``."""
    step = SemanticAggregator(embedding_cache_dir=tmp_path)
    assert step.embedding_cache_dir == tmp_path
    with pytest.warns(FutureWarning, match="embedding_cache_dir"):
        old = SemanticAggregator(cache_dir=tmp_path)
    assert old.embedding_cache_dir == tmp_path
    with pytest.raises(TypeError):
        SemanticAggregator(cache_dir=tmp_path, embedding_cache_dir=tmp_path)
