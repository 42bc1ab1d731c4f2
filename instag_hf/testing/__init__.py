"""A model-free backend for tests, benchmarks and dry runs of a pipeline.

``KeywordBackend`` answers instantly and deterministically with tags made from
the query's longest words, so everything around the model (query extraction,
caching, parsing, ``map``) can be exercised and timed without one. It can also
misbehave on purpose. From the CLI: ``--backend instag_hf.testing:KeywordBackend``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

from ..tagging.backends.base import Backend, Completion, GenerationParams
from ..tagging.prompts import Prompt

_WORD = re.compile(r"[A-Za-z]{4,}")


def keyword_tags(query: str, k: int = 3) -> list[dict]:
    """The ``k`` longest distinct words of ``query``, title-cased, as tag items."""
    words = sorted(dict.fromkeys(w.lower() for w in _WORD.findall(query)), key=lambda w: (-len(w), w))
    return [{"tag": w.title(), "explanation": f"mentions {w}"} for w in words[:k]]


def _query_of(prompt: Prompt) -> str:
    return prompt.messages[-1]["content"]


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

    def __init__(self, model: str = "keyword", revision: str | None = None, delay: float | None = None,
                 log: str | None = None, fail: str | None = None, malformed: str | None = None):
        self.model = model
        self.revision = revision
        self.delay = float(delay if delay is not None else os.environ.get("INSTAG_TEST_DELAY", 0))
        self.log = log or os.environ.get("INSTAG_TEST_LOG")
        self.fail = fail or os.environ.get("INSTAG_TEST_FAIL")
        self.malformed = malformed
        self.calls = 0

    _CONFIG = ("model", "revision", "delay", "log", "fail", "malformed")

    def identity(self) -> dict:
        return {"backend": self.name, "model": self.model, "revision": self.revision}

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
