"""The small interface every tagging backend implements."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, Iterator, Mapping

from ..prompts import Prompt

logger = logging.getLogger(__name__)

#: Errors that mean a bug, not a failed request: they raise instead of becoming ``backend_error``
#: rows (an engine's out-of-memory, a too-long prompt or a broken chat template still do).
PROGRAMMING_ERRORS = (TypeError, AttributeError, NameError, ImportError, LookupError, AssertionError,
                      NotImplementedError)


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings; part of the cache key and of published cards."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    #: top log-probabilities wanted per generated position (0: none); see ``Completion.top_logprobs``
    logprobs: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    """One answer. ``error`` set means no answer (a transport or engine failure)."""

    text: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    #: the backend's :meth:`Backend.request_options` really used, where they changed mid-run
    options: dict | None = None
    #: why generation stopped: ``"stop"`` (the answer is complete), ``"length"`` (cut at the
    #: token budget), ``"content_filter"``, or None where the backend cannot tell
    finish_reason: str | None = None
    #: per generated position, ``token text -> logprob`` of the top ``GenerationParams.logprobs``
    #: tokens; None where not asked for or the backend cannot give them
    top_logprobs: list[dict[str, float]] | None = None


#: ``Completion.finish_reason`` values the Tagger acts on
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_CONTENT_FILTER = "content_filter"


def settle(options, **values) -> None:
    """Set fields of a frozen options dataclass in its ``__post_init__`` (a default resolved, a value normalized)."""
    for name, value in values.items():
        object.__setattr__(options, name, value)


class Backend(ABC):
    """Generates answers for rendered prompts, a whole batch per call.

    A backend's settings are one frozen dataclass, :attr:`Options`, checked on creation:
    the constructor builds it from its keywords (or takes ``options=``), :meth:`identity`
    reads it, and the backend pickles as it alone, so a ``Tagger`` holding one hashes
    stably for the ``datasets`` fingerprint and travels to ``map(num_proc=...)`` workers,
    where :meth:`_init_runtime` builds the rest. Options read as attributes too
    (``backend.model`` is ``backend.options.model``). Models load lazily (on the first
    :meth:`generate`). Every hook below has a default; a backend overrides what it needs.
    """

    name: str = "base"
    #: template used when the Tagger is not given one
    default_template: str = "teacher"
    #: the frozen dataclass of this backend's options; None: the backend pickles its ``__dict__``
    Options: ClassVar[type | None] = None
    #: this backend's :attr:`Options` (set by :meth:`_configure`)
    options: Any = None
    #: answer a whole dataset before mapping it (``Tagger.map`` submits every query at once: the Batch API)
    whole_dataset: bool = False
    #: for a ``whole_dataset`` backend, the most requests asked at once (``None``: all); a dataset
    #: with more is asked window by window, each collected before the next is sent
    window_requests: int | None = None
    #: whether answers depend on the prompt template and generation settings; a backend that
    #: reads only the query (retrieval) says no, and cards and logs then leave them out
    uses_prompt: bool = True

    def _configure(self, options: Any = None, arguments: Mapping[str, Any] | None = None) -> None:
        """Set :attr:`options`, then build the runtime state (:meth:`_init_runtime`).

        ``arguments`` (the constructor's ``locals()``) give the fields: they build the options,
        or, with ``options=``, override the fields where an argument differs from its default.
        """
        cls = self.Options
        given = {f.name: arguments[f.name] for f in fields(cls) if f.name in (arguments or {})}
        if options is None:
            options = cls(**given)
        elif not isinstance(options, cls):
            raise TypeError(f"options must be a {cls.__name__}, got {type(options).__name__}")
        else:
            defaults = {f.name: f.default for f in fields(cls)}
            changed = {k: v for k, v in given.items() if not (v is defaults[k] or v == defaults[k])}
            options = replace(options, **changed) if changed else options
        self.options = options
        self._init_runtime()

    def _init_runtime(self) -> None:
        """Build what each process makes for itself from :attr:`options` (locks, clients, counters); loads
        nothing. Also run on unpickling, where ``__init__`` is not: a subclass keeps its other state here."""

    def __getattr__(self, name: str):
        """An option read as an attribute: ``backend.model`` is ``backend.options.model``."""
        options = self.__dict__.get("options")
        if options is not None and name in options.__dataclass_fields__:
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self):
        return {"options": self.options} if self.Options is not None else self.__dict__.copy()

    def __setstate__(self, state):
        if self.Options is not None:
            self._configure(state["options"])
        else:
            self.__dict__.update(state)

    @classmethod
    def auto_config(cls) -> dict | None:
        """Constructor options when ``backend="auto"`` may pick this backend here, else None."""
        return None

    @abstractmethod
    def identity(self) -> dict:
        """What decides the answers besides the prompt: model, revision, ... (cache key, cards)."""

    def request_options(self) -> dict:
        """Options of the next request that decide its answer and may change during a run
        (the API backend's response format after a fallback); part of each cache key."""
        return {}

    def learned(self) -> dict:
        """What this backend found out about its server that later runs should reuse (JSON)."""
        return {}

    def learn(self, state: dict) -> None:
        """Take back what :meth:`learned` returned in an earlier run."""

    @abstractmethod
    def generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        """One :class:`Completion` per prompt, in order; failures as ``Completion(error=...)``."""

    def stream(self, prompts: list[Prompt], params: GenerationParams,
               batch_size: int | None = None) -> Iterator[list[tuple[int, Completion]]]:
        """Yield groups of ``(index, completion)`` as they are ready.

        The Tagger caches each group as soon as it arrives. The default calls
        :meth:`generate` on ``batch_size`` prompts at a time; backends with their
        own concurrency (HTTP) override it to yield answers as they finish.
        """
        size = batch_size or len(prompts) or 1
        for start in range(0, len(prompts), size):
            chunk = prompts[start : start + size]
            completions = self.generate(chunk, params)
            if len(completions) != len(chunk):
                raise RuntimeError(f"backend {self.name} returned {len(completions)} answers for {len(chunk)} prompts")
            yield list(enumerate(completions, start))

    def stream_keyed(self, keys: list[str], prompts: list[Prompt], params: GenerationParams,
                     batch_size: int | None = None) -> Iterator[list[tuple[int, Completion]]]:
        """:meth:`stream` with each request named by its cache key (``keys[i]`` names ``prompts[i]``);
        the default ignores the keys, a backend that tracks requests by name (the Batch API) uses them."""
        return self.stream(prompts, params, batch_size)

    def bind_device(self, rank: int) -> None:
        """Pin this process's engine to device ``rank`` before it starts (``map(with_rank=True)``
        workers); the default has nothing to pin."""

    def gpus_per_engine(self) -> int:
        """GPUs one engine of this backend spans (tensor parallel); one engine per GPU needs 1."""
        return 1

    def close(self) -> None:
        """Release connections, engines or threads; the backend may be used again after."""

    def stats(self) -> dict:
        """Backend-specific counters (requests sent, retries, failures by kind, ...)."""
        return {}

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """Cut ``text`` to about ``max_tokens`` tokens; returns (text, was_cut).

        The default counts 4 characters per token; backends with a tokenizer
        override it with an exact count.
        """
        limit = max_tokens * 4
        return (text, False) if len(text) <= limit else (text[:limit], True)

    def context_length(self) -> int | None:
        """Tokens the model reads and writes in all (prompt + answer); None where unknown."""
        return None

    def prompt_tokens(self, prompt: Prompt) -> int | None:
        """Tokens ``prompt`` takes as the model sees it; None where unknown."""
        return None

    def label(self) -> str:
        """One line naming the backend and its model, for logs and summaries (no secret)."""
        ident = self.identity()
        return f"{self.name} ({ident.get('model', '?')})"

    def describe(self) -> dict:
        """What to publish about this backend (a dict, as ``Tagger.describe()``): its identity and label."""
        return {**self.identity(), "label": self.label()}


class EngineBackend(Backend):
    """A backend with an in-process engine and tokenizer (transformers, vLLM).

    A batch the engine fails on (out of memory, a broken chat template, ...) comes
    back as one explicit per-row error each; truncation counts exact tokens.

    Every engine reads the same token ids for the same prompt, those vLLM feeds:
    a template's own text (Vicuna) is encoded as ``LLM.generate`` encodes a string,
    with the BOS the tokenizer adds (FastChat trained InsTagger with it); a chat
    template's text is encoded as ``LLM.chat`` does, without special tokens, since
    the template writes its own BOS where the model wants one.
    """

    @abstractmethod
    def _generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        """Generate a non-empty batch; may raise."""

    @abstractmethod
    def _tokenizer(self):
        """The engine's Hugging Face tokenizer."""

    def generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        if not prompts:
            return []
        try:
            return self._generate(prompts, params)
        except PROGRAMMING_ERRORS:
            raise
        except Exception as exc:
            logger.exception("%s generation failed for a batch of %d", self.name, len(prompts))
            return [Completion(error=f"{type(exc).__name__}: {exc}") for _ in prompts]

    def rendered_text(self, prompt: Prompt) -> str:
        """The exact text the model reads: the template's own text, else the model's chat template."""
        if prompt.text is not None:
            return prompt.text + prompt.response_prefix
        text = self._tokenizer().apply_chat_template(list(prompt.messages), tokenize=False, add_generation_prompt=True)
        return text + prompt.response_prefix

    def added_bos(self) -> int | None:
        """The BOS id the tokenizer puts before a text it encodes with special tokens; None where it adds none.

        Found by encoding a probe both ways, since tokenizers disagree on how they say it
        (``add_bos_token``, a post-processor template, ...). Two encodes of one character: cheap."""
        tokenizer = self._tokenizer()
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is None:
            return None
        with_special = list(tokenizer.encode("a", add_special_tokens=True))
        plain = list(tokenizer.encode("a", add_special_tokens=False))
        return bos if with_special[:1] == [bos] and plain[:1] != [bos] else None

    def encode_text(self, text: str, bos: bool) -> list[int]:
        """``text``'s ids, after the tokenizer's BOS where ``bos`` and the tokenizer adds one (never twice)."""
        ids = list(self._tokenizer().encode(text, add_special_tokens=False))
        first = self.added_bos() if bos else None
        if first is not None and ids[:1] != [first]:
            ids.insert(0, first)
        return ids

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """The token ids the engine reads for ``prompt`` (BOS included for a template's own text)."""
        return self.encode_text(self.rendered_text(prompt), bos=prompt.text is not None)

    def prompt_tokens(self, prompt: Prompt) -> int:
        return len(self.encode_prompt(prompt))

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        tokenizer = self._tokenizer()
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= max_tokens:
            return text, False
        return tokenizer.decode(ids[:max_tokens]), True
