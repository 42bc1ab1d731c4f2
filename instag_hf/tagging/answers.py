"""Answers for a set of requests: from the request cache, else from a backend (cached as they arrive).

The one loop the Tagger and the LLM judge share: look every key up in the cache, send
the rest to ``backend.stream`` and commit each group of answers as soon as it comes
back, so an interrupted run re-pays only for requests that were in flight. Failed
requests come back as ``{"text": None, "error": ...}`` and are never cached.
"""

from __future__ import annotations

from typing import Callable, Iterable

from .backends.base import Backend, Completion, GenerationParams
from .cache import RequestCache
from .prompts import Prompt


def answer_requests(keys: Iterable[str], render: Callable[[str], Prompt], backend: Backend,
                    params: GenerationParams, *, cache: RequestCache | None, batch_size: int,
                    progress: str | None = None,
                    on_completion: Callable[[str, Completion], None] | None = None,
                    rekey: Callable[[str, dict], str] | None = None) -> tuple[dict[str, dict], int]:
    """Records per key and how many came from the cache.

    ``keys`` are sent in the given order (de-duplicated); ``render(key)`` builds a
    prompt only for keys the cache lacks. ``progress`` is a progress-bar label, shown
    when more than ``batch_size`` requests go out. ``on_completion`` sees every answer.
    An answer whose request options changed mid-run (``Completion.options``, such as a
    response-format fallback) is cached under ``rekey(key, options)``, the key of what
    was really sent, and still returned under ``key``.
    """
    keys = list(dict.fromkeys(keys))
    found = cache.get_many(keys) if cache is not None else {}
    sent_with = backend.request_options()
    cached = len(found)
    missing = [k for k in keys if k not in found]
    if not missing:
        return found, cached
    bar = None
    if progress and len(missing) > batch_size:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(missing), desc=progress, leave=False)
    try:
        prompts = [render(k) for k in missing]
        keyed = getattr(backend, "stream_keyed", None)  # a backend that names requests by key (the Batch API)
        groups = (keyed(missing, prompts, params, batch_size) if keyed is not None
                  else backend.stream(prompts, params, batch_size))
        for group in groups:
            fresh = {}
            for i, completion in group:
                key = missing[i]
                if on_completion is not None:
                    on_completion(key, completion)
                if completion.error is not None or completion.text is None:
                    found[key] = {"text": None, "error": completion.error or "backend returned no text"}
                    continue
                record = {"text": completion.text}
                if completion.completion_tokens is not None:
                    record["completion_tokens"] = completion.completion_tokens
                found[key] = record
                if completion.options is None or completion.options == sent_with:
                    fresh[key] = record
                elif rekey is not None:
                    fresh[rekey(key, completion.options)] = record
            if cache is not None:
                cache.put_many(fresh)
            if bar is not None:
                bar.update(len(group))
    finally:
        if bar is not None:
            bar.close()
    return found, cached
