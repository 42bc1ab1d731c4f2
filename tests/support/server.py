"""A chat-completions, completions and Batch API server on loopback that misbehaves on purpose.

Built on ``aiohttp.web``. It speaks enough of the OpenAI API for the API backends:
``POST /v1/chat/completions``, ``POST /v1/completions`` (text prompts: the query is what
follows the last ``User query:`` or ``USER:``, up to `` ASSISTANT:``), TGI's generate
route (``POST /`` or ``/generate``, for huggingface_hub's ``text_generation``) and
``GET /v1/models``, and the Batch API's
``POST /v1/files`` (multipart, purpose ``batch``), ``GET /v1/files/{id}[/content]``,
``POST /v1/batches``, ``GET /v1/batches[/{id}]`` and ``POST /v1/batches/{id}/cancel``
(see :mod:`support.batch_api`). It answers with keyword tags (like
:class:`KeywordBackend`) and injects faults at chosen rates: 500s, 429s with
``Retry-After``, hangs, dropped connections, bodies cut off mid-transfer, answers
that are not JSON, answers that are not tag JSON, format rejections, latency; and
with ``score_logprobs``, the log-probabilities of a scorer's first token (issue 25); and
the hostile answers of issue 24: a content-filter stop, content as a list of parts,
a refusal, content that is a JSON object, answers cut at the request's ``max_tokens``
(``finish_reason: "length"``), and error messages that echo the caller's key.
Which fault a request gets is a pure function of (seed, query, attempt number), so
runs are reproducible and a retried request can succeed. ``GET /stats`` returns
what it has seen: requests per query and per endpoint, finish reasons sent, and the
last request bodies (so a test can assert the exact prompt).

It binds to 127.0.0.1 only and stops by itself after ``lifetime`` seconds.
Run it in a thread (``with FakeChatServer(...) as server``) or as a process:
``python -m support.server --latency 0.1 --lifetime 300``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, fields

from aiohttp import web

from instag_hf.tagging.backends.keyword import keyword_tags
from .batch_api import BatchConfig, BatchStore

HOST = "127.0.0.1"
# The order is part of the fault draw: new outcomes go at the end, so old seeds keep their faults.
OUTCOMES = ("error_500", "rate_limit_429", "hang", "drop", "malformed", "bad_content", "cut_off",
            "content_filter", "content_parts", "refusal", "content_object", "omit_logprobs")
#: the answering routes, as counted in ``requests_by_endpoint``
ENDPOINTS = ("chat", "completions", "generate")
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
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
    content_filter: float = 0.0  # 200 with a third of the answer and finish_reason "content_filter"
    content_parts: float = 0.0  # chat: message.content as a list of text parts (the format allows it)
    refusal: float = 0.0  # chat: message.content null and message.refusal set
    content_object: float = 0.0  # message.content (or a completion's text) is a JSON object, not text
    latency: float = 0.0  # seconds before every answer
    retry_after: float = 0.1  # seconds, sent with 429s
    hang_seconds: float = 30.0
    reject_json_schema: bool = False  # refuse response_format json_schema, like some servers
    reject_json_object: bool = False  # refuse response_format json_object too
    rejection_style: str = "openai"  # how: "openai" (400 naming the format) or "llama_cpp" (500 validation error)
    max_query_chars: int = 0  # longer queries get a 400 "maximum context length" error (0: no limit)
    enforce_max_tokens: bool = False  # answers over max_tokens*4 characters are cut there: finish_reason "length"
    tags_per_answer: int = 3  # keyword tags per answer
    echo_key: bool = False  # every error message repeats the Authorization header it got (Basic decoded)
    reject_text_json_schema: bool = False  # refuse json_schema on /v1/completions (and TGI's grammar)
    reject_text_json_object: bool = False  # refuse json_object on /v1/completions
    seed: int = 0
    #: scoring requests (those asking for logprobs) get a digit 1..6 and the first position's
    #: top_logprobs from :func:`fake_score_logprobs` of the prompt, on both answering endpoints
    score_logprobs: bool = False
    omit_logprobs: float = 0.0  # with score_logprobs: the answer comes without logprobs

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


def query_of_prompt(prompt) -> str:
    """The query in a text prompt: after the last ``User query:`` (else ``USER:``), up to `` ASSISTANT:``."""
    text = prompt if isinstance(prompt, str) else ""
    for marker in ("User query:", "USER:"):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
            break
    if " ASSISTANT:" in text:
        text = text.rsplit(" ASSISTANT:", 1)[0]
    return text.strip()


#: the tokens :func:`fake_score_logprobs` gives a probability: Deita's six score digits, a spaced
#: digit (a scorer must read the exact one) and a word
SCORE_VOCAB = ("1", "2", "3", "4", "5", "6", " 3", "The")


def fake_score_logprobs(text: str) -> dict[str, float]:
    """``token -> logprob`` over :data:`SCORE_VOCAB`, a pure function of the prompt ``text``."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    logits = [b / 32.0 for b in digest[: len(SCORE_VOCAB)]]
    peak = max(logits)
    norm = peak + math.log(sum(math.exp(v - peak) for v in logits))
    return {token: v - norm for token, v in zip(SCORE_VOCAB, logits)}


def _asked_logprobs(endpoint: str, body: dict) -> int:
    """How many top log-probabilities ``body`` asks per position (0: none)."""
    if endpoint == "completions":
        k = body.get("logprobs")
        return int(k) if isinstance(k, int) and not isinstance(k, bool) else 0
    if endpoint == "chat" and body.get("logprobs") is True:
        k = body.get("top_logprobs")
        return int(k) if isinstance(k, int) and not isinstance(k, bool) else 1
    return 0


def _score_text(endpoint: str, body: dict) -> str:
    """The whole prompt of a scoring request: a completion's prompt, a chat's last user message."""
    if endpoint == "completions":
        return body.get("prompt") if isinstance(body.get("prompt"), str) else ""
    users = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else ""


def query_id(query: str) -> str:
    return hashlib.sha1(query.encode()).hexdigest()


class FakeChatServer:
    """The server; ``start()`` runs it on its own event loop in a daemon thread.

    ``faults`` shape the answering endpoints, ``batch`` the Batch API (its clock moves with
    :meth:`advance`), ``api_key`` makes every route require ``Bearer <api_key>``,
    ``models`` limits the model names it accepts. The last ``max_bodies`` request bodies
    are kept in :attr:`bodies` as ``{"endpoint", "body"}``.
    """

    def __init__(self, faults: Faults | None = None, port: int = 0, lifetime: float = 600.0,
                 api_key: str | None = None, models: tuple[str, ...] | None = None,
                 batch: BatchConfig | None = None, max_bodies: int = 10_000):
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
        self.formats_by_endpoint: dict[str, Counter] = {}
        self.requests_by_endpoint: Counter = Counter()
        self.finish_reasons: Counter = Counter()
        self.bodies: deque = deque(maxlen=max_bodies)
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
        app = web.Application(middlewares=[self._echo, self._auth], client_max_size=1024**3)
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
            "formats_by_endpoint": {k: dict(v) for k, v in self.formats_by_endpoint.items()},
            "requests_by_endpoint": dict(self.requests_by_endpoint),
            "finish_reasons": dict(self.finish_reasons),
            "bodies": list(self.bodies),
            "max_in_flight": self.max_in_flight,
            "batch": self.batches.stats(),
        }

    # --- HTTP ------------------------------------------------------------------------
    @web.middleware
    async def _echo(self, request: web.Request, handler):
        """With ``echo_key``, an error's message repeats the caller's Authorization header (a
        Basic pair decoded too), as careless gateways do: the client must mask it."""
        response = await handler(request)
        header = request.headers.get("Authorization")
        if not (self.faults.echo_key and header and response.status >= 400 and isinstance(response, web.Response)):
            return response
        scheme, _, token = header.partition(" ")
        echo = f" (request sent Authorization: {header}; key {token}"
        if scheme.lower() == "basic":
            try:
                echo += f"; credentials {base64.b64decode(token).decode()}"
            except (binascii.Error, UnicodeDecodeError):
                pass
        echo += ")"
        try:
            payload = json.loads(response.body)
        except (TypeError, ValueError):
            return response
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            error["message"] = f"{error.get('message', '')}{echo}"
        elif isinstance(error, str):
            payload["error"] = error + echo
        else:
            return response
        response.body = json.dumps(payload).encode()
        return response

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
        endpoint = None
        if method == "POST" and parts[-2:] == ["chat", "completions"]:
            endpoint = "chat"
        elif method == "POST" and parts[-1:] == ["completions"]:
            endpoint = "completions"
        elif method == "POST" and parts in ([], ["generate"]):
            endpoint = "generate"
        if endpoint is not None:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                return await self._complete(request, endpoint)
            finally:
                self._in_flight -= 1
        if parts[:1] == ["files"]:
            return await self._files(request, parts[1:])
        if parts[:1] == ["batches"]:
            return await self._batch_route(request, parts[1:])
        return _json(404, {"error": {"message": f"no route {method} {request.path}"}})

    # --- answers ----------------------------------------------------------------------
    def _format_rejection(self, rf: str, endpoint: str = "chat") -> tuple[int, dict]:
        if endpoint == "generate":  # TGI: a 422 validation error naming the grammar
            return 422, {"error": "Input validation error: grammar is not supported by this server",
                         "error_type": "validation"}
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

    @staticmethod
    def _query(endpoint: str, body: dict) -> str:
        if endpoint == "completions":
            return query_of_prompt(body.get("prompt"))
        if endpoint == "generate":
            return query_of_prompt(body.get("inputs"))
        return query_of(body)

    @staticmethod
    def _format(endpoint: str, body: dict) -> str:
        if endpoint == "generate":
            grammar = (body.get("parameters") or {}).get("grammar") or {}
            if grammar.get("type") != "json":
                return "none"
            return "json_object" if grammar.get("value") == {"type": "object"} else "json_schema"
        return _response_format(body)

    def _refusal(self, body: dict, endpoint: str = "chat") -> tuple[int, dict] | None:
        """The error a request gets before any fault is drawn (unknown model, format, length)."""
        if self.models is not None and endpoint != "generate" and body.get("model") not in self.models:
            self.outcomes["unknown_model"] += 1
            return 404, {"error": {"message": f"model {body.get('model')!r} does not exist"}}
        rf = self._format(endpoint, body)
        text = endpoint != "chat"
        rejected = {"json_schema": self.faults.reject_text_json_schema if text else self.faults.reject_json_schema,
                    "json_object": self.faults.reject_text_json_object if text else self.faults.reject_json_object}
        if rejected.get(rf):
            self.outcomes["rejected_response_format"] += 1
            return self._format_rejection(rf, endpoint)
        query = self._query(endpoint, body)
        if self.faults.max_query_chars and len(query) > self.faults.max_query_chars:
            self.outcomes["context_length"] += 1
            return 400, {"error": {
                "message": f"This model's maximum context length is {self.faults.max_query_chars // 4} tokens. "
                           f"However, your request has {len(query) // 4} input tokens. Please reduce the length "
                           "of the input messages.", "type": "BadRequestError", "code": 400}}
        return None

    def _record(self, endpoint: str, body: dict) -> None:
        self.requests_by_endpoint[endpoint] += 1
        rf = self._format(endpoint.rpartition(":")[2], body)
        self.response_formats[rf] += 1
        self.formats_by_endpoint.setdefault(endpoint, Counter())[rf] += 1
        self.bodies.append({"endpoint": endpoint, "body": body})

    def _completion(self, body: dict, raw_size: int, bad_content: bool = False, endpoint: str = "chat",
                    outcome: str = "ok"):
        """The answer to ``body`` on ``endpoint``, shaped by ``outcome`` (one of :data:`OUTCOMES` or ok)."""
        faults = self.faults
        if faults.score_logprobs and endpoint in ("chat", "completions") and _asked_logprobs(endpoint, body):
            return self._score_completion(body, raw_size, endpoint, outcome)
        query = self._query(endpoint, body)
        tags = keyword_tags(query, faults.tags_per_answer)
        rf = self._format(endpoint, body)
        if bad_content or outcome == "bad_content":
            content = "I would tag this as helpful, mostly."
        elif rf == "json_object" or (rf == "json_schema" and endpoint == "chat"):
            content = json.dumps({"tags": tags})
        else:  # the bare array: what the text endpoints' schema asks for, and plain answers
            content = json.dumps(tags)
        finish = "stop"
        budget = (body.get("parameters") or {}).get("max_new_tokens") if endpoint == "generate" \
            else body.get("max_tokens")
        if faults.enforce_max_tokens and isinstance(budget, int) and len(content) > budget * 4:
            content, finish = content[: budget * 4], "length"
        if outcome == "content_filter" and endpoint != "generate":
            content, finish = content[: len(content) // 3], "content_filter"
        completion_tokens = max(1, len(content) // 4)
        self.finish_reasons[finish] += 1
        answer = {"tags": tags} if outcome == "content_object" else content
        if endpoint == "generate":
            return [{"generated_text": answer, "details": {
                "finish_reason": "length" if finish == "length" else "eos_token",
                "generated_tokens": completion_tokens, "seed": None, "prefill": [], "tokens": []}}]
        usage = {"prompt_tokens": raw_size // 4, "completion_tokens": completion_tokens,
                 "total_tokens": raw_size // 4 + completion_tokens}
        if endpoint == "completions":
            return {"id": f"cmpl-{query_id(query)[:12]}", "object": "text_completion", "created": int(time.time()),
                    "model": body.get("model", "fake-tagger"),
                    "choices": [{"index": 0, "text": answer, "logprobs": None, "finish_reason": finish}],
                    "usage": usage}
        message = {"role": "assistant", "content": answer}
        if outcome == "content_parts":
            half = len(content) // 2
            message["content"] = [{"type": "text", "text": content[:half]}, {"type": "text", "text": content[half:]}]
        elif outcome == "refusal":
            message.update(content=None, refusal=REFUSAL_TEXT)
        return {
            "id": f"chatcmpl-{query_id(query)[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake-tagger"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }

    def _score_completion(self, body: dict, raw_size: int, endpoint: str, outcome: str) -> dict:
        """A scoring answer: the likeliest token of :func:`fake_score_logprobs` and, unless the outcome
        is ``omit_logprobs``, the first position's top ``k`` log-probabilities in the endpoint's shape."""
        query = self._query(endpoint, body)
        top = sorted(fake_score_logprobs(_score_text(endpoint, body)).items(), key=lambda kv: -kv[1])
        top = top[: _asked_logprobs(endpoint, body)]
        token, logprob = top[0]
        keep = outcome != "omit_logprobs"
        self.finish_reasons["length"] += 1
        usage = {"prompt_tokens": raw_size // 4, "completion_tokens": 1, "total_tokens": raw_size // 4 + 1}
        if endpoint == "completions":
            logprobs = {"tokens": [token], "token_logprobs": [logprob], "top_logprobs": [dict(top)],
                        "text_offset": [0]} if keep else None
            return {"id": f"cmpl-{query_id(query)[:12]}", "object": "text_completion", "created": int(time.time()),
                    "model": body.get("model", "fake-tagger"), "usage": usage,
                    "choices": [{"index": 0, "text": token, "logprobs": logprobs, "finish_reason": "length"}]}
        entry = {"token": token, "logprob": logprob, "bytes": list(token.encode()),
                 "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in top]}
        return {"id": f"chatcmpl-{query_id(query)[:12]}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake-tagger"), "usage": usage,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": token},
                             "logprobs": {"content": [entry]} if keep else None, "finish_reason": "length"}]}

    async def _complete(self, request: web.Request, endpoint: str = "chat") -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return _json(400, {"error": {"message": "request body is not JSON"}})
        if not isinstance(body, dict):
            return _json(400, {"error": {"message": "request body must be a JSON object"}})
        refused = self._refusal(body, endpoint)
        if refused is not None:
            return _json(*refused)
        query = self._query(endpoint, body)
        self._record(endpoint, body)
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
        data = json.dumps(self._completion(body, len(raw), endpoint=endpoint, outcome=outcome)).encode()
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

    def _batch_answer(self, body: dict, url: str = "/v1/chat/completions") -> tuple[int, dict]:
        """One request of a batch: the endpoint's answer without transport faults."""
        endpoint = "completions" if url.rstrip("/").endswith("/v1/completions") else "chat"
        refused = self._refusal(body, endpoint)
        if refused is not None:
            return refused
        query = self._query(endpoint, body)
        qid = query_id(query)
        self._record(f"batch:{endpoint}", body)
        self.requests_by_query[qid] += 1
        self.answered_by_query[qid] += 1
        outcome = self._fault(query, self.requests_by_query[qid])
        if outcome not in ("content_filter", "content_parts", "refusal", "content_object"):
            outcome = "ok"  # a batch has no transport to fault (and kept its answers clean before these)
        return 200, self._completion(body, len(json.dumps(body)), endpoint=endpoint, outcome=outcome)

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
