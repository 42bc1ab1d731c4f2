"""The small interface every tagging backend implements."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Iterator

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


#: ``Completion.finish_reason`` values the Tagger acts on
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_CONTENT_FILTER = "content_filter"


class Backend(ABC):
    """Generates answers for rendered prompts, a whole batch per call.

    Subclasses load their model lazily (on the first :meth:`generate`) and pickle
    as their configuration only, so a ``Tagger`` holding one hashes stably for the
    ``datasets`` fingerprint and travels to ``map(num_proc=...)`` workers.
    """

    name: str = "base"
    #: template used when the Tagger is not given one
    default_template: str = "teacher"
    #: constructor arguments that rebuild an equal backend; when set, the backend pickles
    #: as these alone and unpickles through ``__init__``
    _CONFIG: tuple[str, ...] = ()

    def __getstate__(self):
        if not self._CONFIG:
            return self.__dict__.copy()
        return {k: getattr(self, k) for k in self._CONFIG}

    def __setstate__(self, state):
        if not self._CONFIG:
            self.__dict__.update(state)
        else:
            self.__init__(**state)

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

    def describe(self) -> str:
        ident = self.identity()
        return f"{self.name} ({ident.get('model', '?')})"


class EngineBackend(Backend):
    """A backend with an in-process engine and tokenizer (transformers, vLLM).

    A batch the engine fails on (out of memory, a broken chat template, ...) comes
    back as one explicit per-row error each; truncation counts exact tokens.
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

    def prompt_tokens(self, prompt: Prompt) -> int:
        return len(self._tokenizer().encode(self.rendered_text(prompt), add_special_tokens=False))

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        tokenizer = self._tokenizer()
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= max_tokens:
            return text, False
        return tokenizer.decode(ids[:max_tokens]), True
