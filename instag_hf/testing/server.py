"""A chat-completions server on loopback that misbehaves on purpose.

It speaks enough of the OpenAI API (``POST /v1/chat/completions``, ``GET /v1/models``)
for the API backend, answers with keyword tags (like :class:`KeywordBackend`), and
injects faults at chosen rates: 500s, 429s with ``Retry-After``, hangs, dropped
connections, truncated response bodies, answers that are not tag JSON, latency.
Which fault a request gets is a pure function of (seed, query, attempt number),
so runs are reproducible and a retried request can succeed. ``GET /stats`` returns
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
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass

from . import keyword_tags

HOST = "127.0.0.1"
OUTCOMES = ("error_500", "rate_limit_429", "hang", "drop", "malformed", "bad_content")


@dataclass
class Faults:
    """Probabilities of each fault per request, plus timing knobs."""

    error_500: float = 0.0
    rate_limit_429: float = 0.0
    hang: float = 0.0
    drop: float = 0.0
    malformed: float = 0.0  # 200 with a response body cut mid-JSON
    bad_content: float = 0.0  # 200 with a well-formed envelope whose content is not tag JSON
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
    """The server; ``start()`` runs it on its own event loop in a daemon thread."""

    def __init__(self, faults: Faults | None = None, port: int = 0, lifetime: float = 600.0,
                 api_key: str | None = None, models: tuple[str, ...] | None = None):
        self.faults = faults or Faults()
        self.api_key = api_key
        self.models = models
        self.port = port
        self.lifetime = lifetime
        self.outcomes: Counter = Counter()
        self.requests_by_query: Counter = Counter()
        self.answered_by_query: Counter = Counter()
        self.response_formats: Counter = Counter()
        self.max_in_flight = 0
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()

    # --- life cycle ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> "FakeChatServer":
        self._thread = threading.Thread(target=self._run, name="fake-chat-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake chat server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and not self._stopped.is_set():
            self._loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()
            self._stopped.set()

    async def _serve(self) -> None:
        self._done = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, HOST, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._done.wait(), timeout=self.lifetime)
        except asyncio.TimeoutError:
            pass
        self._server.close()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()

    def _shutdown(self) -> None:
        self._done.set()

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
        }

    # --- HTTP ------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
                    self.outcomes["unauthorized"] += 1
                    await self._send(writer, 401, {"error": {"message": "invalid or missing API key"}})
                    continue
                keep = await self._route(method, path, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    async def _send(self, writer, status: int, payload, extra: dict | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}
        head = [f"HTTP/1.1 {status} {reason.get(status, 'Error')}", "Content-Type: application/json",
                f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _route(self, method: str, path: str, raw: bytes, writer) -> bool:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            await self._send(writer, 200, {"object": "list", "data": [{"id": "fake-tagger", "object": "model"}]})
            return True
        if method == "GET" and path.rstrip("/") == "/stats":
            await self._send(writer, 200, self.stats())
            return True
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await self._send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await self._complete(raw, writer)
        finally:
            self._in_flight -= 1

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

    async def _complete(self, raw: bytes, writer) -> bool:
        try:
            body = json.loads(raw)
        except ValueError:
            await self._send(writer, 400, {"error": {"message": "request body is not JSON"}})
            return True
        if self.models is not None and body.get("model") not in self.models:
            self.outcomes["unknown_model"] += 1
            await self._send(writer, 404, {"error": {"message": f"model {body.get('model')!r} does not exist"}})
            return True
        rf = (body.get("response_format") or {}).get("type", "none")
        if (rf == "json_schema" and self.faults.reject_json_schema) or (
                rf == "json_object" and self.faults.reject_json_object):
            self.outcomes["rejected_response_format"] += 1
            await self._send(writer, *self._format_rejection(rf))
            return True
        query = query_of(body)
        if self.faults.max_query_chars and len(query) > self.faults.max_query_chars:
            self.outcomes["context_length"] += 1
            await self._send(writer, 400, {"error": {
                "message": f"This model's maximum context length is {self.faults.max_query_chars // 4} tokens. "
                           f"However, your request has {len(query) // 4} input tokens. Please reduce the length "
                           "of the input messages.", "type": "BadRequestError", "code": 400}})
            return True
        self.response_formats[rf] += 1
        qid = query_id(query)
        self.requests_by_query[qid] += 1
        outcome = self._fault(query, self.requests_by_query[qid])
        self.outcomes[outcome] += 1
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        if outcome == "error_500":
            await self._send(writer, 500, {"error": {"message": "injected server error"}})
            return True
        if outcome == "rate_limit_429":
            await self._send(writer, 429, {"error": {"message": "injected rate limit"}},
                             {"Retry-After": f"{self.faults.retry_after:g}"})
            return True
        if outcome == "hang":
            await asyncio.sleep(self.faults.hang_seconds)
            return False
        if outcome == "drop":
            return False
        tags = keyword_tags(query)
        content = "I would tag this as helpful, mostly." if outcome == "bad_content" else json.dumps(tags)
        if rf in ("json_schema", "json_object") and outcome != "bad_content":
            content = json.dumps({"tags": tags})
        completion_tokens = max(1, len(content) // 4)
        payload = {
            "id": f"chatcmpl-{qid[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake-tagger"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(raw) // 4, "completion_tokens": completion_tokens,
                      "total_tokens": len(raw) // 4 + completion_tokens},
        }
        if outcome == "malformed":
            data = json.dumps(payload).encode()
            await self._send(writer, 200, data[: len(data) // 2])
            return True
        await self._send(writer, 200, payload)
        self.answered_by_query[qid] += 1
        return True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--lifetime", type=float, default=600.0, help="stop after this many seconds")
    for name, value in asdict(Faults()).items():
        if isinstance(value, bool):
            ap.add_argument(f"--{name.replace('_', '-')}", action="store_true")
        else:
            ap.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = vars(ap.parse_args(argv))
    port, lifetime = args.pop("port"), args.pop("lifetime")
    server = FakeChatServer(Faults(**args), port=port, lifetime=lifetime).start()
    print(server.url, flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
