import pickle

import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

import instag_hf
from instag_hf import schema
from instag_hf.testing import KeywordBackend, keyword_tags


def tagger(cache_dir, **kw):
    kw.setdefault("backend", KeywordBackend())
    return instag_hf.Tagger(cache_dir=cache_dir, **kw)


def tag_names(row):
    return [t["tag"] for t in row[schema.TAGS]]


def test_map_adds_the_contract_columns_with_declared_types(cache_dir):
    ds = Dataset.from_dict({"instruction": ["Write a haiku about winter mornings", "Sort numbers quickly"],
                            "input": ["", "3 1 2"], "output": ["...", "1 2 3"]})
    out = ds.map(tagger(cache_dir), batched=True)
    assert out.column_names[:3] == ["instruction", "input", "output"]
    for name, feature in schema.TAG_FEATURES.items():
        assert out.features[name] == feature
    assert tag_names(out[0]) == [t["tag"] for t in keyword_tags("Write a haiku about winter mornings")]
    assert out[0][schema.STATUS] == "ok" and out[0][schema.ERROR] == ""


@pytest.mark.parametrize("layout", ["sharegpt", "messages"])
def test_multi_turn_union_and_per_turn_tags(cache_dir, layout):
    turns = ["Explain recursion simply", "Now translate everything into Spanish", "Explain recursion simply"]
    if layout == "sharegpt":
        conv = [x for t in turns for x in ({"from": "human", "value": t}, {"from": "gpt", "value": "ok"})]
        ds = Dataset.from_dict({"conversations": [conv]})
    else:
        conv = [x for t in turns for x in ({"role": "user", "content": t}, {"role": "assistant", "content": "ok"})]
        ds = Dataset.from_dict({"messages": [conv]})
    t = tagger(cache_dir)
    row = ds.map(t, batched=True)[0]
    per_turn = [[x["tag"] for x in turn] for turn in row[schema.TURN_TAGS]]
    assert per_turn == [[x["tag"] for x in keyword_tags(q)] for q in turns]
    union = list(dict.fromkeys(tag for turn in per_turn for tag in turn))
    assert tag_names(row) == union
    assert row[schema.TURN_STATUS] == ["ok", "ok", "ok"]
    assert t.stats.requests == 2  # the repeated turn is asked once


def test_empty_and_missing_queries_get_a_status_not_tags(cache_dir):
    ds = Dataset.from_dict({"messages": [
        [{"role": "user", "content": "   "}],
        [{"role": "assistant", "content": "only an answer"}],
        [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}, {"role": "user", "content": "Describe volcanoes"}],
    ]})
    out = ds.map(tagger(cache_dir), batched=True)
    assert out[schema.STATUS] == ["empty_query", "empty_query", "ok"]
    assert out[0][schema.TAGS] == [] and out[1][schema.TURN_STATUS] == []
    assert out[2][schema.TURN_STATUS] == ["empty_query", "ok"]


def test_long_queries_are_truncated_and_marked(cache_dir):
    long = "Summarize " + "extraordinarily " * 500
    ds = Dataset.from_dict({"text": [long, "Short question here"]})
    out = ds.map(tagger(cache_dir, max_query_tokens=64), batched=True)
    assert out[schema.STATUS] == ["truncated", "ok"]
    assert tag_names(out[0])  # still tagged, on the cut query


def test_backend_errors_are_explicit_uncached_and_retried(cache_dir):
    ds = Dataset.from_dict({"text": ["Compute derivatives", "Please FAIL this request", "Plan vacations"]})
    failing = tagger(cache_dir, backend=KeywordBackend(fail="FAIL"))
    out = ds.map(failing, batched=True)
    assert out[schema.STATUS] == ["ok", "backend_error", "ok"]
    assert out[1][schema.TAGS] == [] and "injected failure" in out[1][schema.ERROR]
    healed = KeywordBackend()
    again = tagger(cache_dir, backend=healed)
    out2 = Dataset.from_dict(ds.to_dict()).map(again, batched=True, load_from_cache_file=False)
    assert out2[schema.STATUS] == ["ok", "ok", "ok"]
    assert (again.stats.requests, again.stats.cache_hits) == (1, 2)


def test_malformed_answers_are_parse_errors_and_cached(cache_dir):
    ds = Dataset.from_dict({"text": ["Tell me a joke about cats"]})
    t = tagger(cache_dir, backend=KeywordBackend(malformed="joke"))
    row = ds.map(t, batched=True)[0]
    assert row[schema.STATUS] == "parse_error" and row[schema.ERROR] == "no JSON found"
    t2 = tagger(cache_dir, backend=KeywordBackend(malformed="joke"))
    t2.tag_queries(["Tell me a joke about cats"])
    assert t2.stats.requests == 0  # the model's answer was kept; only re-parsing happens


def test_second_run_is_served_from_the_cache(cache_dir):
    queries = [f"Question number {i} about astronomy" for i in range(40)]
    first = tagger(cache_dir, batch_size=7)
    r1 = first.tag_queries(queries)
    second_backend = KeywordBackend()
    second = tagger(cache_dir, backend=second_backend)
    r2 = second.tag_queries(queries)
    assert r1 == r2
    assert first.stats.requests == 40 and second.stats.cache_hits == 40 and second_backend.calls == 0


def test_cache_key_covers_template_and_params(cache_dir):
    q = ["Write unit tests for a parser"]
    tagger(cache_dir).tag_queries(q)
    for kw in ({"template": "chatml"}, {"max_new_tokens": 17}, {"backend": KeywordBackend(model="other")}):
        t = tagger(cache_dir, **kw)
        t.tag_queries(q)
        assert t.stats.requests == 1, kw


def test_fingerprint_is_stable_and_depends_on_config(cache_dir):
    a, b = tagger(cache_dir, backend="instag_hf.testing:KeywordBackend"), tagger(cache_dir, backend="instag_hf.testing:KeywordBackend")
    a.tag_queries(["Make the runtime state differ"])
    assert Hasher.hash(a) == Hasher.hash(b)
    assert Hasher.hash(a) != Hasher.hash(tagger(cache_dir, backend="instag_hf.testing:KeywordBackend", batch_size=3))
    clone = pickle.loads(pickle.dumps(a))
    assert clone.tag_queries(["Make the runtime state differ"]) == a.tag_queries(["Make the runtime state differ"])


def test_num_proc_map_matches_single_process(cache_dir, tmp_path):
    ds = Dataset.from_dict({"text": [f"Explain topic {i} regarding chemistry" for i in range(30)]})
    t = tagger(cache_dir, backend="instag_hf.testing:KeywordBackend")
    single = ds.map(t, batched=True, batch_size=4)
    multi = ds.map(tagger(str(tmp_path / "other"), backend="instag_hf.testing:KeywordBackend"),
                   batched=True, batch_size=4, num_proc=2)
    assert single[schema.TAGS] == multi[schema.TAGS]


def test_non_batched_map_gives_the_same_result(cache_dir):
    ds = Dataset.from_dict({"instruction": ["Draft an email to my landlord"], "input": [""]})
    t = tagger(cache_dir)
    assert tag_names(ds.map(t)[0]) == tag_names(ds.map(t, batched=True)[0])


def test_tagger_map_declares_features_even_if_the_first_batch_fails(cache_dir):
    ds = Dataset.from_dict({"text": ["FAIL first", "Second works fine"]})
    out = tagger(cache_dir, backend=KeywordBackend(fail="FAIL")).map(ds, batch_size=1)
    assert out[schema.STATUS] == ["backend_error", "ok"]
    assert out.features[schema.TAGS] == schema.TAG_FEATURES[schema.TAGS]


def test_unknown_schema_error_reaches_the_user(cache_dir):
    ds = Dataset.from_dict({"foo": ["x"], "bar": ["y"]})
    with pytest.raises(instag_hf.QueryFormatError, match="foo"):
        ds.map(tagger(cache_dir), batched=True)


def test_invalid_parameters_are_rejected():
    for kw in ({"batch_size": 0}, {"max_query_tokens": 0}, {"max_new_tokens": 0}, {"temperature": -1}):
        with pytest.raises(ValueError):
            instag_hf.Tagger(**kw)
    with pytest.raises(ValueError, match="unknown backend"):
        instag_hf.Tagger(backend="nope").backend


def test_describe_names_everything_that_decides_the_tags(cache_dir):
    d = tagger(cache_dir).describe()
    assert d["template"] == "teacher@1"
    assert d["backend"]["backend"] == "keyword"
    assert d["params"]["max_new_tokens"] == 512 and d["params"]["temperature"] == 0.0
