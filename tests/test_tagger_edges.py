"""The data contract at its edges: odd inputs, odd datasets, errors that must raise, global state."""

import os
import subprocess
import sys

import pytest
from datasets import Dataset, IterableDataset

import instag_hf
from instag_hf import schema
from instag_hf.tagging.backends.base import Completion, EngineBackend
from instag_hf.normalize import TagNormalizer
from instag_hf.testing import KeywordBackend, keyword_tags


def tagger(cache_dir, **kw):
    return instag_hf.Tagger(backend=KeywordBackend(), cache_dir=cache_dir, **kw)


def test_a_string_is_tagged_as_one_query(cache_dir):
    row = tagger(cache_dir)("Write a poem about the sea")
    assert row[schema.STATUS] == "ok"
    assert [t["tag"] for t in row[schema.TAGS]] == [t["tag"] for t in keyword_tags("Write a poem about the sea")]


@pytest.mark.parametrize("value", [["Write a poem", "Sort a list"], 42, None])
def test_other_inputs_raise_a_type_error_that_names_tag_queries(cache_dir, value):
    with pytest.raises(TypeError, match="Tagger.tag_queries"):
        tagger(cache_dir)(value)


def test_unbatched_map_of_an_empty_conversation_keeps_the_declared_features(cache_dir):
    ds = Dataset.from_dict({"messages": [[{"role": "user", "content": "Sort a list in Python"}], []]})
    out = ds.map(tagger(cache_dir))
    assert out[1][schema.STATUS] == "empty_query" and out[1][schema.TURN_STATUS] == []
    for name, feature in schema.TAG_FEATURES.items():
        assert out.features[name] == feature


def test_tag_mapping_unbatched_on_a_row_without_tags(cache_dir):
    tagged = tagger(cache_dir).map(Dataset.from_dict({"query": ["Sort a list in Python", "", "Plan a trip"]}))
    mapping = TagNormalizer(alpha=1, semantic=False, association=False, progress=False).fit(tagged)
    out = tagged.map(mapping)
    assert out[1][schema.NORM_TAGS] == [] and out[0][schema.NORM_TAGS]
    assert out.features[schema.NORM_TAGS] == mapping.features[schema.NORM_TAGS]
    assert out[schema.NORM_TAGS] == tagged.map(mapping, batched=True)[schema.NORM_TAGS]


def test_iterable_datasets_are_tagged_lazily(cache_dir):
    rows = [{"query": q} for q in ("Sort a list in Python", "Plan a trip to Rome", "")]
    stream = IterableDataset.from_generator(lambda: iter(rows))
    out = list(tagger(cache_dir).map(stream, batch_size=2))
    assert [r[schema.STATUS] for r in out] == ["ok", "ok", "empty_query"]
    typed = Dataset.from_list(rows).to_iterable_dataset()
    tagged = tagger(cache_dir).map(typed)
    assert tagged.features[schema.TAGS] == schema.TAG_FEATURES[schema.TAGS]
    assert [r[schema.STATUS] for r in tagged] == ["ok", "ok", "empty_query"]


@pytest.mark.parametrize("value,level", [("10", 10), ("info", 20), ("nonsense", 20)])
def test_verbosity_from_the_environment_never_breaks_the_import(value, level):
    code = "import logging, instag_hf; print(logging.getLogger('instag_hf').level)"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "INSTAG_HF_VERBOSITY": value},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == str(level)


class Engine(EngineBackend):
    name = "engine"

    def __init__(self, exc):
        self.exc = exc

    def identity(self):
        return {"backend": self.name, "exc": type(self.exc).__name__}

    def _tokenizer(self):
        raise AssertionError("not used")

    def _generate(self, prompts, params):
        raise self.exc


@pytest.mark.parametrize("exc", [TypeError("bad arg"), AttributeError("no attr"), KeyError("k"), NameError("x")])
def test_a_programming_error_inside_a_backend_raises(cache_dir, exc):
    with pytest.raises(type(exc)):
        instag_hf.Tagger(backend=Engine(exc), cache_dir=cache_dir).tag_queries(["Sort a list"])


def test_an_engine_failure_becomes_a_backend_error_row(cache_dir):
    t = instag_hf.Tagger(backend=Engine(RuntimeError("CUDA out of memory")), cache_dir=cache_dir)
    (r,) = t.tag_queries(["Sort a list"])
    assert r.status == "backend_error" and "out of memory" in r.error
    assert Completion(error="x").options is None


def test_tag_on_gpus_leaves_the_start_method_as_it_found_it(cache_dir):
    import multiprocess

    from instag_hf.tagging.gpus import tag_on_gpus

    before = multiprocess.get_start_method(allow_none=True)
    ds = Dataset.from_dict({"query": ["Sort a list", "Plan a trip", "Write a poem", "Fix my slow SQL query"]})
    out = tag_on_gpus(ds, tagger(cache_dir), num_gpus=2)
    assert out[schema.STATUS] == ["ok"] * 4
    assert multiprocess.get_start_method(allow_none=True) == before
