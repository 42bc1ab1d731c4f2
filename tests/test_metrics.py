import math

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset, Features, List, Value

import instag_hf
from instag_hf import schema
from instag_hf.analysis.metrics import (analyze, complexity, cooccurrence, cooccurrence_matrix, coverage, dataset_metrics,
                               diversity, recall_matrix, summarize, summarize_dataset, tag_count_histogram,
                               tag_recall, top_tags)
from instag_hf.analysis.tagsets import TagSets
from instag_hf.testing import KeywordBackend

RAW = Features({schema.TAGS: List(schema.TAG_ITEM), schema.STATUS: Value("string"), "source": Value("string")})


def _items(*tags):
    return [{"tag": t, "explanation": f"about {t}"} for t in tags]


@pytest.fixture
def raw():
    """Six rows; by hand: usable rows 0, 1, 2, 4; tags {A,B}, {B,C}, {}, {A}."""
    return Dataset.from_dict({
        schema.TAGS: [_items("A", "B"), _items("B", "C", "B"), [], _items("D"), _items("A"), None],
        schema.STATUS: ["ok", "ok", "ok", "parse_error", "truncated", "backend_error"],
        "source": ["x", "x", "y", "y", "y", "x"],
    }, features=RAW)


def test_raw_tags_count_only_usable_rows(raw):
    assert diversity(raw) == 3  # D sits on a parse_error row
    assert complexity(raw) == pytest.approx((2 + 2 + 0 + 1) / 4)
    assert top_tags(raw) == [("A", 2), ("B", 2), ("C", 1)]
    assert tag_count_histogram(raw) == {0: 1, 1: 1, 2: 2}
    assert cooccurrence(raw) == [("A", "B", 1), ("B", "C", 1)]


def test_dataset_metrics_by_hand(raw):
    m = dataset_metrics(raw, "raw", pool={"A", "B", "C", "D", "E"})
    assert (m.rows, m.tagged_rows, m.diversity) == (6, 4, 3)
    assert m.complexity == pytest.approx(1.25)
    assert m.coverage == pytest.approx(3 / 5)
    assert m.tag_count_histogram == {0: 1, 1: 1, 2: 2}
    assert m.top_tags == [("A", 2), ("B", 2), ("C", 1)]
    assert m.tag_counts == {"A": 2, "B": 2, "C": 1}
    assert m.top_pairs == [("A", "B", 1), ("B", "C", 1)]
    assert "tag_counts" not in m.as_dict() and m.as_dict(include_tag_counts=True)["tag_counts"]["A"] == 2


def test_normalized_tags_without_status_count_every_row():
    ds = Dataset.from_dict({schema.NORM_TAGS: [["code", "math"], [], ["code"], ["code", "code"]]})
    assert diversity(ds) == 2
    assert complexity(ds) == pytest.approx((2 + 0 + 1 + 1) / 4)
    assert top_tags(ds, 1) == [("code", 3)]


def test_normalized_tags_are_preferred_and_column_can_be_chosen():
    ds = Dataset.from_dict({schema.TAGS: [_items("Raw Tag")], schema.NORM_TAGS: [["raw tag", "other"]],
                            schema.STATUS: ["ok"]}, features=Features({
                                schema.TAGS: List(schema.TAG_ITEM), schema.NORM_TAGS: List(Value("string")),
                                schema.STATUS: Value("string")}))
    assert top_tags(ds) == [("other", 1), ("raw tag", 1)]
    assert top_tags(ds, tags_column=schema.TAGS) == [("Raw Tag", 1)]


def test_recall_and_coverage_by_hand():
    a, b = {"x", "y", "z", "w"}, {"x", "y"}
    assert tag_recall(a, b) == pytest.approx(0.5)  # half of a's tags are in b
    assert tag_recall(b, a) == pytest.approx(1.0)
    assert coverage(b, a) == pytest.approx(0.5)
    assert math.isnan(tag_recall(set(), a))
    m = recall_matrix({"a": a, "b": b, "c": {"q"}})
    np.testing.assert_allclose(m, [[1, 0.5, 0], [1, 1, 0], [0, 0, 1]])


def test_recall_between_datasets_reads_their_tags(raw):
    other = Dataset.from_dict({schema.NORM_TAGS: [["A"], ["Z"]]})
    assert tag_recall(raw, other) == pytest.approx(1 / 3)
    assert tag_recall(other, raw) == pytest.approx(1 / 2)


def test_cooccurrence_matrix_by_hand():
    ts = TagSets.from_lists([["a", "b", "c"], ["a", "b"], ["b"], ["c", "d"]])
    m = cooccurrence_matrix(ts, ["a", "b", "c", "zzz"])
    np.testing.assert_array_equal(m, [[2, 2, 1, 0], [2, 3, 1, 0], [1, 1, 2, 0], [0, 0, 0, 0]])
    assert cooccurrence(ts, 2) == [("a", "b", 2), ("a", "c", 1)]


def test_one_dataset_is_its_own_combined_figures():
    ds = Dataset.from_dict({schema.NORM_TAGS: [["x", "y"], ["y", "z"], ["y"]]})
    result = analyze(ds, names=["mine"])
    (only,) = result.datasets
    assert result.combined.name == "all" and only.name == "mine"
    assert {**result.combined.as_dict(True), "name": "mine"} == only.as_dict(True)


def test_analyze_several_datasets():
    a = Dataset.from_dict({schema.NORM_TAGS: [["x", "y"], ["y", "z"]]})
    b = Dataset.from_dict({schema.NORM_TAGS: [["x"], ["x"], ["q"]]})
    result = analyze({"a": a, "b": b})
    assert result.names == ["a", "b"]
    assert [m.diversity for m in result.datasets] == [3, 2]
    assert [m.complexity for m in result.datasets] == [pytest.approx(2.0), pytest.approx(1.0)]
    assert [m.coverage for m in result.datasets] == [pytest.approx(3 / 4), pytest.approx(2 / 4)]
    np.testing.assert_allclose(result.recall, [[1, 1 / 3], [1 / 2, 1]])
    assert (result.combined.rows, result.combined.diversity) == (5, 4)
    assert result.combined.top_tags[0] == ("x", 3)
    assert result.as_dict()["recall"]["names"] == ["a", "b"]


def test_analyze_by_source(raw):
    result = analyze(raw, source_column="source")
    assert result.names == ["x", "y"]
    x, y = result.datasets
    assert (x.rows, x.tagged_rows, x.diversity) == (3, 2, 3)
    assert (y.rows, y.tagged_rows, y.diversity) == (3, 2, 1)
    assert y.complexity == pytest.approx(0.5)
    np.testing.assert_allclose(result.recall, [[1, 1 / 3], [1, 1]])
    assert result.tags_column == schema.TAGS and result.source_column == "source"
    several = analyze([raw, raw], names=["one", "two"], source_column="source")
    assert several.names == ["one/x", "one/y", "two/x", "two/y"]


def test_analyze_rejects_bad_input(raw):
    with pytest.raises(ValueError, match="instag_norm_tags"):
        analyze(Dataset.from_dict({"text": ["hi"]}))
    with pytest.raises(ValueError, match="not found"):
        analyze(raw, source_column="nope")
    with pytest.raises(ValueError, match="unique"):
        analyze([raw, raw], names=["a", "a"])


def test_summarize_dataset_matches_the_row_loop(raw):
    fast = summarize_dataset(raw)
    slow = summarize(raw[schema.TAGS], raw[schema.STATUS])
    assert (fast.rows, fast.tagged_rows, fast.diversity, fast.statuses) == (
        slow.rows, slow.tagged_rows, slow.diversity, slow.statuses)
    assert fast.complexity == pytest.approx(slow.complexity)
    assert sorted(fast.top_tags) == sorted(slow.top_tags)


def test_tagsets_layout_and_cleanup():
    ts = TagSets.from_lists([["b", "a", "b"], None, [{"tag": "c"}, ""], ["a"]], usable=[True, True, True, False])
    assert ts.to_lists() == [sorted(["a", "b"], key=list(ts.vocab).index), [], ["c"], []]
    assert ts.lengths.tolist() == [2, 0, 1, 0]
    assert ts.usable.tolist() == [True, True, True, False]
    assert ts.take([2, 0]).to_lists()[0] == ["c"]
    both = TagSets.concat([ts, TagSets.from_lists([["z", "a"]])])
    assert len(both) == 5 and both.tag_set() == {"a", "b", "c", "z"}
    assert sorted(both.to_lists()[4]) == ["a", "z"]


def test_tagsets_from_chunked_and_sliced_arrow():
    column = pa.chunked_array([pa.array([["a"], ["b", "c"]]), pa.array([None, ["c"]])])
    ts = TagSets.from_arrow(column, pa.chunked_array([pa.array(["ok", "ok", "ok", None])]))
    assert [sorted(r) for r in ts.to_lists()] == [["a"], ["b", "c"], [], []]
    ds = Dataset.from_dict({schema.NORM_TAGS: [["a"], ["b"], ["c"], ["d"]]}).select([3, 1])
    assert TagSets.from_dataset(ds).to_lists() == [["d"], ["b"]]


def test_tagsets_reject_wrong_types():
    with pytest.raises(ValueError, match="lists of tags"):
        TagSets.from_arrow(pa.array(["a", "b"]))
    with pytest.raises(ValueError, match="'tag' field"):
        TagSets.from_arrow(pa.array([[{"name": "a"}]]))
    with pytest.raises(ValueError, match="not found"):
        TagSets.from_dataset(Dataset.from_dict({schema.NORM_TAGS: [["a"]]}), tags_column="tags")


def test_metrics_of_a_keyword_tagged_sample(tmp_path):
    ds = instag_hf.load_sample("alpaca").select(range(20))
    tagger = instag_hf.Tagger(backend=KeywordBackend(), cache_dir=str(tmp_path), progress=False)
    tagged = tagger.map(ds)
    rows = [set(t["tag"] for t in r) for r, s in zip(tagged[schema.TAGS], tagged[schema.STATUS])
            if s in schema.TAGGED_STATUSES]
    m = dataset_metrics(tagged)
    assert m.diversity == len(set().union(*rows))
    assert m.complexity == pytest.approx(sum(map(len, rows)) / len(rows))


def test_subsets_are_compared_with_their_pool_never_added_to_it(tmp_path):
    """A selected subset drawn from a pool: the combined figures are the pool's ("math problem": 28, not 28 + 12)."""
    from instag_hf.reporting.plots import analysis_plots

    rows = [["math problem", "algebra"]] * 28 + [["poetry"]] * 30 + [["python"]] * 10
    pool = Dataset.from_dict({schema.NORM_TAGS: rows})
    subset = pool.select(range(0, 68, 2))
    analysis = analyze({"default": pool, "selected": subset}, pool=pool)
    counts = dict(analysis.combined.top_tags)
    assert counts["math problem"] == 28 and counts["poetry"] == 30 and analysis.combined.name == "pool"
    assert not analysis.show_combined  # the pool is already the "default" panel
    assert dict(analysis.datasets[1].top_tags)["math problem"] == 14
    summed = analyze({"a": pool, "b": subset})  # no pool: two datasets really are summed ("all")
    assert dict(summed.combined.top_tags)["math problem"] == 42 and summed.show_combined
    split = analyze(pool, source_column=None, pool=pool)
    assert not split.show_combined
    written = analysis_plots(analysis, tmp_path)
    assert written["top_tags"].is_file()
    report = instag_hf.render_markdown(analysis)
    assert "| all |" not in report and "| pool |" not in report
