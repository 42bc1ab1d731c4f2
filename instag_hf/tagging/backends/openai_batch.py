"""The same chat-completions requests through OpenAI's Batch API (half the price, within 24 h).

Requests are written as JSONL, one line each with ``custom_id`` = the request's cache
key, uploaded with purpose ``batch``, and run as batches on ``/v1/chat/completions``
(chat templates) or ``/v1/completions`` (text templates: one endpoint per batch, as the
API requires) with ``completion_window="24h"``, split to respect the API's limits per input file
(``max_batch_requests``, ``max_batch_bytes``). Each batch is polled every
``poll_interval`` seconds with a progress bar; when it ends, its output and error
files are read. An answer goes to the request cache like any other; a request that
is in the error file, or that never ran because its batch expired, failed or was
cancelled, comes back as ``backend_error`` with the batch's reason and is not cached,
so the next run submits exactly those again. Output lines are read like the ``openai``
backend's answers: their ``finish_reason``, refusals and content-filter stops included.

Every batch is written to a journal in the cache folder (``batches/open/*.json``:
batch id, input file, request keys) before the first poll. A process that is killed
while waiting and started again finds its batches there and polls them instead of
submitting again; a batch whose output was read moves to ``batches/done/``. With
``submit_only=True`` a run returns after submitting (raising :class:`BatchPending`)
and a later identical run collects the results.

The transport is the official ``openai`` SDK (``OpenAI.files`` / ``OpenAI.batches``),
which also retries the few calls this makes. The API key is read from the named
environment variable at request time and never written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ...redact import redact, register_secret
from ..prompts import Prompt
from ..answers import store_answers
from .base import Completion, GenerationParams, settle
from .openai import (
    CHAT,
    ROUTES,
    OpenAIBackend,
    OpenAIOptions,
    _error_message,
    _rejects_format,
    _url_credentials,
    _without_credentials,
    endpoint_kind,
)

logger = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
#: the Batch API endpoint of each endpoint kind
ENDPOINTS = {kind: "/v1" + route for kind, route in ROUTES.items()}
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
MAX_BATCH_REQUESTS = 50_000
MAX_BATCH_BYTES = 200 * 1024 * 1024
#: requests a whole-dataset run submits at a time (see ``window_requests``)
WINDOW_REQUESTS = 500_000


class BatchPending(RuntimeError):
    """Raised by a ``submit_only`` run while its batches are still running: run it again to collect."""

    def __init__(self, batches: list[str], requests: int):
        super().__init__(f"{requests} requests are still running in {len(batches)} Batch API batches "
                         f"({', '.join(batches[:5])}{', ...' if len(batches) > 5 else ''}); run the same again "
                         f"to collect them (nothing is submitted twice)")
        self.batches, self.requests = batches, requests

    @classmethod
    def merge(cls, pending: list["BatchPending"]) -> "BatchPending":
        """One exception for the batches of several submissions (a dataset's windows)."""
        return cls([b for p in pending for b in p.batches], sum(p.requests for p in pending))


class BatchJournal:
    """Open batches of this cache folder, one JSON file each (written atomically)."""

    def __init__(self, directory: str | os.PathLike):
        self.root = Path(directory).expanduser() / "batches"
        self.open_dir, self.done_dir = self.root / "open", self.root / "done"

    def entries(self) -> list[dict]:
        if not self.open_dir.is_dir():
            return []
        found = []
        for path in sorted(self.open_dir.glob("*.json")):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:  # a torn write cannot happen (rename), but a hand edit can
                logger.warning("skipping unreadable batch journal entry %s: %s", path, exc)
        return found

    def new(self, **fields) -> dict:
        entry = {"id": uuid.uuid4().hex, "created": time.time(), "file_id": None, "batch_id": None, **fields}
        self.save(entry)
        return entry

    def save(self, entry: dict) -> None:
        self.open_dir.mkdir(parents=True, exist_ok=True)
        path = self.open_dir / f"{entry['id']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, path)

    def drop(self, entry: dict) -> None:
        (self.open_dir / f"{entry['id']}.json").unlink(missing_ok=True)

    def close(self, entry: dict, batch: dict) -> None:
        """Move a collected batch to ``done/`` (kept as a record of what was paid for)."""
        self.done_dir.mkdir(parents=True, exist_ok=True)
        record = {k: v for k, v in entry.items() if k != "keys"}
        record.update(requests=len(entry["keys"]), status=batch.get("status"),
                      request_counts=batch.get("request_counts"))
        (self.done_dir / f"{entry['id']}.json").write_text(json.dumps(record))
        self.drop(entry)


@dataclass(frozen=True, kw_only=True)
class OpenAIBatchOptions(OpenAIOptions):
    """:class:`~instag_hf.tagging.backends.openai.OpenAIOptions` plus the Batch API's own (see
    :class:`OpenAIBatchBackend`); the request and byte limits are cut to the API's."""

    cache_dir: str | None = None
    poll_interval: float = 60.0
    max_batch_requests: int = MAX_BATCH_REQUESTS
    max_batch_bytes: int = MAX_BATCH_BYTES
    submit_only: bool = False
    progress: bool = True
    window_requests: int = WINDOW_REQUESTS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.poll_interval < 0:
            raise ValueError(f"poll_interval must be >= 0, got {self.poll_interval}")
        if self.window_requests < 1:
            raise ValueError(f"window_requests must be >= 1, got {self.window_requests}")
        if self.max_batch_requests < 1 or self.max_batch_bytes < 1:
            raise ValueError("max_batch_requests and max_batch_bytes must be >= 1")
        settle(self, cache_dir=None if self.cache_dir is None else str(self.cache_dir),
               max_batch_requests=min(self.max_batch_requests, MAX_BATCH_REQUESTS),
               max_batch_bytes=min(self.max_batch_bytes, MAX_BATCH_BYTES))


class OpenAIBatchBackend(OpenAIBackend):
    """Tags through the Batch API of OpenAI (or any server that has the same endpoints).

    Takes the options of :class:`~instag_hf.tagging.backends.openai.OpenAIBackend`
    (``timeout`` and ``max_retries`` apply to each API call the SDK makes), plus:
    ``cache_dir``, where the batch journal lives (the Tagger passes its request
    cache folder); ``poll_interval``, seconds between looks at running batches;
    ``max_batch_requests`` / ``max_batch_bytes``, the limits per input file;
    ``submit_only``, return after submitting (:class:`BatchPending`) instead of
    waiting; ``progress``, show a progress bar while waiting; ``window_requests``, the
    most requests a dataset's ``map`` submits at a time: a bigger dataset is submitted
    window by window, each collected (and cached) before the next is sent, which bounds
    the memory of the run and the tokens queued at the provider at once (with
    ``submit_only``, every window is submitted before :class:`BatchPending` is raised).
    Or all of them as one :class:`OpenAIBatchOptions` (``options=``; keywords over it).

    Answers are the same model's answers to the same requests as with ``openai``, so
    the cache identity is that backend's: each run's answers serve the other.
    """

    name = "openai-batch"
    Options = OpenAIBatchOptions
    whole_dataset = True  # same answers as "openai", asked for a whole dataset at once

    @property
    def window_requests(self) -> int:
        return self.options.window_requests

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout: float = 60.0, max_retries: int = 5, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, max_retry_after: float = 120.0, response_format: str = "auto",
                 revision: str | None = None, extra_body: dict | None = None, cache_dir: str | None = None,
                 poll_interval: float = 60.0, max_batch_requests: int = MAX_BATCH_REQUESTS,
                 max_batch_bytes: int = MAX_BATCH_BYTES, submit_only: bool = False, progress: bool = True,
                 window_requests: int = WINDOW_REQUESTS, *, options: OpenAIBatchOptions | None = None):
        self._configure(options, locals())

    def _init_runtime(self) -> None:
        super()._init_runtime()
        self._stats.update(batch_api=True, batches_created=0, batches_resumed=0, requests_submitted=0,
                           requests_resumed=0, batch_ids=[])

    @classmethod
    def auto_config(cls) -> dict | None:
        return None  # never picked by "auto": waiting up to a day must be asked for

    def identity(self) -> dict:
        return {**super().identity(), "backend": OpenAIBackend.name}

    def label(self) -> str:
        return f"{self.name} ({self.model} at {self._where()}, Batch API, completion window 24h)"

    def stats(self) -> dict:
        s = super().stats()
        s["batch_ids"] = list(s["batch_ids"])
        return s

    def journal(self) -> BatchJournal:
        from ..cache import instag_home

        return BatchJournal(self.cache_dir or (instag_home() / "requests"))

    # --- the SDK -------------------------------------------------------------------------
    def _sdk(self):
        import openai

        name = self.api_key_env

        def key() -> str:
            value = (os.environ.get(name) if name else None) or ""
            register_secret(value)
            return value

        return openai.OpenAI(api_key=key, base_url=self._where(), timeout=self.timeout,
                             max_retries=self.max_retries)

    def _auth(self) -> dict:
        """Per-call headers: none with a key (the SDK sends it), a URL's ``user:KEY@`` as Basic
        auth, else an explicitly omitted one. Every credential read is registered for redaction."""
        import openai

        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            register_secret(key)
            return {}
        basic = _url_credentials(self.base_url)
        return {"Authorization": f"Basic {basic}" if basic else openai.Omit()}

    # --- entry points ----------------------------------------------------------------------
    def stream(self, prompts: list[Prompt], params: GenerationParams,
               batch_size: int | None = None) -> Iterator[list[tuple[int, Completion]]]:
        """Without cache keys (``generate``): each request is named by the hash of its body."""
        keys = [hashlib.sha256(json.dumps(self._body(p, params, self._current_format(endpoint_kind(p))),
                                          sort_keys=True).encode()).hexdigest() for p in prompts]
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        unique = list(first)
        for group in self.stream_keyed(unique, [prompts[i] for i in first.values()], params, batch_size):
            by_key = {unique[i]: c for i, c in group}
            yield [(i, by_key[k]) for i, k in enumerate(keys) if k in by_key]

    def stream_keyed(self, keys: list[str], prompts: list[Prompt], params: GenerationParams,
                     batch_size: int | None = None) -> Iterator[list[tuple[int, Completion]]]:
        """Yield ``(index, completion)`` groups, one per finished batch; ``keys`` name the requests."""
        if not prompts:
            return
        index = {key: i for i, key in enumerate(keys)}
        journal = self.journal()
        client = self._sdk()
        server = (_without_credentials(self.base_url), self.model)
        try:
            running, covered = [], set()
            for entry in journal.entries():
                if (entry.get("server"), entry.get("model")) != server:
                    continue
                mine = index.keys() & set(entry["keys"])
                if not mine:
                    continue
                if entry.get("file_id") is None:  # killed before its upload finished: nothing runs
                    journal.drop(entry)
                    continue
                running.append(entry)
                covered |= mine
                self._stats["batches_resumed"] += 1
                self._stats["requests_resumed"] += len(mine)
            fresh = [i for key, i in index.items() if key not in covered]
            failed: list[tuple[int, Completion]] = []
            for entry in running:
                if entry.get("batch_id") is None:
                    failed.extend(self._create_batch(client, journal, entry, index))
            for kind, fmt, chunk, data in self._chunks(fresh, keys, prompts, params, failed):
                entry = journal.new(server=server[0], model=server[1], keys=chunk, format=fmt, kind=kind)
                try:
                    uploaded = client.files.create(file=(f"instag-{entry['id']}.jsonl", data), purpose="batch",
                                                   timeout=max(self.timeout, 600.0), extra_headers=self._auth())
                except Exception as exc:  # noqa: BLE001 - an API or transport error: these rows fail
                    journal.drop(entry)
                    failed.extend((index[k], self._failure("submission", f"uploading the batch file failed: "
                                                                         f"{_describe(exc)}")) for k in chunk)
                    continue
                entry["file_id"] = uploaded.id
                journal.save(entry)
                self._stats["requests_submitted"] += len(chunk)
                self._stats["requests_sent"] += len(chunk)
                failed.extend(self._create_batch(client, journal, entry, index, new=True))
                if entry.get("batch_id"):
                    running.append(entry)
            running = [e for e in running if e.get("batch_id")]
            if failed:
                yield failed
            yield from self._wait(client, journal, running, index)
        finally:
            client.close()

    # --- submitting ------------------------------------------------------------------------
    def _chunks(self, rows: list[int], keys: list[str], prompts: list[Prompt], params: GenerationParams,
                failed: list) -> Iterator[tuple[str, str, list[str], bytes]]:
        """``(endpoint kind, format, keys, lines)`` of ``rows``: one endpoint per input file (the API
        runs a batch on one endpoint), files within the request and byte limits."""
        by_kind: dict[str, list[int]] = {}
        for i in rows:
            by_kind.setdefault(endpoint_kind(prompts[i]), []).append(i)
        for kind, mine in by_kind.items():
            fmt = self._current_format(kind)
            chunk: list[str] = []
            lines: list[bytes] = []
            size = 0
            for i in mine:
                line = (json.dumps({"custom_id": keys[i], "method": "POST", "url": ENDPOINTS[kind],
                                    "body": self._body(prompts[i], params, fmt)}, ensure_ascii=False) + "\n").encode()
                if len(line) > self.max_batch_bytes:
                    reason = (f"the request takes {len(line)} bytes, more than a batch file may hold "
                              f"({self.max_batch_bytes})")
                    failed.append((i, self._failure("submission", reason)))
                    continue
                if chunk and (len(chunk) >= self.max_batch_requests or size + len(line) > self.max_batch_bytes):
                    yield kind, fmt, chunk, b"".join(lines)
                    chunk, lines, size = [], [], 0
                chunk.append(keys[i])
                lines.append(line)
                size += len(line)
            if chunk:
                yield kind, fmt, chunk, b"".join(lines)

    def _create_batch(self, client, journal: BatchJournal, entry: dict, index: dict,
                      new: bool = False) -> list[tuple[int, Completion]]:
        """Create the batch of an uploaded file, or adopt the one a killed run created; errors per row."""
        if not new:
            found = self._find_batch(client, entry)
            if found is not None:
                entry["batch_id"] = found
                journal.save(entry)
                return []
        try:
            batch = client.batches.create(input_file_id=entry["file_id"], endpoint=ENDPOINTS[entry.get("kind", CHAT)],
                                          completion_window="24h", metadata={"instag_entry": entry["id"]},
                                          extra_headers=self._auth())
        except Exception as exc:  # noqa: BLE001
            journal.drop(entry)
            reason = f"creating the batch failed: {_describe(exc)}"
            return [(index[k], self._failure("submission", reason)) for k in entry["keys"] if k in index]
        entry["batch_id"] = batch.id
        journal.save(entry)
        self._stats["batches_created"] += 1
        return []

    def _find_batch(self, client, entry: dict) -> str | None:
        """The batch created from ``entry``'s file by a run killed before it wrote the batch id."""
        try:
            for batch in client.batches.list(limit=100, extra_headers=self._auth()):
                if batch.input_file_id == entry["file_id"] or (batch.metadata or {}).get("instag_entry") == entry["id"]:
                    return batch.id
                if batch.created_at < entry["created"] - 3600:
                    break
        except Exception as exc:  # noqa: BLE001 - then create it; at worst a file runs twice
            logger.warning("could not list batches to resume %s: %s", entry["file_id"], _describe(exc))
        return None

    # --- waiting and collecting ---------------------------------------------------------------
    def _wait(self, client, journal: BatchJournal, running: list[dict],
              index: dict) -> Iterator[list[tuple[int, Completion]]]:
        if not running:
            return
        self._stats["batch_ids"].extend(e["batch_id"] for e in running if e["batch_id"] not in self._stats["batch_ids"])
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(len(e["keys"]) for e in running), desc=f"Batch API ({len(running)} batches)",
                       unit="req", leave=False)
        counts: dict[str, int] = {}
        try:
            while running:
                for entry in list(running):
                    try:
                        batch = client.batches.retrieve(entry["batch_id"], extra_headers=self._auth()).to_dict()
                    except Exception as exc:  # noqa: BLE001 - the batch runs on: look again next time
                        logger.warning("polling batch %s failed: %s", entry["batch_id"], _describe(exc))
                        continue
                    rc = batch.get("request_counts") or {}
                    counts[entry["id"]] = (rc.get("completed") or 0) + (rc.get("failed") or 0)
                    if batch["status"] not in TERMINAL:
                        continue
                    group = self._collect(client, entry, batch, index)
                    if group is None:  # a result file could not be read: try again next time
                        continue
                    counts[entry["id"]] = len(entry["keys"])
                    journal.close(entry, batch)
                    running.remove(entry)
                    if group:
                        yield group
                if bar is not None:
                    bar.n = min(bar.total, sum(counts.values()))
                    bar.refresh()
                if not running:
                    break
                if self.submit_only:
                    raise BatchPending([e["batch_id"] for e in running],
                                       sum(len(index.keys() & set(e["keys"])) for e in running))
                time.sleep(self.poll_interval)
        finally:
            if bar is not None:
                bar.close()

    def _collect(self, client, entry: dict, batch: dict, index: dict) -> list[tuple[int, Completion]] | None:
        """Completions of a finished batch's requested rows; other rows' answers (a killed run's)
        go to the cache through :func:`~instag_hf.tagging.answers.store_answers`, failures counted."""
        bid, status = batch["id"], batch["status"]
        results: dict[str, Completion] = {}
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if not file_id:
                continue
            try:
                data = client.files.content(file_id, timeout=max(self.timeout, 600.0), extra_headers=self._auth())
                raw = data.content
            except Exception as exc:  # noqa: BLE001
                logger.warning("reading %s of batch %s failed: %s", file_id, bid, _describe(exc))
                return None
            for line in raw.splitlines():
                if line.strip():
                    self._read_line(line, bid, entry.get("format"), results, entry.get("kind", CHAT))
        reason = _batch_reason(batch)
        kind = {"expired": "batch_expired", "failed": "batch_failed", "cancelled": "batch_cancelled"}.get(
            status, "batch_missing")
        group, others = [], {}
        options = self._options(entry.get("kind", CHAT), entry.get("format"))
        for key in entry["keys"]:
            completion = results.get(key) or self._failure(kind, f"batch {bid} {status}: {reason}", count=False)
            if completion.error is not None:
                completion.error = redact(completion.error)
            if key not in index:
                others[key] = completion
                continue
            if completion.error is not None:
                self._stats["failures"][_kind(completion.error, kind)] += 1
            completion.options = options
            group.append((index[key], completion))
        if others and self.cache_dir:
            from ..cache import RequestCache

            store_answers(RequestCache(self.cache_dir), others)
        return group

    def _read_line(self, line: bytes, bid: str, fmt: str | None, results: dict, kind: str = CHAT) -> None:
        try:
            record = json.loads(line)
            key = record["custom_id"]
        except (ValueError, KeyError, TypeError):
            logger.warning("skipping an unreadable line in the files of batch %s", bid)
            return
        response, error = record.get("response"), record.get("error")
        if isinstance(response, dict) and response.get("status_code") == 200:
            completion = self._completion(json.dumps(response.get("body")).encode())
            results[key] = completion or Completion(error=f"malformed_response: batch {bid}: unreadable answer")
            return
        if isinstance(response, dict):
            status = response.get("status_code")
            raw = json.dumps(response.get("body") or {}).encode()
            if fmt in ("json_schema", "json_object") and _rejects_format(status, raw, fmt):
                if self.response_format == "auto":
                    self._reject_format(fmt, f"http_{status}: {_error_message(raw)}", kind)
                    results[key] = Completion(error=f"unsupported response_format {fmt} (http_{status}: "
                                                    f"{_error_message(raw)}); the next run sends "
                                                    f"{self._current_format(kind)}")
                else:
                    results[key] = Completion(error=f"unsupported response_format {fmt} (http_{status}: "
                                                    f"{_error_message(raw)}); response_format='auto' falls back")
                return
            results[key] = Completion(error=f"http_{status}: batch {bid}: {_error_message(raw)}")
            return
        error = error if isinstance(error, dict) else {}
        results[key] = Completion(error=f"{error.get('code') or 'batch_error'}: batch {bid}: "
                                        f"{error.get('message') or 'no answer'}")

    def _failure(self, kind: str, reason: str, count: bool = True) -> Completion:
        if count:
            self._stats["failures"][kind] += 1
        return Completion(error=redact(reason if reason.startswith(kind) else f"{kind}: {reason}"))


def _batch_reason(batch: dict) -> str:
    status = batch["status"]
    if status == "failed":
        errors = ((batch.get("errors") or {}).get("data")) or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors[:3]) or "no reason given"
    if status == "expired":
        return "the 24h completion window ended before this request ran"
    if status == "cancelled":
        return "the batch was cancelled before this request ran"
    return "the request is missing from the batch's output and error files"


def _kind(error: str, default: str) -> str:
    if error.startswith("unsupported response_format"):
        return "unsupported_format"
    head = error.split(":", 1)[0]
    return head if head and " " not in head else default


def _describe(exc: Exception) -> str:
    """An SDK error as one line, credentials masked (a server may echo the key in its message)."""
    status = getattr(exc, "status_code", None)
    return redact(f"http_{status}: {exc}" if status else f"{type(exc).__name__}: {exc}")
