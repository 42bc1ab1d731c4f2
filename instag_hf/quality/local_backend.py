"""Local backend: a saved :class:`~instag_hf.quality.local_model.LocalTagModel` as a tagging backend.

``Tagger(backend="local", model="path/to/folder")`` (CLI: ``--backend local --model
folder``) tags on CPU with a sentence encoder and a classifier instead of an LLM. It
answers with the same JSON tag list a teacher gives, so the normal parser, statuses
and request cache apply. Its default template is ``chatml`` (the raw query as the
user turn); with another template the query is cut back out of the rendered prompt.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..tagging.prompts import Prompt, query_of
from ..tagging.backends.base import FINISH_STOP, PROGRAMMING_ERRORS, Backend, Completion, GenerationParams, settle


@dataclass(frozen=True, kw_only=True)
class LocalOptions:
    """The options of :class:`LocalBackend` (see there), checked on creation."""

    model: str | None = None
    revision: str | None = None
    threshold: float | None = None
    max_tags: int | None = None
    batch_size: int = 256
    explanations: bool = True

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("the local backend needs model=<folder written by `instag train-local`>")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.max_tags is not None and self.max_tags < 1:
            raise ValueError(f"max_tags must be >= 1, got {self.max_tags}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        settle(self, model=str(self.model))


class LocalBackend(Backend):
    """Tags with a trained local tagger folder (``instag train-local``).

    Parameters
    ----------
    model:
        The folder written by :meth:`LocalTagModel.save`.
    threshold, max_tags:
        Override the folder's tuned threshold / tag cap (they become part of the cache key).
    batch_size:
        Queries embedded per call; the backend groups at least this many, whatever the
        Tagger's own ``batch_size``.
    explanations:
        Put the tag's score in each explanation ("local tagger score 0.87"); else empty.
    options:
        All of the above as one :class:`LocalOptions` (keywords over it).
    """

    name = "local"
    default_template = "chatml"
    Options = LocalOptions

    def __init__(self, model: str | None = None, revision: str | None = None, threshold: float | None = None,
                 max_tags: int | None = None, batch_size: int = 256, explanations: bool = True, *,
                 options: LocalOptions | None = None):
        self._configure(options, locals())

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._loaded = None
        self._config: dict | None = None

    def _folder_config(self) -> dict:
        if self._config is None:
            path = Path(self.model) / "config.json"
            if not path.is_file():
                raise FileNotFoundError(f"{self.model} is not a local tagger folder (no config.json); "
                                        "train one with `instag train-local`")
            self._config = json.loads(path.read_text(encoding="utf-8"))
        return self._config

    def identity(self) -> dict:
        config, o = self._folder_config(), self.options
        ident = {"backend": self.name, "model": str(Path(o.model).resolve()),
                 "revision": o.revision or config.get("fingerprint"), "embedder": config.get("embedder")}
        if o.threshold is not None:
            ident["threshold"] = o.threshold
        if o.max_tags is not None:
            ident["max_tags"] = o.max_tags
        return ident

    def label(self) -> str:
        config = self._folder_config()
        return (f"{self.name} ({config.get('method')} over {config.get('embedder')}, "
                f"{config.get('info', {}).get('tags', '?')} tags, from {self.model})")

    def load(self):
        with self._lock:
            if self._loaded is None:
                from .local_model import LocalTagModel

                self._loaded = LocalTagModel.load(self.model)
            return self._loaded

    def generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        if not prompts:
            return []
        model = self.load()
        try:
            found = model.predict([query_of(p) for p in prompts], self.threshold, self.max_tags)
        except PROGRAMMING_ERRORS:
            raise
        except Exception as exc:
            return [Completion(error=f"{type(exc).__name__}: {exc}") for _ in prompts]
        out = []
        for tags in found:
            items = [{"tag": t, "explanation": f"local tagger score {s:.2f}" if self.explanations else ""}
                     for t, s in tags]
            # a whole answer by construction: nothing is generated token by token
            out.append(Completion(text=json.dumps(items, ensure_ascii=False), finish_reason=FINISH_STOP))
        return out

    def stream(self, prompts: list[Prompt], params: GenerationParams,
               batch_size: int | None = None) -> Iterator[list[tuple[int, Completion]]]:
        yield from super().stream(prompts, params, max(batch_size or 0, self.batch_size))
