"""The request cache keys on everything that can change an answer, and on nothing else;
the ``datasets`` fingerprint follows the backend really used."""

import pytest
from datasets import Dataset, load_dataset
from datasets.fingerprint import Hasher

import instag_hf
from instag_hf import schema
from support.server import FakeChatServer, Faults

QUERY = "Write a Flask endpoint that stores JSON"


def api_key(**kw):
    options = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", **kw}
    return instag_hf.Tagger(**options).cache_key(QUERY)


def vllm_key(**kw):
    return instag_hf.Tagger(backend="vllm", model="org/tagger", **kw).cache_key(QUERY)


@pytest.mark.parametrize("change", [
    {"base_url": "http://127.0.0.1:10/v1"},
    {"model": "other"},
    {"revision": "abc123"},
    {"extra_body": {"top_p": 0.5}},
    {"response_format": "json_object"},
    {"response_format": "none"},
    {"template": "chatml"},
    {"temperature": 0.7},
    {"max_new_tokens": 99},
])
def test_each_api_knob_that_changes_answers_changes_the_key(change):
    assert api_key(**change) != api_key()


@pytest.mark.parametrize("change", [
    {"concurrency": 3}, {"timeout": 5.0}, {"max_retries": 0}, {"backoff_base": 2.0}, {"max_retry_after": 1.0},
    {"api_key_env": "OTHER_KEY"}, {"batch_size": 3}, {"progress": False}, {"use_cache": False},
])
def test_api_knobs_that_cannot_change_answers_keep_the_key(change, tmp_path):
    assert api_key(**change) == api_key()
    assert api_key(cache_dir=str(tmp_path / "elsewhere")) == api_key()


def test_credentials_in_the_url_are_not_part_of_the_identity():
    with_secret = instag_hf.Tagger(backend="openai", model="m", base_url="https://user:s3cret@host/v1")
    assert "s3cret" not in str(with_secret.namespace())
    assert with_secret.cache_key(QUERY) == api_key(base_url="https://host/v1")


@pytest.mark.parametrize("change", [
    {"engine_kwargs": {"load_format": "dummy"}},
    {"engine_kwargs": {"quantization": "fp8"}},
    {"engine_kwargs": {"kv_cache_dtype": "fp8"}},
    {"dtype": "float16"},
    {"seed": 1},
    {"structured": False},
    {"revision": "r2"},
])
def test_each_vllm_setting_that_changes_outputs_changes_the_key(change):
    assert vllm_key(**change) != vllm_key()


@pytest.mark.parametrize("change", [
    {"gpu_memory_utilization": 0.5}, {"tensor_parallel_size": 2}, {"max_model_len": 4096},
    {"engine_kwargs": {"max_num_seqs": 8, "enable_prefix_caching": True}},
])
def test_vllm_placement_settings_keep_the_key(change):
    assert vllm_key(**change) == vllm_key()


def test_transformers_dtype_is_part_of_the_key():
    base = instag_hf.Tagger(backend="transformers", model="org/m")
    assert base.namespace()["backend"]["dtype"] == "float32"  # the CPU default, stated
    assert instag_hf.Tagger(backend="transformers", model="org/m", dtype="bfloat16").cache_key(QUERY) != \
        base.cache_key(QUERY)


def test_fingerprint_follows_the_auto_backend_without_loading_a_model(monkeypatch):
    monkeypatch.setenv("INSTAG_API_BASE_URL", "http://127.0.0.1:9/v1")
    first = Hasher.hash(instag_hf.Tagger())
    assert Hasher.hash(instag_hf.Tagger()) == first
    monkeypatch.setenv("INSTAG_API_MODEL", "another-model")
    second = Hasher.hash(instag_hf.Tagger())
    monkeypatch.setenv("INSTAG_API_BASE_URL", "http://127.0.0.1:10/v1")
    third = Hasher.hash(instag_hf.Tagger())
    assert len({first, second, third}) == 3


def test_rerun_on_a_file_backed_dataset_after_the_server_changed_is_not_served_from_the_old_arrow_cache(
        tmp_path, monkeypatch):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(f'{{"query": "Explain topic {i} to a child"}}' for i in range(6)) + "\n")
    ds = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    with FakeChatServer() as good, FakeChatServer(Faults(bad_content=1.0)) as faulty:
        monkeypatch.setenv("INSTAG_API_BASE_URL", good.url)
        first = ds.map(instag_hf.Tagger(cache_dir=str(tmp_path / "req")), batched=True)
        assert set(first[schema.STATUS]) == {"ok"}
        monkeypatch.setenv("INSTAG_API_BASE_URL", faulty.url)
        second = ds.map(instag_hf.Tagger(cache_dir=str(tmp_path / "req")), batched=True)
        assert set(second[schema.STATUS]) == {"parse_error"}
        assert sum(faulty.requests_by_query.values()) == 6


def test_a_fallback_answer_is_cached_under_the_format_really_sent_and_reused_by_the_next_run(tmp_path):
    cache = str(tmp_path / "req")
    with FakeChatServer(Faults(reject_json_schema=True)) as server:
        first = instag_hf.Tagger(backend="openai", model="m", base_url=server.url, cache_dir=cache, concurrency=1)
        asked_with = first.cache_key(QUERY)
        assert first.tag_queries([QUERY])[0].status == "ok"
        assert asked_with not in first.cache.keys()
        assert first.cache_key(QUERY) in first.cache.keys()
        assert first.backend.request_options() == {"response_format": "json_object"}
        sent = sum(server.requests_by_query.values())
        from instag_hf.tagging.backends import openai

        openai._UNSUPPORTED.clear()  # a new process: it learns the fallback back from the cache
        again = instag_hf.Tagger(backend="openai", model="m", base_url=server.url, cache_dir=cache)
        assert again.tag_queries([QUERY])[0].status == "ok"
        assert again.stats.cache_hits == 1 and sum(server.requests_by_query.values()) == sent


def test_default_tagger_features_stay_declared_on_an_unbatched_row_with_no_query(tmp_path):
    from instag_hf.testing import KeywordBackend

    ds = Dataset.from_dict({"id": [1, 2], "conversations": [[], [{"from": "human", "value": "Sort a list"}]]})
    out = ds.map(instag_hf.Tagger(backend=KeywordBackend(), cache_dir=str(tmp_path)))
    assert out[0][schema.STATUS] == "empty_query" and out[0][schema.TAGS] == []
    assert out[1][schema.STATUS] == "ok"
    for name, feature in schema.TAG_FEATURES.items():
        assert out.features[name] == feature
