"""Answers for a set of requests: from the request cache, else from a backend (cached as they arrive).

The one loop the Tagger and the LLM judge share: look every key up in the cache, claim
the rest in the cache (so that another process sharing it does not pay for them too),
send the claimed ones to ``backend.stream`` and commit each group of answers as soon as
it comes back, so an interrupted run re-pays only for requests that were in flight.
Keys another process has claimed are waited for, then read from the cache, or taken
over when that process released them unanswered or its claim ran out. Failed requests
come back as ``{"text": None, "error": ...}`` (redacted), are never cached, and are
counted in the cache (:meth:`RequestCache.note_failures`). :func:`store_answers` is the one
place answers are turned into records and written to the cache (the Batch API backend
stores the answers of a killed run's requests through it too).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, Mapping

from ..redact import redact
from .backends.base import Backend, Completion, GenerationParams
from .cache import RequestCache, claim_owner
from .prompts import Prompt

logger = logging.getLogger(__name__)

#: seconds a claim lasts unless renewed; renewed every third of it while its requests are in flight
CLAIM_LEASE_S = 120.0
#: seconds between looks at the cache while waiting for keys another process is answering
CLAIM_POLL_S = 0.5
#: seconds between log lines while waiting
WAIT_LOG_S = 30.0


def completion_record(completion: Completion) -> dict:
    """The record of one completion: ``{"text", ...meta}`` or ``{"text": None, "error"}``.

    Meta: ``completion_tokens``, ``finish_reason`` and ``top_logprobs`` where known. A text that is not a
    string becomes a ``malformed_response`` error; every error text is redacted.
    """
    text, error = completion.text, completion.error
    if error is None and text is not None and not isinstance(text, str):
        error = f"malformed_response: the backend returned {type(text).__name__} instead of text"
    if error is not None or text is None:
        return {"text": None, "error": redact(str(error) if error is not None else "backend returned no text")}
    record = {"text": text}
    if isinstance(completion.completion_tokens, int):
        record["completion_tokens"] = completion.completion_tokens
    if isinstance(completion.finish_reason, str):
        record["finish_reason"] = completion.finish_reason
    top = completion.top_logprobs
    if top:  # per generated position, token -> logprob (the Scorer's input)
        record["top_logprobs"] = [{str(t): float(v) for t, v in position.items()} for position in top]
    return record


def store_answers(cache: RequestCache | None, answers: Mapping[str, Completion], *, sent_with: dict | None = None,
                  rekey: Callable[[str, dict], str] | None = None) -> dict[str, dict]:
    """The records of ``answers`` (key -> completion); the one writer of answers to the request cache.

    Each answer's :func:`completion_record` is cached under its key, or, where its request
    options (``Completion.options``) differ from ``sent_with``, under ``rekey(key, options)``
    (not at all without ``rekey``); failed ones are not cached but counted
    (:meth:`RequestCache.note_failures`). Returns every record under its own key.
    """
    records, fresh, failed = {}, {}, 0
    for key, completion in answers.items():
        record = records[key] = completion_record(completion)
        if record["text"] is None:
            failed += 1
        elif completion.options is None or completion.options == sent_with:
            fresh[key] = record
        elif rekey is not None:
            fresh[rekey(key, completion.options)] = record
    if cache is not None:
        cache.put_many(fresh)
        cache.note_failures(failed)
    return records


class _Claims:
    """One caller's claims in a cache, renewed by a background thread while held."""

    def __init__(self, cache: RequestCache, lease_s: float):
        self.cache, self.lease_s = cache, lease_s
        self.owner = claim_owner()
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, keys: list[str]) -> list[str]:
        got = self.cache.claim(keys, self.owner, self.lease_s)
        with self._lock:
            self.held.update(got)
        if got and self._thread is None:
            self._thread = threading.Thread(target=self._renew, name="instag-claims", daemon=True)
            self._thread.start()
        return got

    def release(self, keys: list[str]) -> None:
        with self._lock:
            self.held.difference_update(keys)
        self.cache.release(keys, self.owner)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._lock:
                keys = list(self.held)
            if keys:
                try:
                    self.cache.renew(keys, self.owner, self.lease_s)
                except Exception as exc:  # a missed renewal costs at most a duplicate request
                    logger.warning("could not renew %d claims in %s: %s", len(keys), self.cache.path, redact(str(exc)))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            left = list(self.held)
        if left:
            try:
                self.release(left)
            except Exception as exc:  # they expire on their own
                logger.warning("could not release %d claims in %s: %s", len(left), self.cache.path, redact(str(exc)))


def answer_requests(keys: Iterable[str], render: Callable[[str], Prompt], backend: Backend,
                    params: GenerationParams, *, cache: RequestCache | None, batch_size: int,
                    progress: str | None = None,
                    on_completion: Callable[[str, Completion], None] | None = None,
                    rekey: Callable[[str, dict], str] | None = None,
                    lease_s: float = CLAIM_LEASE_S, poll_s: float = CLAIM_POLL_S) -> tuple[dict[str, dict], int]:
    """Records per key and how many came from the cache (answers another process stored meanwhile included).

    ``keys`` are sent in the given order (de-duplicated); ``render(key)`` builds a
    prompt only for keys this call sends. ``progress`` is a progress-bar label, shown
    when more than ``batch_size`` requests are missing. ``on_completion`` sees every
    answer this call receives. An answer whose request options changed mid-run
    (``Completion.options``, such as a response-format fallback) is cached under
    ``rekey(key, options)``, the key of what was really sent, and still returned under
    ``key``. With a cache, keys are claimed for ``lease_s`` seconds before they are sent
    (renewed while in flight); keys claimed by another live owner are polled for every
    ``poll_s`` seconds.
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
    claims = _Claims(cache, lease_s) if cache is not None else None

    def send(mine: list[str]) -> None:
        prompts = [render(k) for k in mine]
        for group in backend.stream_keyed(mine, prompts, params, batch_size):
            answers = {mine[i]: completion for i, completion in group}
            if on_completion is not None:
                for key, completion in answers.items():
                    on_completion(key, completion)
            found.update(store_answers(cache, answers, sent_with=sent_with, rekey=rekey))
            if claims is not None:
                claims.release(list(answers))
            if bar is not None:
                bar.update(len(group))

    try:
        pending = missing
        waiting_since = last_log = None
        while pending:
            mine = claims.take(pending) if claims is not None else pending
            if mine:
                send(mine)
            taken = set(mine)
            rest = [k for k in pending if k not in taken]
            if not rest:
                break
            came = cache.get_many(rest)  # answered by another process meanwhile
            found.update(came)
            cached += len(came)
            if bar is not None and came:
                bar.update(len(came))
            pending = [k for k in rest if k not in came]
            if pending and not mine:
                now = time.monotonic()
                if waiting_since is None:
                    waiting_since = now
                if last_log is None or now - last_log >= WAIT_LOG_S:
                    last_log = now
                    logger.info("waiting for %d requests another process is answering (claimed in %s, %.0f s so far)",
                                len(pending), cache.path, now - waiting_since)
                time.sleep(poll_s)
    finally:
        if claims is not None:
            claims.close()
        if bar is not None:
            bar.close()
    return found, cached
