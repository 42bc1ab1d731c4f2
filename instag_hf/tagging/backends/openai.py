"""OpenAI-compatible chat-completions backend (OpenAI, gateways, `vllm serve`, llama.cpp server).

Requests run on a private asyncio loop in a background thread (so it also works
inside Jupyter's running loop), at most ``concurrency`` at a time, and answers are
handed back as they finish, so the Tagger caches each one at once. Transient
failures (timeouts, dropped connections, 408/409/429/5xx, a cut-off response body)
are retried with exponential backoff and full jitter, waiting at least what a
``Retry-After`` header asks. The API key is read from the environment at request
time; it is never stored on the object, pickled, logged, cached or published.

The transport is aiohttp rather than the official ``openai`` SDK on purpose:
``benchmarks/bench_api.py --clients aiohttp sdk sdk-aiohttp sdk-aiohttp-post`` measured
the SDK (its httpx connection pool and per-call request building) far below this
client at concurrency 64 (see benchmarks/RESULTS.md). The SDK runs the Batch API
(:mod:`~instag_hf.tagging.backends.openai_batch`), where a run makes a handful of calls.
"""

from __future__ import annotations

import asyncio
import atexit
import email.utils
import json
import logging
import os
import queue
import random
import threading
import time
from collections import Counter
from typing import Iterator

from ..prompts import TAGS_JSON_SCHEMA, Prompt
from .base import Backend, Completion, GenerationParams

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "none")
_FALLBACK = {"json_schema": "json_object", "json_object": "none"}
# Statuses a server may use to say "this response_format is not supported": 400/422 from
# OpenAI and vLLM, 500 from llama-cpp-python (its validation errors), 501 from a few gateways.
_FORMAT_REJECTION_STATUS = frozenset({400, 415, 422, 500, 501})
# Formats found unsupported, per (base URL, model): shared by every backend of this process.
_UNSUPPORTED: dict[tuple[str, str], set[str]] = {}
_UNSUPPORTED_LOCK = threading.Lock()
SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "instag_tags",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"tags": TAGS_JSON_SCHEMA},
            "required": ["tags"],
            "additionalProperties": False,
        },
    },
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class TransportError(Exception):
    """An attempt that got no HTTP answer: ``kind`` is timeout, connection or malformed_response."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


class _LoopThread:
    """An event loop running in a daemon thread, for submitting coroutines from sync code."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="instag-openai", daemon=True)
        self.thread.start()
        self.session = None
        atexit.register(self.close)

    def close(self) -> None:
        """Close the HTTP session and stop the loop (idempotent)."""
        if self.loop.is_closed():
            return
        if self.session is not None and not self.session.closed:
            try:
                self.submit(self.session.close()).result(5)
            except (TimeoutError, RuntimeError, OSError) as exc:
                logger.debug("closing the HTTP session failed: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.loop.is_running():
            self.loop.close()

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


class OpenAIBackend(Backend):
    """Tags through any server that speaks the chat-completions API.

    Parameters: ``model``; ``base_url`` (default ``$INSTAG_API_BASE_URL``, then
    ``$OPENAI_BASE_URL``, then OpenAI); ``api_key_env``, the *name* of the
    environment variable holding the key (none needed for local servers);
    ``concurrency``, requests in flight; ``timeout``, seconds per attempt;
    ``max_retries``, extra attempts after the first; ``backoff_base`` /
    ``backoff_max``, the exponential backoff in seconds; ``max_retry_after``, the
    longest ``Retry-After`` honoured before giving up; ``response_format``:
    ``auto`` tries a JSON schema, then JSON mode, then none, moving on only when
    the server's error says the format is unsupported (remembered per server and
    model); an explicit format is always sent as asked. ``extra_body`` is merged
    into every request.
    """

    name = "openai"
    default_template = "teacher"

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout: float = 60.0, max_retries: int = 5, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, max_retry_after: float = 120.0, response_format: str = "auto",
                 revision: str | None = None, extra_body: dict | None = None):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {RESPONSE_FORMATS}, got {response_format!r}")
        if api_key_env and api_key_env.startswith(("sk-", "Bearer ")):
            raise ValueError("api_key_env takes the NAME of an environment variable, not the key itself")
        self.model = model or os.environ.get("INSTAG_API_MODEL") or DEFAULT_MODEL
        self.base_url = (base_url or os.environ.get("INSTAG_API_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
                         or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.response_format = response_format
        self.revision = revision
        self.extra_body = extra_body or {}
        self._init_runtime()

    _CONFIG = ("model", "base_url", "api_key_env", "concurrency", "timeout", "max_retries", "backoff_base",
               "backoff_max", "max_retry_after", "response_format", "revision", "extra_body")

    def _init_runtime(self) -> None:
        self._runner: _LoopThread | None = None
        self._runner_pid: int | None = None
        self._stats = {"requests_sent": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0,
                       "transient_errors": Counter(), "failures": Counter()}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_runtime()

    @classmethod
    def auto_config(cls) -> dict | None:
        """Picked by ``backend="auto"`` when ``INSTAG_API_BASE_URL`` is set."""
        base_url = os.environ.get("INSTAG_API_BASE_URL")
        if not base_url:
            return None
        return {"base_url": base_url, "api_key_env": os.environ.get("INSTAG_API_KEY_ENV", "OPENAI_API_KEY")}

    def identity(self) -> dict:
        """The server, the model and every request option that can change an answer.

        Concurrency, timeouts, retries and the key's variable name are left out: they
        change how an answer is fetched, never what it is. The response format really
        sent with a request is in :meth:`request_options` (it can fall back mid-run).
        """
        ident = {"backend": self.name, "model": self.model, "revision": self.revision,
                 "base_url": _without_credentials(self.base_url), "response_format": self.response_format,
                 "schema": SCHEMA_FORMAT["json_schema"]}
        if self.extra_body:
            ident["extra_body"] = self.extra_body
        return ident

    def request_options(self) -> dict:
        return {"response_format": self._current_format()}

    def learned(self) -> dict:
        unsupported = _UNSUPPORTED.get(self._server(), set())
        return {"unsupported_formats": sorted(unsupported)} if unsupported else {}

    def learn(self, state: dict) -> None:
        formats = {f for f in state.get("unsupported_formats", ()) if f in _FALLBACK}
        if formats:
            with _UNSUPPORTED_LOCK:
                _UNSUPPORTED.setdefault(self._server(), set()).update(formats)

    def _server(self) -> tuple[str, str]:
        return (self.base_url, self.model)

    def _current_format(self) -> str:
        """The configured format, minus those this server has said it does not support."""
        fmt = "json_schema" if self.response_format == "auto" else self.response_format
        if self.response_format != "auto":
            return fmt
        unsupported = _UNSUPPORTED.get(self._server(), ())
        while fmt in unsupported:
            fmt = _FALLBACK[fmt]
        return fmt

    def _reject_format(self, fmt: str, reason: str) -> None:
        """Remember that this server does not support ``fmt``; logged once per server and format."""
        with _UNSUPPORTED_LOCK:
            seen = _UNSUPPORTED.setdefault(self._server(), set())
            if fmt in seen:
                return
            seen.add(fmt)
        logger.warning("%s does not support response_format %s (%s); using %s from now on",
                       self.base_url, fmt, reason, self._current_format())

    def describe(self) -> str:
        return f"{self.name} ({self.model} at {self.base_url}, concurrency {self.concurrency})"

    def stats(self) -> dict:
        s = dict(self._stats)
        s["transient_errors"] = dict(s["transient_errors"])
        s["failures"] = dict(s["failures"])
        return s

    # --- sync entry points -------------------------------------------------------------
    def generate(self, prompts: list[Prompt], params: GenerationParams) -> list[Completion]:
        out: list[Completion | None] = [None] * len(prompts)
        for group in self.stream(prompts, params):
            for i, completion in group:
                out[i] = completion
        return out  # type: ignore[return-value]

    def stream(self, prompts: list[Prompt], params: GenerationParams,
               batch_size: int | None = None) -> Iterator[list[tuple[int, Completion]]]:
        """Yield groups of (index, completion) as requests finish, ``concurrency`` in flight."""
        if not prompts:
            return
        if self._runner is None or self._runner_pid != os.getpid():
            self._runner, self._runner_pid = _LoopThread(), os.getpid()
        results: queue.SimpleQueue = queue.SimpleQueue()
        future = self._runner.submit(self._run_all(prompts, params, results))
        received = 0
        try:
            while received < len(prompts):
                try:
                    group = [results.get(timeout=0.5)]
                except queue.Empty:
                    if future.done():
                        future.result()  # raises what went wrong
                        raise RuntimeError("request loop ended early")
                    continue
                while True:
                    try:
                        group.append(results.get_nowait())
                    except queue.Empty:
                        break
                received += len(group)
                yield group
        finally:
            if not future.done():
                future.cancel()

    # --- async core ---------------------------------------------------------------------
    async def _client(self):
        import aiohttp

        runner = self._runner
        if runner.session is None or runner.session.closed:
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency)
            runner.session = aiohttp.ClientSession(connector=connector)
        return runner.session

    def close(self) -> None:
        if self._runner is not None and self._runner_pid == os.getpid():
            self._runner.close()
        self._runner = None

    async def _run_all(self, prompts: list[Prompt], params: GenerationParams, results: queue.SimpleQueue) -> None:
        session = await self._client()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(i: int, prompt: Prompt) -> None:
            async with gate:  # transport failures come back as a Completion; a bug raises
                completion = await self._request(session, prompt, params)
            results.put((i, completion))

        await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))

    def _body(self, prompt: Prompt, params: GenerationParams, fmt: str) -> dict:
        body = {"model": self.model, "messages": list(prompt.messages), "max_tokens": params.max_new_tokens,
                "temperature": params.temperature}
        if params.stop:
            body["stop"] = list(params.stop)[:4]
        if fmt == "json_schema":
            body["response_format"] = SCHEMA_FORMAT
        elif fmt == "json_object":
            body["response_format"] = {"type": "json_object"}
        body.update(self.extra_body)
        return body

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
        return max(delay, retry_after) if retry_after is not None else delay

    async def _send(self, session, body: dict) -> tuple[int, bytes, float | None]:
        """One attempt: ``(HTTP status, body, Retry-After seconds)``; raises :class:`TransportError`."""
        import aiohttp

        try:
            async with session.post(f"{self.base_url}/chat/completions", json=body, headers=self._headers(),
                                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                return resp.status, await resp.read(), parse_retry_after(resp.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            raise TransportError("timeout", f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientPayloadError as exc:
            raise TransportError("malformed_response", str(exc)) from None
        except aiohttp.ClientError as exc:
            raise TransportError("connection", f"{type(exc).__name__}: {exc}") from None

    async def _request(self, session, prompt: Prompt, params: GenerationParams) -> Completion:
        attempt = 0
        while True:
            fmt = self._current_format()
            body = self._body(prompt, params, fmt)
            retry_after = None
            self._stats["requests_sent"] += 1
            try:
                status, raw, retry_after = await self._send(session, body)
            except TransportError as exc:
                kind, detail = exc.kind, exc.detail
            else:
                if status == 200:
                    completion = self._completion(raw)
                    if completion is not None:
                        completion.options = {"response_format": fmt}
                        return completion
                    kind, detail = "malformed_response", f"unreadable response body ({len(raw)} bytes)"
                elif fmt in _FALLBACK and _rejects_format(status, raw, fmt):
                    if self.response_format != "auto":  # asked for explicitly: the same request would fail again
                        self._stats["failures"]["unsupported_format"] += 1
                        return Completion(error=f"unsupported response_format {fmt} (http_{status}: "
                                                f"{_error_message(raw)}); response_format='auto' falls back")
                    self._reject_format(fmt, f"http_{status}: {_error_message(raw)}")
                    continue
                elif status in RETRYABLE_STATUS:
                    kind, detail = f"http_{status}", _error_message(raw)
                else:
                    self._stats["failures"][f"http_{status}"] += 1
                    return Completion(error=f"http_{status}: {_error_message(raw)}")
            self._stats["transient_errors"][kind] += 1
            if attempt >= self.max_retries:
                self._stats["failures"][kind] += 1
                return Completion(error=f"{kind} after {attempt + 1} attempts: {detail}")
            if retry_after is not None and retry_after > self.max_retry_after:
                self._stats["failures"][kind] += 1
                return Completion(error=f"{kind}: server asked to retry after {retry_after:.0f} s (> max_retry_after)")
            self._stats["retries"] += 1
            await asyncio.sleep(self._backoff(attempt, retry_after))
            attempt += 1

    def _completion(self, raw: bytes) -> Completion | None:
        try:
            data = json.loads(raw)
            content = data["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return None
        usage = data.get("usage") or {}
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt_tokens, int):
            self._stats["prompt_tokens"] += prompt_tokens
        if isinstance(completion_tokens, int):
            self._stats["completion_tokens"] += completion_tokens
        return Completion(text=content or "", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def _without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part (kept out of cache keys and cards)."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return scheme + sep + host.rpartition("@")[2] + slash + path if sep else url


# What a server says when it cannot do a response format: OpenAI "'response_format' of type
# 'json_schema' is not supported with this model", vLLM and gateways "json_schema ... not
# supported", llama-cpp-python a validation error located at ``response_format.type``.
_FORMAT_WORDS = {"json_schema": ("response_format", "json_schema", "structured output", "guided_json"),
                 "json_object": ("response_format", "json_object", "json mode")}


def _rejects_format(status: int, raw: bytes, fmt: str) -> bool:
    """Whether an error answer says the request's response format is unsupported.

    Only the error body decides: an error that does not name the response format (an
    over-long prompt, a bad parameter, an overloaded server) never turns the format off.
    """
    if status not in _FORMAT_REJECTION_STATUS:
        return False
    text = _error_message(raw, limit=2000).lower()
    return any(word in text for word in _FORMAT_WORDS[fmt])


def _error_message(raw: bytes, limit: int = 300) -> str:
    try:
        data = json.loads(raw)
        message = data.get("error", {}).get("message") if isinstance(data.get("error"), dict) else data.get("error")
        if message:
            return str(message)[:limit]
    except (ValueError, AttributeError):
        pass
    return raw[:limit].decode("utf-8", "replace")
