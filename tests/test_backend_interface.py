"""The backend interface: every hook declared on ``Backend``, options as one frozen dataclass per
backend (what it pickles as and builds its identity from), and one writer of the request cache."""

import ast
import dataclasses
import json
import pickle
from pathlib import Path

import pytest

import instag_hf
from instag_hf.tagging.answers import store_answers
from instag_hf.tagging.backends import make_backend
from instag_hf.tagging.backends.base import Backend, Completion, GenerationParams
from instag_hf.tagging.backends.hf import HFBackend, HFOptions
from instag_hf.quality.local_backend import LocalBackend, LocalOptions
from instag_hf.tagging.backends.openai import OpenAIBackend, OpenAIOptions
from instag_hf.tagging.backends.openai_batch import BatchPending, OpenAIBatchBackend, OpenAIBatchOptions
from instag_hf.tagging.backends.retrieval import RetrievalBackend
from instag_hf.tagging.backends.transformers import TransformersBackend
from instag_hf.tagging.backends.vllm import VLLMBackend, VLLMOptions
from instag_hf.tagging.cache import RequestCache
from instag_hf.tagging.prompts import get_template
from instag_hf.testing import KeywordBackend, KeywordOptions

PACKAGE = Path(instag_hf.__file__).parent
#: hooks that were once found by probing for them
PROBED = {"whole_dataset", "bind_device", "stream_keyed", "tensor_parallel_size", "gpus_per_engine"}
HOOKS = PROBED | {name for name in vars(Backend) if not name.startswith("_")}


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            yield node


def test_no_backend_hook_is_probed_with_getattr():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in _calls(path):
            if not (isinstance(call.func, ast.Name) and call.func.id in ("getattr", "hasattr") and len(call.args) >= 2):
                continue
            target, name = call.args[0], call.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                continue
            if name.value in PROBED or (name.value in HOOKS and "backend" in ast.unparse(target).lower()):
                found.append(f"{path.relative_to(PACKAGE)}:{call.lineno}: {ast.unparse(call)}")
    assert not found, "backend hooks probed instead of called:\n" + "\n".join(found)


def test_every_hook_is_declared_on_the_base_class_with_a_docstring():
    for name in ("bind_device", "stream_keyed", "gpus_per_engine", "stream", "request_options", "learned", "learn",
                 "auto_config", "close", "stats", "truncate", "context_length", "prompt_tokens", "describe", "label"):
        assert getattr(Backend, name).__doc__, name
    assert Backend.whole_dataset is False and OpenAIBatchBackend.whole_dataset is True


class Echo(Backend):
    name = "echo"

    def identity(self):
        return {"backend": self.name}

    def generate(self, prompts, params):
        return [Completion(text=p.messages[-1]["content"]) for p in prompts]


def test_hook_defaults():
    backend = Echo()
    prompts = [get_template("chatml").render(q) for q in ("one query", "two query", "three query")]
    assert backend.bind_device(3) is None and backend.gpus_per_engine() == 1
    keyed = list(backend.stream_keyed(["a", "b", "c"], prompts, GenerationParams(), 2))
    plain = list(backend.stream(prompts, GenerationParams(), 2))
    assert [[(i, c.text) for i, c in g] for g in keyed] == [[(i, c.text) for i, c in g] for g in plain]
    assert pickle.loads(pickle.dumps(backend)).identity() == {"backend": "echo"}  # no options: its __dict__


def test_a_tensor_parallel_engine_says_so_and_gets_no_engine_per_gpu():
    from instag_hf.tagging.gpus import tag_on_gpus

    assert VLLMBackend(tensor_parallel_size=2).gpus_per_engine() == 2 and VLLMBackend().gpus_per_engine() == 1
    tagger = instag_hf.Tagger(backend=VLLMBackend(options=VLLMOptions(tensor_parallel_size=2)))
    with pytest.raises(ValueError, match="tensor_parallel_size=1"):
        tag_on_gpus(None, tagger, num_gpus=2)


def local_folder(tmp_path) -> str:
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"fingerprint": "f1", "embedder": "e1", "method": "m"}))
    return str(folder)


BACKENDS = {
    "openai": lambda tmp: OpenAIBackend(model="m", base_url="https://user:pw@host/v1/", extra_body={"top_p": 0.5},
                                        concurrency=3, response_format="json_object"),
    "openai-batch": lambda tmp: OpenAIBatchBackend(model="m", base_url="http://127.0.0.1:9/v1", cache_dir=tmp,
                                                   poll_interval=5, max_batch_requests=10**9, submit_only=True),
    "hf-provider": lambda tmp: HFBackend(model="org/m", provider="together", bill_to="org"),
    "hf-endpoint": lambda tmp: HFBackend(base_url="http://127.0.0.1:9/v1/", max_retry_after=3.0),
    "local": lambda tmp: LocalBackend(local_folder(tmp), threshold=0.4, max_tags=2),
    "retrieval": lambda tmp: RetrievalBackend(method="vote", k=4, min_votes=1.5),
    "keyword": lambda tmp: KeywordBackend(model="kw", revision="r1", fail="boom"),
    "transformers": lambda tmp: TransformersBackend(model="org/m", revision="r2", dtype="bfloat16", prefix_cache=False),
    "vllm": lambda tmp: VLLMBackend(model="org/m", tensor_parallel_size=2, seed=3,
                                    engine_kwargs={"load_format": "dummy", "max_num_seqs": 8}),
}


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_each_backend_pickles_as_its_options_with_an_equal_identity(kind, tmp_path):
    backend = BACKENDS[kind](tmp_path)
    options = backend.options
    assert isinstance(options, type(backend).Options) and dataclasses.is_dataclass(options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.revision = "changed"
    assert backend.__getstate__() == {"options": options}
    copy = pickle.loads(pickle.dumps(backend))
    assert type(copy) is type(backend) and copy.options == options
    assert copy.identity() == backend.identity() and copy.label() == backend.label()
    assert copy.describe() == backend.describe()
    for field in dataclasses.fields(options):  # options read as attributes
        assert getattr(copy, field.name) == getattr(options, field.name)


def test_the_openai_options_are_declared_once_and_extended():
    assert issubclass(OpenAIBatchOptions, OpenAIOptions) and issubclass(HFOptions, OpenAIOptions)
    for extension in (OpenAIBatchOptions, HFOptions):
        own = set(extension.__dict__.get("__annotations__", {}))
        assert not own & {"max_retry_after", "concurrency", "timeout", "backoff_base", "extra_body"}


def test_options_given_as_an_object_or_as_keywords_agree():
    options = OpenAIOptions(model="m", base_url="http://127.0.0.1:9/v1", concurrency=4)
    by_keywords = OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1", concurrency=4)
    assert OpenAIBackend(options=options).options == by_keywords.options == options
    over = OpenAIBackend(options=options, timeout=5.0)
    assert over.options == dataclasses.replace(options, timeout=5.0) and over.model == "m" and over.concurrency == 4
    assert make_backend("openai", options=options).options == options
    assert KeywordBackend(options=KeywordOptions(model="x")).identity()["model"] == "x"
    with pytest.raises(TypeError, match="OpenAIOptions"):
        OpenAIBackend(options=KeywordOptions())


@pytest.mark.parametrize("cls, bad, message", [
    (OpenAIBackend, {"concurrency": 0}, "concurrency must be >= 1"),
    (OpenAIBackend, {"timeout": 0}, "timeout must be > 0"),
    (OpenAIBackend, {"response_format": "xml"}, "response_format must be one of"),
    (OpenAIBackend, {"api_key_env": "sk-abc"}, "NAME of an environment variable"),
    (OpenAIBatchBackend, {"poll_interval": -1}, "poll_interval must be >= 0"),
    (OpenAIBatchBackend, {"max_batch_bytes": 0}, "max_batch_requests and max_batch_bytes"),
    (HFBackend, {}, "needs model="),
    (HFBackend, {"model": "m", "max_retries": -1}, "max_retries must be >= 0"),
    (LocalBackend, {"model": ""}, "needs model="),
    (RetrievalBackend, {"threshold": 1.5}, "threshold must be a probability"),
    (VLLMBackend, {"tensor_parallel_size": 0}, "tensor_parallel_size must be >= 1"),
    (VLLMBackend, {"gpu_memory_utilization": 1.5}, "gpu_memory_utilization must be in"),
])
def test_invalid_options_raise_the_same_errors_as_keywords_or_as_an_object(cls, bad, message):
    with pytest.raises(ValueError, match=message):
        cls(**bad)
    with pytest.raises(ValueError, match=message):
        cls.Options(**bad)


def test_local_options_check_their_fields():
    with pytest.raises(ValueError, match="threshold"):
        LocalOptions(model="x", threshold=2.0)


def test_no_backend_writes_the_request_cache_itself():
    writers = [f"{path.relative_to(PACKAGE)}:{call.lineno}"
               for folder in ("tagging/backends", "quality") for path in sorted((PACKAGE / folder).rglob("*.py"))
               for call in _calls(path) if isinstance(call.func, ast.Attribute) and call.func.attr == "put_many"]
    assert not writers, writers


def test_store_answers_caches_answers_and_counts_failures(tmp_path):
    cache = RequestCache(tmp_path)
    before = cache.failure_epoch()
    records = store_answers(cache, {
        "a": Completion(text="[]", completion_tokens=3, finish_reason="length"),
        "b": Completion(error="http_500: boom"),
        "c": Completion(text="[]", options={"response_format": "none"}),
        "d": Completion(text="[]", options={"response_format": "none"}),
    }, sent_with={"response_format": "json_schema"}, rekey=lambda key, options: key + "-" + options["response_format"])
    assert records["a"] == {"text": "[]", "completion_tokens": 3, "finish_reason": "length"}
    assert records["b"]["text"] is None and records["b"]["error"].startswith("http_500")
    assert cache.keys() == {"a", "c-none", "d-none"} and cache.failure_epoch() == before + 1


def test_a_killed_runs_answers_collected_by_a_later_run_go_through_the_one_writer(cache_dir):
    from support.batch_api import BatchConfig
    from support.server import FakeChatServer

    texts = [f"Request {i}: explain topic number {i} in detail" for i in range(10)]
    fast = dict(poll_interval=0, timeout=5, max_retries=1, progress=False)
    with FakeChatServer(batch=BatchConfig(validate_seconds=5, run_seconds=50, error_rate=0.3, seed=1)) as server:
        first = instag_hf.Tagger(backend="openai-batch", model="m", base_url=server.url, cache_dir=cache_dir,
                                 submit_only=True, **fast)
        with pytest.raises(BatchPending):
            first.tag_queries(texts)
        server.advance(100)
        cache = RequestCache(cache_dir)
        before = cache.failure_epoch()
        again = instag_hf.Tagger(backend="openai-batch", model="m", base_url=server.url, cache_dir=cache_dir, **fast)
        again.tag_queries(texts[:4])
        keys = {first.cache_key(t) for t in texts}
        cached = cache.keys() & keys
        assert cached & {first.cache_key(t) for t in texts[4:]} and server.batches.created == 1  # others kept
        assert cache.failure_epoch() - before == len(keys - cached) > 0  # every failure counted, others' too


def test_a_tagger_default_never_overrides_a_field_the_options_object_sets(tmp_path):
    options = OpenAIBatchOptions(model="m", base_url="http://127.0.0.1:9/v1", cache_dir=str(tmp_path / "journal"))
    tagger = instag_hf.Tagger(backend="openai-batch", options=options, cache_dir=str(tmp_path / "requests"))
    assert tagger.configured_backend.options == options
    plain = OpenAIBatchOptions(model="m", base_url="http://127.0.0.1:9/v1")
    tagger = instag_hf.Tagger(backend="openai-batch", options=plain, cache_dir=str(tmp_path / "requests"))
    assert tagger.configured_backend.cache_dir == str(tmp_path / "requests")  # unset: the Tagger's folder
