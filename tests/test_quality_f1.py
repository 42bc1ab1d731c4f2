"""Exact and fuzzy tag F1 on hand-computed cases, and dataset alignment."""

import math

import numpy as np
import pytest
from datasets import Dataset

from instag_hf.quality import evaluate_tags, fuzzy_pairs, normalize_tag, tag_f1

PRED = [["Web Development", "json", "Testing"], ["Cosplay"], ["Math"], ["JSON", "Cosplay"]]
GOLD = [["web  development", "JSON", "Error Handling", "CRUD"], ["Cosplay"], ["Algebra", "Word Problem"], ["json"]]


def test_light_normalization_folds_case_width_and_spaces():
    assert normalize_tag("  Web \t Development ") == "web development"
    assert normalize_tag("ＣＯＤＥ  Review") == "code review"
    assert normalize_tag("Straße") == normalize_tag("STRASSE")


def test_exact_scores_match_the_hand_computation():
    # Per query (TP, |pred|, |gold|): (2, 3, 4), (1, 1, 1), (0, 1, 2), (1, 2, 1).
    report = tag_f1(PRED, GOLD, threshold=None)
    ex = report.exact
    assert (ex.matched, ex.predicted, ex.gold) == (4, 7, 8)
    # micro: P = 4/7, R = 4/8, F1 = 2*4 / (7 + 8) = 8/15
    assert ex.micro.precision == pytest.approx(4 / 7)
    assert ex.micro.recall == pytest.approx(0.5)
    assert ex.micro.f1 == pytest.approx(8 / 15)
    # macro over queries: P = mean(2/3, 1, 0, 1/2) = 13/24; R = mean(1/2, 1, 0, 1) = 5/8;
    # F1 = mean(4/7, 1, 0, 2/3) = 47/84
    assert ex.macro_query.precision == pytest.approx(13 / 24)
    assert ex.macro_query.recall == pytest.approx(5 / 8)
    assert ex.macro_query.f1 == pytest.approx(47 / 84)
    # macro over tags: precision over the 5 predicted tags (1, 1, 0, 1/2, 0) = 1/2;
    # recall over the 7 gold tags (1, 1, 0, 0, 1, 0, 0) = 3/7; F1 = 2 * 1/2 * 3/7 / (1/2 + 3/7) = 6/13
    assert ex.macro_tag.precision == pytest.approx(0.5)
    assert ex.macro_tag.recall == pytest.approx(3 / 7)
    assert ex.macro_tag.f1 == pytest.approx(6 / 13)
    tags = {t.tag: t for t in ex.per_tag}
    assert (tags["json"].support, tags["json"].predicted, tags["json"].f1) == (2, 2, 1.0)
    cos = tags["cosplay"]
    assert (cos.support, cos.predicted, cos.matched_gold, cos.matched_predicted) == (1, 2, 1, 1)
    assert (cos.precision, cos.recall, cos.f1) == (0.5, 1.0, pytest.approx(2 / 3))
    assert ex.per_query_matched.tolist() == [2, 1, 0, 1]
    assert report.fuzzy is None and report.evaluated == 4


def test_greedy_and_hungarian_differ_where_greedy_pairs_fewer_tags():
    # cos(a,x)=.90, cos(a,y)=.85, cos(b,x)=.82, cos(b,y)=.50
    sim = np.array([[0.90, 0.85], [0.82, 0.50]])
    greedy = fuzzy_pairs(["a", "b"], ["x", "y"], sim, 0.8, "greedy")
    hungarian = fuzzy_pairs(["a", "b"], ["x", "y"], sim, 0.8, "hungarian")
    assert [(i, j) for i, j, _ in greedy] == [(0, 0)]
    assert sorted((i, j) for i, j, _ in hungarian) == [(0, 1), (1, 0)]


def test_hungarian_breaks_ties_in_pair_count_by_total_cosine():
    # both full matchings pair two tags: a-x + b-y = 1.71 beats a-y + b-x = 1.70
    sim = np.array([[0.90, 0.85], [0.85, 0.81]])
    pairs = fuzzy_pairs(["a", "b"], ["x", "y"], sim, 0.8)
    assert sorted((i, j) for i, j, _ in pairs) == [(0, 0), (1, 1)]


def test_exact_pairs_are_matched_before_any_cosine():
    # "programming" is closer to "python" (.95) than to "coding" (.85); the identical tags still pair
    sim = np.array([[1.0, 0.95], [0.70, 0.85]])
    pairs = fuzzy_pairs(["python", "coding"], ["python", "programming"], sim, 0.8)
    assert sorted((i, j) for i, j, _ in pairs) == [(0, 0), (1, 1)]
    assert fuzzy_pairs(["a"], ["b"], np.array([[0.79]]), 0.8) == []
    with pytest.raises(ValueError, match="matching"):
        fuzzy_pairs(["a"], ["b"], np.array([[0.9]]), 0.8, "best")


class VectorEmbedder:
    """Hand-set unit vectors, so every cosine is known."""

    cache_id = None
    vectors = {
        "code generation": (1.0, 0.0, 0.0),
        "code writing": (0.85, math.sqrt(1 - 0.85**2), 0.0),  # cos 0.85 to code generation
        "length constraint": (0.0, 0.0, 1.0),
        "word limit": (0.0, 0.8, 0.6),  # cos 0.6 to length constraint
    }

    def __call__(self, texts):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_fuzzy_match_counts_pairs_at_or_above_the_threshold():
    pred, gold = [["Code Writing", "Word Limit"]], [["Code Generation", "Length Constraint"]]
    strict = tag_f1(pred, gold, threshold=0.8, embedder=VectorEmbedder())
    assert strict.exact.matched == 0
    assert strict.fuzzy.matched == 1
    assert (strict.fuzzy.micro.precision, strict.fuzzy.micro.recall, strict.fuzzy.micro.f1) == (0.5, 0.5, 0.5)
    assert strict.fuzzy_pairs == [[("code writing", "code generation", 0.85)]]
    # the fuzzy synonym is credited to the predicted tag's precision and the gold tag's recall
    per_tag = {t.tag: t for t in strict.fuzzy.per_tag}
    assert per_tag["code writing"].precision == 1.0 and per_tag["code generation"].recall == 1.0
    assert strict.fuzzy.macro_tag.precision == 0.5 and strict.fuzzy.macro_tag.recall == 0.5
    loose = tag_f1(pred, gold, threshold=0.6, embedder=VectorEmbedder())  # 0.6 >= 0.6: "at or above"
    assert loose.fuzzy.micro.f1 == 1.0


def test_failed_rows_are_skipped_or_scored_empty_never_silently_dropped():
    pred, gold = [["a"], None, ["c"]], [["a"], ["b"], None]
    skip = tag_f1(pred, gold, threshold=None)
    assert skip.evaluated == 1 and skip.exact.micro.f1 == 1.0
    assert skip.skipped["prediction_failed"] == 1 and skip.skipped["reference_failed"] == 1
    empty = tag_f1(pred, gold, threshold=None, failed="empty")
    # rows 0 and 1 scored: TP 1, |pred| 1, |gold| 2 -> P 1, R 1/2, F1 2/3
    assert empty.evaluated == 2 and empty.skipped["prediction_failed_scored_empty"] == 1
    assert (empty.exact.micro.precision, empty.exact.micro.recall) == (1.0, 0.5)
    assert empty.exact.micro.f1 == pytest.approx(2 / 3)
    # macro over queries: row 1 predicted nothing against one gold tag: P 0, R 0
    assert empty.exact.macro_query.precision == 0.5 and empty.exact.macro_query.recall == 0.5


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="align"):
        tag_f1([["a"]], [["a"], ["b"]])
    with pytest.raises(ValueError, match="threshold"):
        tag_f1([["a"]], [["a"]], threshold=1.5)
    with pytest.raises(ValueError, match="failed"):
        tag_f1([["a"]], [["a"]], threshold=None, failed="zero")


def _items(tags):
    return [{"tag": t, "explanation": ""} for t in tags]


def test_two_datasets_joined_on_an_id_with_statuses():
    pred = Dataset.from_dict({
        "id": [3, 1, 2, 9],
        "instag_tags": [_items(["Cosplay"]), _items(["Web Development", "json", "Testing"]), _items([]),
                        _items(["Orphan"])],
        "instag_status": ["ok", "ok", "parse_error", "ok"],
    })
    gold = Dataset.from_dict({
        "id": [1, 2, 3],
        "instag_tags": [_items(["web development", "JSON", "Error Handling", "CRUD"]), _items(["Math"]),
                        _items(["Cosplay"])],
        "instag_status": ["ok", "ok", "ok"],
    })
    report = evaluate_tags(pred, gold, on="id", threshold=None)
    assert report.evaluated == 2  # id 1 and 3; id 2 failed on the predicted side, id 9 has no reference
    assert report.skipped["prediction_failed"] == 1 and report.skipped["no_reference"] == 1
    assert (report.exact.matched, report.exact.predicted, report.exact.gold) == (3, 4, 5)
    assert "| exact | micro | 75.0% | 60.0% |" in report.to_markdown()
    with pytest.raises(ValueError, match="rows"):
        evaluate_tags(pred, gold, threshold=None)
    dup = gold.add_item({"id": 1, "instag_tags": [], "instag_status": "ok"})
    with pytest.raises(ValueError, match="duplicate"):
        evaluate_tags(pred, dup, on="id", threshold=None)


def test_one_dataset_with_two_tag_columns():
    ds = Dataset.from_dict({"teacher": [["A", "B"], ["C"]], "student": [["a"], ["C", "D"]]})
    report = evaluate_tags(ds, predicted_column="student", gold_column="teacher", threshold=None)
    assert (report.exact.matched, report.exact.predicted, report.exact.gold) == (2, 3, 3)
    assert report.params["gold_column"] == "teacher"
    with pytest.raises(ValueError, match="gold_column"):
        evaluate_tags(ds, predicted_column="student", threshold=None)


def test_fuzzy_with_the_real_minilm_model(tmp_path):
    report = tag_f1([["Python Programming", "Cooking"]], [["Python", "Length Constraint"]], threshold=0.8,
                    embedding_cache_dir=str(tmp_path))
    assert report.exact.matched == 0
    assert [(p, g) for p, g, _ in report.fuzzy_pairs[0]] == [("python programming", "python")]
    assert report.params["embedder"].startswith("sentence-transformers:")
