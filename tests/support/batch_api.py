"""The Batch API's files and batches, in memory, on a clock the tests move.

:class:`BatchStore` keeps uploaded files and batches the way OpenAI's Batch API
shows them (``POST /v1/files``, ``POST /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``, ``GET /v1/files/{id}/content``), on ``/v1/chat/completions``
or ``/v1/completions`` (every line's ``url`` must be its batch's endpoint). A batch's state is a
pure function of the store's clock: ``validating`` for ``validate_seconds``, then
``in_progress`` while its requests run in file order over ``run_seconds``, then
``completed``. Chosen batches fail validation or expire half-way (their finished
requests in the output file, the rest in the error file as ``batch_expired``); a
cancelled batch keeps what had finished. A share of requests ends in the error
file. The clock moves only through :meth:`BatchStore.advance` or, when
``advance_per_poll`` is set, by that much on every ``GET`` of a batch, so no test
depends on wall time. :class:`~support.server.FakeChatServer` serves it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
ENDPOINT = "/v1/chat/completions"
#: endpoints a batch may run on
ENDPOINTS = (ENDPOINT, "/v1/completions")


@dataclass
class BatchConfig:
    """How the fake Batch API behaves."""

    error_rate: float = 0.0  # share of requests answered in the error file (a pure function of custom_id)
    validate_seconds: float = 60.0  # clock seconds a new batch stays "validating"
    run_seconds: float = 600.0  # clock seconds from "in_progress" until every request has run
    expire: tuple[int, ...] = ()  # creation ordinals (0, 1, ...) of batches that expire
    expire_done: float = 0.5  # share of an expiring batch's requests that finish before it expires
    fail: tuple[int, ...] = ()  # creation ordinals of batches that fail validation
    advance_per_poll: float = 0.0  # clock seconds added by each GET of a batch (0: only advance() moves it)
    max_requests: int = 50_000  # per input file, as OpenAI's limit
    max_bytes: int = 200 * 1024 * 1024  # per input file, as OpenAI's limit
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.error_rate <= 1 or not 0 <= self.expire_done <= 1:
            raise ValueError("error_rate and expire_done must be in [0, 1]")
        self.expire, self.fail = tuple(self.expire), tuple(self.fail)


class BatchStore:
    """Files and batches; every public method is thread-safe and returns JSON-ready dicts."""

    def __init__(self, config: BatchConfig | None = None,
                 answer: Callable[[dict, str], tuple[int, dict]] | None = None):
        """``answer(body, endpoint)`` gives ``(status, response body)`` of one request line."""
        self.config = config or BatchConfig()
        self._answer = answer or (lambda body, endpoint: (500, {"error": {"message": "no model behind this store"}}))
        self._lock = threading.RLock()
        self._epoch = time.time()
        self._offset = 0.0
        self.files: dict[str, dict] = {}
        self._content: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self._runs: dict[str, dict] = {}
        #: how many batches each custom_id was submitted in
        self.submitted: Counter = Counter()
        self.polls = 0
        self.created = 0
        #: the most batches not yet terminal at once (counted as each is created)
        self.max_open = 0

    # --- the clock ---------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self._epoch + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock on; batches progress accordingly on their next look-up."""
        with self._lock:
            self._offset += seconds

    # --- files -------------------------------------------------------------------------
    def add_file(self, content: bytes, filename: str, purpose: str) -> dict:
        with self._lock:
            fid = f"file-{len(self.files) + 1:06d}{_short(filename + str(self.now))}"
            self.files[fid] = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(self.now),
                               "filename": filename, "purpose": purpose, "status": "processed"}
            self._content[fid] = content
            return dict(self.files[fid])

    def file(self, fid: str) -> dict | None:
        with self._lock:
            return dict(self.files[fid]) if fid in self.files else None

    def content(self, fid: str) -> bytes | None:
        with self._lock:
            return self._content.get(fid)

    # --- batches -----------------------------------------------------------------------
    def create(self, input_file_id: str, endpoint: str, completion_window: str,
               metadata: dict | None = None) -> tuple[int, dict]:
        """``(http status, batch or error)`` for ``POST /v1/batches``."""
        with self._lock:
            if input_file_id not in self.files:
                return 404, _error(f"No such File object: {input_file_id}", "invalid_request_error")
            if endpoint not in ENDPOINTS:
                return 400, _error(f"endpoint must be one of {list(ENDPOINTS)}, got {endpoint!r}",
                                   "invalid_request_error")
            if completion_window != "24h":
                return 400, _error("completion_window must be '24h'", "invalid_request_error")
            if self.files[input_file_id]["purpose"] != "batch":
                return 400, _error("the input file's purpose must be 'batch'", "invalid_request_error")
            ordinal = self.created
            self.created += 1
            lines, errors = self._validate(self._content[input_file_id], ordinal, endpoint)
            bid = f"batch_{ordinal + 1:06d}{_short(input_file_id)}"
            now = int(self.now)
            batch = {"id": bid, "object": "batch", "endpoint": endpoint, "errors": None,
                     "input_file_id": input_file_id, "completion_window": completion_window, "status": "validating",
                     "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                     "expires_at": now + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                     "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                     "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                     "metadata": dict(metadata or {})}
            self.batches[bid] = batch
            if not errors:
                self.submitted.update(line["custom_id"] for line in lines)
            # the error draw depends on how often a request was submitted, so a resubmission can succeed
            attempts = {line["custom_id"]: self.submitted[line["custom_id"]] for line in lines}
            self._runs[bid] = {"lines": lines, "errors": errors, "start": self.now, "ordinal": ordinal,
                               "cancel_at": None, "attempts": attempts, "endpoint": endpoint}
            for other in self.batches:
                self._update(other)
            self.max_open = max(self.max_open, sum(b["status"] not in TERMINAL for b in self.batches.values()))
            return 200, dict(batch)

    def retrieve(self, bid: str, poll: bool = True) -> dict | None:
        with self._lock:
            if bid not in self.batches:
                return None
            if poll:
                self.polls += 1
                self._offset += self.config.advance_per_poll
            self._update(bid)
            return json.loads(json.dumps(self.batches[bid]))

    def list(self, limit: int = 20, after: str | None = None) -> dict:
        with self._lock:
            ids = list(reversed(self.batches))  # newest first, as OpenAI lists them
            if after in ids:
                ids = ids[ids.index(after) + 1:]
            page = [self.retrieve(b, poll=False) for b in ids[:limit]]
            return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                    "last_id": page[-1]["id"] if page else None, "has_more": len(ids) > limit}

    def cancel(self, bid: str) -> dict | None:
        with self._lock:
            if bid not in self.batches:
                return None
            self._update(bid)
            batch, run = self.batches[bid], self._runs[bid]
            if batch["status"] not in TERMINAL and run["cancel_at"] is None:
                run["cancel_at"] = self.now
                batch["status"] = "cancelling"
                batch["cancelling_at"] = int(self.now)
            return json.loads(json.dumps(batch))

    # --- the state machine ---------------------------------------------------------------
    def _validate(self, content: bytes, ordinal: int, endpoint: str = ENDPOINT) -> tuple[list[dict], list[dict]]:
        cfg = self.config
        errors: list[dict] = []
        lines: list[dict] = []
        if len(content) > cfg.max_bytes:
            errors.append({"code": "file_too_large", "message": f"the input file has {len(content)} bytes; "
                                                                f"at most {cfg.max_bytes} allowed", "line": None})
        seen: set[str] = set()
        for number, raw in enumerate(content.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                ok = (isinstance(line, dict) and isinstance(line.get("custom_id"), str) and line.get("method") == "POST"
                      and line.get("url") == endpoint and isinstance(line.get("body"), dict))
            except ValueError:
                ok = False
            if not ok:
                errors.append({"code": "invalid_request", "message": "not a valid batch request line", "line": number})
                continue
            if line["custom_id"] in seen:
                errors.append({"code": "duplicate_custom_id", "message": f"custom_id {line['custom_id']} repeats",
                               "line": number})
            seen.add(line["custom_id"])
            lines.append(line)
        if len(lines) > cfg.max_requests:
            errors.append({"code": "too_many_requests", "message": f"{len(lines)} requests in one batch; at most "
                                                                   f"{cfg.max_requests} allowed", "line": None})
        if not lines and not errors:
            errors.append({"code": "empty_file", "message": "the input file holds no requests", "line": None})
        if ordinal in cfg.fail:
            errors.append({"code": "injected_failure", "message": "injected batch validation failure", "line": None})
        return lines, errors

    def _update(self, bid: str) -> None:
        batch, run, cfg = self.batches[bid], self._runs[bid], self.config
        if batch["status"] in TERMINAL:
            return
        elapsed = self.now - run["start"]
        n = len(run["lines"])
        if run["errors"] and elapsed >= cfg.validate_seconds:
            batch.update(status="failed", failed_at=int(self.now),
                         errors={"object": "list", "data": run["errors"]})
            return
        if run["cancel_at"] is not None:
            running = max(0.0, run["cancel_at"] - run["start"] - cfg.validate_seconds)
            self._finish(bid, "cancelled", self._done(running, n), "cancelled_at")
            return
        if elapsed < cfg.validate_seconds:
            return
        if batch["in_progress_at"] is None:
            batch.update(status="in_progress", in_progress_at=int(run["start"] + cfg.validate_seconds))
        done = self._done(elapsed - cfg.validate_seconds, n)
        if run["ordinal"] in cfg.expire and done >= int(cfg.expire_done * n):
            self._finish(bid, "expired", int(cfg.expire_done * n), "expired_at")
        elif done >= n:
            self._finish(bid, "completed", n, "completed_at")
        else:
            failed = sum(1 for line in run["lines"][:done] if self._errs(line["custom_id"], run))
            batch["request_counts"] = {"total": n, "completed": done - failed, "failed": failed}

    def _done(self, running: float, n: int) -> int:
        run_seconds = self.config.run_seconds
        return n if run_seconds <= 0 else min(n, int(n * running / run_seconds))

    def _errs(self, custom_id: str, run: dict) -> bool:
        attempt = run["attempts"].get(custom_id, 0)
        digest = hashlib.sha256(f"{self.config.seed}\x00batch\x00{attempt}\x00{custom_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.config.error_rate

    def _finish(self, bid: str, status: str, done: int, stamp: str) -> None:
        batch, run = self.batches[bid], self._runs[bid]
        out, err = [], []
        for i, line in enumerate(run["lines"]):
            cid = line["custom_id"]
            rid = f"batch_req_{_short(bid + cid)}"
            if i >= done:
                if status == "expired":
                    err.append({"id": rid, "custom_id": cid, "response": None, "error": {
                        "code": "batch_expired",
                        "message": "This request could not be executed before the completion window expired."}})
                continue
            if self._errs(cid, run):
                err.append({"id": rid, "custom_id": cid, "error": None, "response": {
                    "status_code": 500, "request_id": rid,
                    "body": _error("injected batch request failure", "server_error")}})
                continue
            code, body = self._answer(line["body"], run["endpoint"])
            record = {"id": rid, "custom_id": cid, "error": None,
                      "response": {"status_code": code, "request_id": rid, "body": body}}
            (out if code == 200 else err).append(record)
        now = int(self.now)
        if out:
            batch["output_file_id"] = self._write(f"{bid}_output.jsonl", out)
        if err:
            batch["error_file_id"] = self._write(f"{bid}_error.jsonl", err)
        failed = sum(1 for r in err if r["response"] is not None)
        batch["request_counts"] = {"total": len(run["lines"]), "completed": len(out), "failed": failed}
        batch.update({"status": status, stamp: now, "finalizing_at": now})

    def _write(self, name: str, records: list[dict]) -> str:
        data = "".join(json.dumps(r) + "\n" for r in records).encode()
        return self.add_file(data, name, "batch_output")["id"]

    def stats(self) -> dict:
        with self._lock:
            return {"batches": self.created, "polls": self.polls,
                    "statuses": dict(Counter(b["status"] for b in self.batches.values())),
                    "submitted_requests": sum(self.submitted.values()),
                    "max_submissions_per_request": max(self.submitted.values(), default=0)}


def _short(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
