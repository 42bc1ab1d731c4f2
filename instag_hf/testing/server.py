"""A chat-completions and Batch API server on loopback that misbehaves on purpose.

Built on ``aiohttp.web``. It speaks enough of the OpenAI API for the API backends:
``POST /v1/chat/completions`` and ``GET /v1/models``, and the Batch API's
``POST /v1/files`` (multipart, purpose ``batch``), ``GET /v1/files/{id}[/content]``,
``POST /v1/batches``, ``GET /v1/batches[/{id}]`` and ``POST /v1/batches/{id}/cancel``
(see :mod:`instag_hf.testing.batch_api`). It answers with keyword tags (like
:class:`KeywordBackend`) and injects faults at chosen rates: 500s, 429s with
``Retry-After``, hangs, dropped connections, bodies cut off mid-transfer, answers
that are not JSON, answers that are not tag JSON, format rejections, latency.
Which fault a request gets is a pure function of (seed, query, attempt number), so
runs are reproducible and a retried request can succeed. ``GET /stats`` returns
what it has seen, including how often each query was requested and answered.

It binds to 127.0.0.1 only and stops by itself after ``lifetime`` seconds.
Run it in a thread (``with FakeChatServer(...) as server``) or as a process:
``python -m instag_hf.testing.server --latency 0.1 --lifetime 300``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields

from aiohttp import web

from . import keyword_tags
from .batch_api import BatchConfig, BatchStore

HOST = "127.0.0.1"
# The order is part of the fault draw: new outcomes go at the end, so old seeds keep their faults.
OUTCOMES = ("error_500", "rate_limit_429", "hang", "drop", "malformed", "bad_content", "cut_off")
_FILE_ID = re.compile(r"^file-[0-9a-f]+$")


@dataclass
class Faults:
    """Probabilities of each fault per request, plus timing knobs."""

    error_500: float = 0.0
    rate_limit_429: float = 0.0
    hang: float = 0.0
    drop: float = 0.0  # the connection closes without an answer
    malformed: float = 0.0  # 200 whose (complete) body is JSON cut in half: not JSON
    bad_content: float = 0.0  # 200 with a well-formed envelope whose content is not tag JSON
    cut_off: float = 0.0  # 200 whose body stops mid-transfer, short of its Content-Length
    latency: float = 0.0  # seconds before every answer
    retry_after: float = 0.1  # seconds, sent with 429s
    hang_seconds: float = 30.0
    reject_json_schema: bool = False  # refuse response_format json_schema, like some servers
    reject_json_object: bool = False  # refuse response_format json_object too
    rejection_style: str = "openai"  # how: "openai" (400 naming the format) or "llama_cpp" (500 validation error)
    max_query_chars: int = 0  # longer queries get a 400 "maximum context length" error (0: no limit)
    seed: int = 0

    def __post_init__(self):
        total = sum(getattr(self, name) for name in OUTCOMES)
        if total > 1 or any(getattr(self, name) < 0 for name in OUTCOMES):
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1, got {total}")


def query_of(body: dict) -> str:
    """The tagged query: the last user message, between [begin]/[end] when present."""
    users = [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"]
    text = users[-1] if users else ""
    if isinstance(text, list):
        text = " ".join(p.get("text", "") for p in text if isinstance(p, dict))
    if "[begin]" in text and "[end]" in text:
        text = text.rsplit("[begin]", 1)[1].rsplit("[end]", 1)[0].strip()
    return text


def query_id(query: str) -> str:
    return hashlib.sha1(query.encode()).hexdigest()


class FakeChatServer:
    """The server; ``start()`` runs it on its own event loop in a daemon thread.

    ``faults`` shape the chat endpoint, ``batch`` the Batch API (its clock moves with
    :meth:`advance`), ``api_key`` makes every route require ``Bearer <api_key>``,
    ``models`` limits the model names it accepts.
    """

    def __init__(self, faults: Faults | None = None, port: int = 0, lifetime: float = 600.0,
                 api_key: str | None = None, models: tuple[str, ...] | None = None,
                 batch: BatchConfig | None = None):
        self.faults = faults or Faults()
        self.api_key = api_key
        self.models = models
        self.port = port
        self.lifetime = lifetime
        self.batches = BatchStore(batch, answer=self._batch_answer)
        self.outcomes: Counter = Counter()
        self.requests_by_query: Counter = Counter()
        self.answered_by_query: Counter = Counter()
        self.response_formats: Counter = Counter()
        self.paths: Counter = Counter()
        self.max_in_flight = 0
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._failed: BaseException | None = None

    # --- life cycle ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> "FakeChatServer":
        self._thread = threading.Thread(target=self._run, name="fake-chat-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._failed is not None:
            raise RuntimeError(f"fake chat server did not start: {self._failed!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and not self._stopped.is_set():
            try:
                self._loop.call_soon_threadsafe(self._done.set)
            except RuntimeError:  # the loop already closed
                pass
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def advance(self, seconds: float) -> None:
        """Move the Batch API's clock on by ``seconds``."""
        self.batches.advance(seconds)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._failed = exc
            self._ready.set()
        finally:
            loop.close()
            self._stopped.set()

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _serve(self) -> None:
        self._done = asyncio.Event()
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.port, backlog=1024)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._done.wait(), timeout=self.lifetime)
        except asyncio.TimeoutError:
            pass
        await runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:  # handlers still hanging on purpose
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stats(self) -> dict:
        return {
            "outcomes": dict(self.outcomes),
            "requests": sum(self.requests_by_query.values()),
            "queries": len(self.requests_by_query),
            "max_requests_per_query": max(self.requests_by_query.values(), default=0),
            "requests_by_query": dict(self.requests_by_query),
            "answered_by_query": dict(self.answered_by_query),
            "response_formats": dict(self.response_formats),
            "max_in_flight": self.max_in_flight,
            "batch": self.batches.stats(),
        }

    # --- HTTP ------------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler):
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.outcomes["unauthorized"] += 1
            return _json(401, {"error": {"message": "invalid or missing API key", "type": "invalid_request_error"}})
        return await handler(request)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        parts = [p for p in request.path.split("/") if p]
        if parts and parts[0] == "v1":
            parts = parts[1:]
        self.paths[f"{method} /{'/'.join(parts[:1])}"] += 1
        if method == "GET" and parts == ["stats"]:
            return _json(200, self.stats())
        if method == "GET" and parts[-1:] == ["models"]:
            return _json(200, {"object": "list", "data": [{"id": "fake-tagger", "object": "model"}]})
        if method == "POST" and parts[-2:] == ["chat", "completions"]:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                return await self._complete(request)
            finally:
                self._in_flight -= 1
        if parts[:1] == ["files"]:
            return await self._files(request, parts[1:])
        if parts[:1] == ["batches"]:
            return await self._batch_route(request, parts[1:])
        return _json(404, {"error": {"message": f"no route {method} {request.path}"}})

    # --- chat completions ------------------------------------------------------------
    def _format_rejection(self, rf: str) -> tuple[int, dict]:
        if self.faults.rejection_style == "llama_cpp":  # a FastAPI validation error, sent as a 500
            allowed = "'text' or 'json_object'" if rf == "json_schema" else "'text'"
            detail = [{"type": "literal_error", "loc": ["body", "response_format", "type"],
                       "msg": f"Input should be {allowed}", "input": rf}]
            return 500, {"error": {"message": str(detail), "type": "internal_server_error"}}
        return 400, {"error": {"message": f"Invalid parameter: 'response_format' of type '{rf}' is not supported "
                                          "with this model.", "type": "invalid_request_error",
                               "param": "response_format"}}

    def _fault(self, query: str, attempt: int) -> str:
        digest = hashlib.sha256(f"{self.faults.seed}\x00{attempt}\x00{query}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        edge = 0.0
        for name in OUTCOMES:
            edge += getattr(self.faults, name)
            if u < edge:
                return name
        return "ok"

    def _refusal(self, body: dict) -> tuple[int, dict] | None:
        """The error a request gets before any fault is drawn (unknown model, format, length)."""
        if self.models is not None and body.get("model") not in self.models:
            self.outcomes["unknown_model"] += 1
            return 404, {"error": {"message": f"model {body.get('model')!r} does not exist"}}
        rf = _response_format(body)
        if (rf == "json_schema" and self.faults.reject_json_schema) or (
                rf == "json_object" and self.faults.reject_json_object):
            self.outcomes["rejected_response_format"] += 1
            return self._format_rejection(rf)
        query = query_of(body)
        if self.faults.max_query_chars and len(query) > self.faults.max_query_chars:
            self.outcomes["context_length"] += 1
            return 400, {"error": {
                "message": f"This model's maximum context length is {self.faults.max_query_chars // 4} tokens. "
                           f"However, your request has {len(query) // 4} input tokens. Please reduce the length "
                           "of the input messages.", "type": "BadRequestError", "code": 400}}
        return None

    def _completion(self, body: dict, raw_size: int, bad_content: bool = False) -> dict:
        query = query_of(body)
        tags = keyword_tags(query)
        rf = _response_format(body)
        if bad_content:
            content = "I would tag this as helpful, mostly."
        elif rf in ("json_schema", "json_object"):
            content = json.dumps({"tags": tags})
        else:
            content = json.dumps(tags)
        completion_tokens = max(1, len(content) // 4)
        return {
            "id": f"chatcmpl-{query_id(query)[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake-tagger"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": raw_size // 4, "completion_tokens": completion_tokens,
                      "total_tokens": raw_size // 4 + completion_tokens},
        }

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return _json(400, {"error": {"message": "request body is not JSON"}})
        refused = self._refusal(body)
        if refused is not None:
            return _json(*refused)
        query = query_of(body)
        self.response_formats[_response_format(body)] += 1
        qid = query_id(query)
        self.requests_by_query[qid] += 1
        outcome = self._fault(query, self.requests_by_query[qid])
        self.outcomes[outcome] += 1
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        if outcome == "error_500":
            return _json(500, {"error": {"message": "injected server error", "type": "server_error"}})
        if outcome == "rate_limit_429":
            return _json(429, {"error": {"message": "injected rate limit", "type": "rate_limit_error"}},
                         {"Retry-After": f"{self.faults.retry_after:g}"})
        if outcome == "hang":
            await asyncio.sleep(self.faults.hang_seconds)
            return _drop(request)
        if outcome == "drop":
            return _drop(request)
        data = json.dumps(self._completion(body, len(raw), outcome == "bad_content")).encode()
        if outcome == "malformed":
            return web.Response(status=200, body=data[: len(data) // 2], content_type="application/json")
        if outcome == "cut_off":
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            return _drop(request, response)
        self.answered_by_query[qid] += 1
        return web.Response(status=200, body=data, content_type="application/json")

    def _batch_answer(self, body: dict) -> tuple[int, dict]:
        """One request of a batch: the chat endpoint's answer without transport faults."""
        refused = self._refusal(body)
        if refused is not None:
            return refused
        qid = query_id(query_of(body))
        self.response_formats[_response_format(body)] += 1
        self.requests_by_query[qid] += 1
        self.answered_by_query[qid] += 1
        return 200, self._completion(body, len(json.dumps(body)))

    # --- the Batch API ---------------------------------------------------------------
    async def _files(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        store = self.batches
        if request.method == "POST" and not rest:
            if not request.content_type.startswith("multipart/"):
                return _json(400, {"error": {"message": "upload files as multipart/form-data"}})
            form = await request.post()
            upload, purpose = form.get("file"), form.get("purpose")
            if not hasattr(upload, "file") or purpose not in ("batch", "fine-tune", "assistants", "user_data"):
                return _json(400, {"error": {"message": "need a 'file' part and a valid 'purpose'"}})
            return _json(200, store.add_file(upload.file.read(), upload.filename or "upload", purpose))
        if request.method == "GET" and rest and _FILE_ID.match(rest[0]):
            if len(rest) == 2 and rest[1] == "content":
                content = store.content(rest[0])
                if content is not None:
                    return web.Response(status=200, body=content, content_type="application/octet-stream")
            elif len(rest) == 1:
                meta = store.file(rest[0])
                if meta is not None:
                    return _json(200, meta)
        return _json(404, {"error": {"message": f"No such File object: {'/'.join(rest)}",
                                     "type": "invalid_request_error"}})

    async def _batch_route(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        store = self.batches
        if request.method == "POST" and not rest:
            try:
                body = await request.json()
            except ValueError:
                return _json(400, {"error": {"message": "request body is not JSON"}})
            return _json(*store.create(body.get("input_file_id"), body.get("endpoint"),
                                       body.get("completion_window"), body.get("metadata")))
        if request.method == "GET" and not rest:
            limit = int(request.query.get("limit", 20))
            return _json(200, store.list(limit, request.query.get("after")))
        found = None
        if request.method == "GET" and len(rest) == 1:
            found = store.retrieve(rest[0])
        elif request.method == "POST" and rest[1:] == ["cancel"]:
            found = store.cancel(rest[0])
        if found is None:
            return _json(404, {"error": {"message": f"No such Batch object: {'/'.join(rest)}",
                                         "type": "invalid_request_error"}})
        return _json(200, found)


def _response_format(body: dict) -> str:
    return (body.get("response_format") or {}).get("type", "none")


def _json(status: int, payload, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(), content_type="application/json",
                        headers=headers)


def _drop(request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the connection under the handler: the client sees it drop (or a body cut short)."""
    if request.transport is not None:
        request.transport.abort()
    return response if response is not None else web.Response(status=200)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--lifetime", type=float, default=600.0, help="stop after this many seconds")
    for name, value in asdict(Faults()).items():
        if isinstance(value, bool):
            ap.add_argument(f"--{name.replace('_', '-')}", action="store_true")
        else:
            ap.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    for f in fields(BatchConfig):
        if f.name in ("expire", "fail"):
            ap.add_argument(f"--batch-{f.name.replace('_', '-')}", type=int, nargs="*", default=[],
                            help="creation ordinals of batches that " + ("expire" if f.name == "expire" else "fail"))
        else:
            ap.add_argument(f"--batch-{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = vars(ap.parse_args(argv))
    port, lifetime = args.pop("port"), args.pop("lifetime")
    batch = BatchConfig(**{k[len("batch_"):]: args.pop(k) for k in list(args) if k.startswith("batch_")})
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    server = FakeChatServer(Faults(**args), port=port, lifetime=lifetime, batch=batch).start()
    print(server.url, flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
