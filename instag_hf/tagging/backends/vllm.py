"""vLLM offline-engine backend: InsTagger (or any tagger model) on GPUs.

One ``vllm.LLM`` per process, created on first use; each call sends the whole batch
in one ``LLM.generate`` (templates with a fixed prompt text, such as Vicuna v1.1) or
``LLM.chat`` (chat templates) call, greedy, with ``max_tokens`` set and, unless turned
off, JSON output enforced through ``SamplingParams(structured_outputs=
StructuredOutputsParams(json=...))`` with the bounded tag schema. vLLM is imported
only when the engine starts.

Several GPUs of one machine: run one engine per GPU with
``ds.map(tagger, batched=True, num_proc=N, with_rank=True)`` (see
:func:`instag_hf.tagging.gpus.tag_on_gpus`, which also sets the spawn start method), or
one engine over all GPUs with ``tensor_parallel_size``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from dataclasses import dataclass

from ..prompts import BOUNDED_TAGS_JSON_SCHEMA, BOUNDED_TAGS_SCHEMA_ID, Prompt
from .base import Completion, EngineBackend, GenerationParams, settle
from .embedded import EMBEDDED_HUB_ID, EMBEDDED_MODEL, embedded_checkpoint, embedded_revision

logger = logging.getLogger(__name__)

INSTAGGER = "OFA-Sys/InsTagger"
#: Engine arguments that decide where and how fast the engine runs, never what it answers.
PLACEMENT_ARGS = frozenset({
    "gpu_memory_utilization", "tensor_parallel_size", "pipeline_parallel_size", "distributed_executor_backend",
    "max_num_seqs", "max_num_batched_tokens", "swap_space", "cpu_offload_gb", "kv_cache_memory_bytes",
    "enable_prefix_caching", "disable_log_stats", "download_dir", "max_model_len", "enable_chunked_prefill",
})


#: KV cache reserved by vLLM's CPU build (``scripts/vllm_cpu_env.sh``) unless ``kv_cache_memory_bytes`` is given.
CPU_KV_CACHE_BYTES = 2 << 30


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@dataclass(frozen=True, kw_only=True)
class VLLMOptions:
    """The options of :class:`VLLMBackend` (see there), checked on creation."""

    model: str = INSTAGGER
    revision: str | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = 2048
    dtype: str = "auto"
    seed: int = 0
    structured: bool = True
    engine_kwargs: dict | None = None

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        settle(self, engine_kwargs=dict(self.engine_kwargs or {}))


class VLLMBackend(EngineBackend):
    """Parameters: ``model`` (default InsTagger; ``"embedded"`` is SmolLM2-135M on CPU), ``revision``; engine arguments
    ``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len`` (InsTagger:
    2048), ``dtype``, ``seed`` and any other ``engine_kwargs`` (e.g. ``load_format=
    "dummy"``); ``structured``: constrain answers to the tag JSON schema. Or all of them as
    one :class:`VLLMOptions` (``options=``; keywords over it).
    """

    name = "vllm"
    default_template = "vicuna_v1.1"
    Options = VLLMOptions

    def __init__(self, model: str = INSTAGGER, revision: str | None = None, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = 2048, dtype: str = "auto",
                 seed: int = 0, structured: bool = True, engine_kwargs: dict | None = None, *,
                 options: VLLMOptions | None = None):
        self._configure(options, locals())

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._llm = None
        self._hf_tokenizer = None
        self.device_rank: int | None = None

    @classmethod
    def auto_config(cls) -> dict | None:
        """Picked by ``backend="auto"`` when vLLM is installed and a CUDA GPU is visible."""
        if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("torch") is None:
            return None
        import torch

        return {"model": INSTAGGER} if torch.cuda.is_available() else None

    def identity(self) -> dict:
        """Model, revision, dtype, seed, the answer schema and every engine argument that can
        change what the engine writes (``load_format="dummy"``, ``quantization``, ...); the
        placement and memory knobs in :data:`PLACEMENT_ARGS` are left out."""
        o = self.options
        engine = {k: v for k, v in sorted(o.engine_kwargs.items()) if k not in PLACEMENT_ARGS}
        model, revision = o.model, o.revision
        if model == EMBEDDED_MODEL:
            model, revision = EMBEDDED_HUB_ID, embedded_revision()
        return {"backend": self.name, "model": model, "revision": revision, "dtype": o.dtype,
                "seed": o.seed, "structured": BOUNDED_TAGS_SCHEMA_ID if o.structured else None,
                "engine": engine}

    def label(self) -> str:
        return f"{self.name} ({self.model}, tensor_parallel_size={self.tensor_parallel_size})"

    def gpus_per_engine(self) -> int:
        """``tensor_parallel_size``: the GPUs one engine spans."""
        return self.options.tensor_parallel_size

    def bind_device(self, rank: int) -> None:
        """Pin this process's engine to one GPU (``map(with_rank=True)`` workers), before it starts."""
        if self._llm is not None:
            raise RuntimeError("the vLLM engine already started; bind the device first")
        gpus = self.tensor_parallel_size
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(rank * gpus + i) for i in range(gpus))
        # map workers are daemonic and may not start vLLM's engine-core process
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.device_rank = rank

    def source(self) -> str:
        """What vLLM loads: ``model="embedded"`` is the local checkpoint of the embedded SmolLM2."""
        return str(embedded_checkpoint()) if self.model == EMBEDDED_MODEL else self.model

    def engine_args(self) -> dict:
        args = dict(model=self.source(), tensor_parallel_size=self.tensor_parallel_size,
                    gpu_memory_utilization=self.gpu_memory_utilization, dtype=self.dtype, seed=self.seed)
        if self.revision:
            args["revision"] = self.revision
        if self.max_model_len:
            args["max_model_len"] = self.max_model_len
        args.update(self.engine_kwargs)
        if not _cuda_available():
            # vLLM's CPU build reads gpu_memory_utilization as a share of host RAM; a fixed KV
            # cache and eager mode start the small embedded model in seconds on a laptop.
            args.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
            args.setdefault("enforce_eager", True)
            if args["dtype"] == "auto":
                args["dtype"] = "float32"
        return args

    def _engine(self):
        with self._lock:
            if self._llm is None:
                from vllm import LLM

                logger.info("starting vLLM engine for %s", self.model)
                self._llm = LLM(**self.engine_args())
            return self._llm

    def close(self) -> None:
        """Stop the engine (and its engine-core process) and free its memory; a later call starts a new one."""
        with self._lock:
            llm, self._llm = self._llm, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def sampling_params(self, params: GenerationParams, structured: bool):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        kwargs = dict(max_tokens=params.max_new_tokens, temperature=params.temperature, seed=self.seed)
        if params.logprobs:
            kwargs["logprobs"] = params.logprobs
        if params.stop:
            kwargs.update(stop=list(params.stop), include_stop_str_in_output=True)
        if structured:
            kwargs["structured_outputs"] = StructuredOutputsParams(json=BOUNDED_TAGS_JSON_SCHEMA)
        return SamplingParams(**kwargs)

    def _tokenizer(self):
        """The engine's tokenizer; before the engine starts, the same Hugging Face tokenizer
        loaded alone, so a run whose answers are all cached never starts the engine."""
        if self._llm is not None:
            return self._llm.get_tokenizer()
        if self._hf_tokenizer is None:
            self._hf_tokenizer = self._load_tokenizer()
        return self._hf_tokenizer

    def _load_tokenizer(self):
        from transformers import AutoTokenizer

        kw = self.engine_kwargs
        return AutoTokenizer.from_pretrained(
            kw.get("tokenizer") or self.source(), revision=kw.get("tokenizer_revision") or self.revision,
            trust_remote_code=bool(kw.get("trust_remote_code", False)))

    def context_length(self) -> int:
        if self.max_model_len:
            return self.max_model_len
        return self._engine().llm_engine.model_config.max_model_len

    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        llm = self._engine()
        prefixed = any(p.response_prefix for p in prompts)
        # A prefilled answer is continued mid-JSON, which a whole-document schema would reject.
        sampling = self.sampling_params(params, structured=self.structured and not prefixed)
        if all(p.text is not None for p in prompts):
            outputs = llm.generate([p.text + p.response_prefix for p in prompts], sampling, use_tqdm=False)
        elif prefixed:
            conversations = [list(p.messages) + [{"role": "assistant", "content": p.response_prefix}] for p in prompts]
            outputs = llm.chat(conversations, sampling, use_tqdm=False, add_generation_prompt=False,
                               continue_final_message=True)
        else:
            outputs = llm.chat([list(p.messages) for p in prompts], sampling, use_tqdm=False)
        results = []
        for prompt, out in zip(prompts, outputs):
            best = out.outputs[0]
            # vLLM says "stop" (EOS or a stop string), "length" (max_tokens or the context), "abort", or None
            results.append(Completion(text=prompt.response_prefix + best.text,
                                      prompt_tokens=len(out.prompt_token_ids or []),
                                      completion_tokens=len(best.token_ids),
                                      finish_reason=getattr(best, "finish_reason", None),
                                      top_logprobs=_top_logprobs(best.logprobs) if params.logprobs else None))
        return results


def _top_logprobs(positions) -> list[dict[str, float]] | None:
    """vLLM's per-position ``{token_id: Logprob}`` as ``decoded_token -> logprob`` (the larger one where
    two ids decode alike)."""
    if not positions:
        return None
    out = []
    for position in positions:
        top: dict[str, float] = {}
        for token_id, lp in (position or {}).items():
            text = lp.decoded_token if lp.decoded_token is not None else str(token_id)
            top[text] = max(top.get(text, float("-inf")), float(lp.logprob))
        out.append(top)
    return out
