"""A model-free backend for tests, benchmarks and dry runs of a pipeline.

``KeywordBackend`` answers instantly and deterministically with tags made from
the query's longest words, so everything around the model (query extraction,
caching, parsing, ``map``) can be exercised and timed without one. It can also
misbehave on purpose. From the CLI: ``--backend keyword`` (or ``instag_hf.testing:KeywordBackend``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass

from .base import Backend, Completion, GenerationParams, settle
from ..prompts import Prompt

_WORD = re.compile(r"[A-Za-z]{4,}")


def keyword_tags(query: str, k: int = 3) -> list[dict]:
    """The ``k`` longest distinct words of ``query``, title-cased, as tag items."""
    words = sorted(dict.fromkeys(w.lower() for w in _WORD.findall(query)), key=lambda w: (-len(w), w))
    return [{"tag": w.title(), "explanation": f"mentions {w}"} for w in words[:k]]


def _query_of(prompt: Prompt) -> str:
    return prompt.messages[-1]["content"]


@dataclass(frozen=True, kw_only=True)
class KeywordOptions:
    """The options of :class:`KeywordBackend`; ``delay``, ``log`` and ``fail`` left unset are read
    from the environment."""

    model: str = "keyword"
    revision: str | None = None
    delay: float | None = None
    log: str | None = None
    fail: str | None = None
    malformed: str | None = None

    def __post_init__(self) -> None:
        settle(self, delay=float(self.delay if self.delay is not None else os.environ.get("INSTAG_TEST_DELAY", 0)),
               log=self.log or os.environ.get("INSTAG_TEST_LOG"), fail=self.fail or os.environ.get("INSTAG_TEST_FAIL"))


class KeywordBackend(Backend):
    """Instant fake backend.

    ``delay``: seconds to sleep per call. ``log``: a file that gets one line per
    prompt it is asked (its sha1), to check what was requested. ``fail``: a regex;
    queries matching it get an error. ``malformed``: a regex; matching queries get
    an answer that is not JSON. Environment variables ``INSTAG_TEST_DELAY``,
    ``INSTAG_TEST_LOG``, ``INSTAG_TEST_FAIL`` fill unset options (for subprocesses).
    """

    name = "keyword"
    default_template = "teacher"
    Options = KeywordOptions

    def __init__(self, model: str = "keyword", revision: str | None = None, delay: float | None = None,
                 log: str | None = None, fail: str | None = None, malformed: str | None = None, *,
                 options: KeywordOptions | None = None):
        self._configure(options, locals())

    def _init_runtime(self) -> None:
        self.calls = 0

    def identity(self) -> dict:
        return {"backend": self.name, "model": self.options.model, "revision": self.options.revision}

    def generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.log:
            with open(self.log, "a") as fh:
                for p in prompts:
                    fh.write(hashlib.sha1(_query_of(p).encode()).hexdigest() + "\n")
        out = []
        for p in prompts:
            query = _query_of(p)
            if self.fail and re.search(self.fail, query):
                out.append(Completion(error="injected failure"))
            elif self.malformed and re.search(self.malformed, query):
                out.append(Completion(text="Sure! The tags are: helpfulness, and more"))
            else:
                tags = keyword_tags(query.split("[begin]")[-1].split("[end]")[0])
                out.append(Completion(text=json.dumps(tags), completion_tokens=10 * len(tags)))
        return out
