"""OpenAI-compatible backend (OpenAI, gateways, `vllm serve`, llama.cpp server).

Chat templates go to ``/chat/completions``; text templates (Vicuna, for InsTagger, whose
tokenizer has no chat template) go to ``/completions`` with the exact prompt string.
Every answer carries why generation stopped (``finish_reason``): a ``"length"`` answer
comes back as text for the Tagger to re-ask with a larger budget, a content-filter stop
or a refusal comes back as an error row that says so, and content that is neither text
nor a list of text parts is a ``malformed_response`` row, never an exception. Error
texts and log lines go through :func:`~instag_hf.redact.redact`, so a server that
echoes the key, or a key written into the base URL, never reaches a row or a log.

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
import base64
import email.utils
import json
import logging
import os
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import unquote, urlsplit

from ...redact import redact, register_secret
from ..prompts import BOUNDED_TAGS_JSON_SCHEMA, BOUNDED_TAGS_SCHEMA_ID, TAGS_JSON_SCHEMA, Prompt
from .base import FINISH_CONTENT_FILTER, Backend, Completion, GenerationParams, settle

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "none")
#: endpoint kinds: chat prompts go to /chat/completions, text prompts (Prompt.text) to /completions
CHAT, TEXT = "chat", "text"
ROUTES = {CHAT: "/chat/completions", TEXT: "/completions"}
# What "auto" tries after a format the server rejects, per endpoint kind. The text endpoint skips
# json_object: it forces an object at the root, while InsTagger was trained to write a bare array,
# so it would cut every answer to one tag; free text is what the model does best there.
_FALLBACKS = {CHAT: {"json_schema": "json_object", "json_object": "none"},
              TEXT: {"json_schema": "none", "json_object": "none"}}
# Statuses a server may use to say "this response_format is not supported": 400/422 from
# OpenAI and vLLM, 500 from llama-cpp-python (its validation errors), 501 from a few gateways.
_FORMAT_REJECTION_STATUS = frozenset({400, 415, 422, 500, 501})
# Formats found unsupported, per (base URL, model, endpoint kind): shared by every backend of this
# process; a server may support a format on one endpoint and not on the other.
_UNSUPPORTED: dict[tuple[str, str, str], set[str]] = {}
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
# The text endpoint gets the bare array InsTagger was trained to write (bounded like the vLLM
# engine's, so a run-away string is closed at the bound); vLLM's completions take json_schema.
TEXT_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "instag_tags", "strict": True, "schema": BOUNDED_TAGS_JSON_SCHEMA},
}
#: error text of an answer the server's content filter stopped
CONTENT_FILTER_ERROR = "content_filter: the server's content filter stopped this answer"


def endpoint_kind(prompt: Prompt) -> str:
    """``"text"`` for a prompt with an exact text (sent to /completions), else ``"chat"``."""
    return TEXT if prompt.text is not None else CHAT


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


@dataclass(frozen=True, kw_only=True)
class OpenAIOptions:
    """The options of :class:`OpenAIBackend` (see there), checked on creation; also those the
    ``openai-batch`` and ``hf`` backends extend. ``model`` and ``base_url`` left None are read
    from the environment (``$INSTAG_API_MODEL``; ``$INSTAG_API_BASE_URL``, ``$OPENAI_BASE_URL``)."""

    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    timeout: float = 60.0
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    response_format: str = "auto"
    revision: str | None = None
    extra_body: dict | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {RESPONSE_FORMATS}, got {self.response_format!r}")
        if self.api_key_env and self.api_key_env.startswith(("sk-", "Bearer ")):
            raise ValueError("api_key_env takes the NAME of an environment variable, not the key itself")
        self._resolve_server()
        settle(self, extra_body=dict(self.extra_body or {}))

    def _resolve_server(self) -> None:
        """Fill ``model`` and ``base_url`` from the environment where not given."""
        settle(self, model=self.model or os.environ.get("INSTAG_API_MODEL") or DEFAULT_MODEL,
               base_url=(self.base_url or os.environ.get("INSTAG_API_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
                         or DEFAULT_BASE_URL).rstrip("/"))


class OpenAIBackend(Backend):
    """Tags through any server that speaks the OpenAI chat-completions (and completions) API.

    Parameters: ``model``; ``base_url`` (default ``$INSTAG_API_BASE_URL``, then
    ``$OPENAI_BASE_URL``, then OpenAI); ``api_key_env``, the *name* of the
    environment variable holding the key (none needed for local servers);
    ``concurrency``, requests in flight; ``timeout``, seconds per attempt;
    ``max_retries``, extra attempts after the first; ``backoff_base`` /
    ``backoff_max``, the exponential backoff in seconds; ``max_retry_after``, the
    longest ``Retry-After`` honoured before giving up; ``response_format``:
    ``auto`` tries a JSON schema, then JSON mode, then none, moving on only when
    the server's error says the format is unsupported (remembered per server, model
    and endpoint); an explicit format is always sent as asked. ``extra_body`` is merged
    into every request. Text prompts go to ``/completions`` with the bare array schema.
    The options may also be given as one :class:`OpenAIOptions` (``options=``; keywords over it).
    """

    name = "openai"
    default_template = "teacher"
    Options = OpenAIOptions

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout: float = 60.0, max_retries: int = 5, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, max_retry_after: float = 120.0, response_format: str = "auto",
                 revision: str | None = None, extra_body: dict | None = None, *, options: OpenAIOptions | None = None):
        self._configure(options, locals())

    def _init_runtime(self) -> None:
        if self.base_url:
            _url_credentials(self.base_url)  # a key written into the URL is masked from the start
        self._runner: _LoopThread | None = None
        self._runner_pid: int | None = None
        self._stats = {"requests_sent": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0,
                       "transient_errors": Counter(), "failures": Counter()}

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
        o = self.options
        ident = {"backend": self.name, "model": o.model, "revision": o.revision,
                 "base_url": _without_credentials(o.base_url), "response_format": o.response_format,
                 "schema": SCHEMA_FORMAT["json_schema"], "text_schema": BOUNDED_TAGS_SCHEMA_ID}
        if o.extra_body:
            ident["extra_body"] = o.extra_body
        return ident

    def request_options(self) -> dict:
        """The response format the next request sends: ``{"response_format": f}`` of the chat
        endpoint, plus ``text_response_format`` once the text endpoint has fallen back from the
        configured format, so a key names what was sent whatever the prompt's endpoint (and a
        chat-only run's keys are what they always were)."""
        return self._options(CHAT, self._current_format(CHAT))

    def _options(self, kind: str, fmt: str) -> dict:
        """:meth:`request_options` as they were when a ``kind`` request was sent with ``fmt``."""
        chat = fmt if kind == CHAT else self._current_format(CHAT)
        text = fmt if kind == TEXT else self._current_format(TEXT)
        options = {"response_format": chat}
        if text != ("json_schema" if self.response_format == "auto" else self.response_format):
            options["text_response_format"] = text
        return options

    def learned(self) -> dict:
        state = {}
        for kind, name in ((CHAT, "unsupported_formats"), (TEXT, "unsupported_text_formats")):
            unsupported = _UNSUPPORTED.get(self._format_key(kind), set())
            if unsupported:
                state[name] = sorted(unsupported)
        return state

    def learn(self, state: dict) -> None:
        for kind, name in ((CHAT, "unsupported_formats"), (TEXT, "unsupported_text_formats")):
            formats = {f for f in state.get(name, ()) if f in _FALLBACKS[kind]}
            if formats:
                with _UNSUPPORTED_LOCK:
                    _UNSUPPORTED.setdefault(self._format_key(kind), set()).update(formats)

    def _server(self) -> tuple[str, str]:
        return (self.base_url, self.model)

    def _format_key(self, kind: str) -> tuple[str, str, str]:
        return (*self._server(), kind)

    def _current_format(self, kind: str = CHAT) -> str:
        """The configured format, minus those this server has said it does not support on ``kind``."""
        fmt = "json_schema" if self.response_format == "auto" else self.response_format
        if self.response_format != "auto":
            return fmt
        unsupported = _UNSUPPORTED.get(self._format_key(kind), ())
        while fmt in unsupported:
            fmt = _FALLBACKS[kind][fmt]
        return fmt

    def _reject_format(self, fmt: str, reason: str, kind: str = CHAT) -> None:
        """Remember that this server does not support ``fmt`` on ``kind``; logged once per server,
        endpoint and format."""
        with _UNSUPPORTED_LOCK:
            seen = _UNSUPPORTED.setdefault(self._format_key(kind), set())
            if fmt in seen:
                return
            seen.add(fmt)
        logger.warning("%s does not support response_format %s on %s (%s); using %s from now on",
                       self._where(), fmt, ROUTES[kind], redact(reason), self._current_format(kind))

    def _where(self) -> str:
        """The server, as it may be shown (no credentials)."""
        return _without_credentials(self.base_url)

    def label(self) -> str:
        return f"{self.name} ({self.model} at {self._where()}, concurrency {self.concurrency})"

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
            if completion.error is not None:  # the one place every error text passes
                completion.error = redact(completion.error)
            results.put((i, completion))

        await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))

    def _body(self, prompt: Prompt, params: GenerationParams, fmt: str) -> dict:
        """The request body: ``messages`` for a chat prompt, the exact ``prompt`` string for a text one.

        A text prompt with a response prefix is sent without a schema: the model continues the
        prefix mid-JSON, which a whole-document schema would reject (as the vLLM engine does).
        """
        if prompt.text is not None:
            body = {"model": self.model, "prompt": prompt.text + prompt.response_prefix}
            schema = TEXT_SCHEMA_FORMAT if not prompt.response_prefix else None
        else:
            body = {"model": self.model, "messages": list(prompt.messages)}
            schema = SCHEMA_FORMAT
        body.update(max_tokens=params.max_new_tokens, temperature=params.temperature)
        if params.logprobs:  # completions: logprobs=k; chat: logprobs=true with top_logprobs=k
            body.update({"logprobs": params.logprobs} if prompt.text is not None
                        else {"logprobs": True, "top_logprobs": params.logprobs})
        if params.stop:
            body["stop"] = list(params.stop)[:4]
        if fmt == "json_schema" and schema is not None:
            body["response_format"] = schema
        elif fmt == "json_object" and not (prompt.text is not None and prompt.response_prefix):
            body["response_format"] = {"type": "json_object"}
        body.update(self.extra_body)
        return body

    def _headers(self) -> dict:
        """Request headers; the key (and any password in the base URL) is registered with
        :func:`~instag_hf.redact.register_secret` as it is read, and never kept on the object."""
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        basic = _url_credentials(self.base_url)
        if key:
            register_secret(key)
            headers["Authorization"] = f"Bearer {key}"
        elif basic:  # a key written into the URL (user:KEY@host): sent as Basic auth, as a browser would
            headers["Authorization"] = f"Basic {basic}"
        return headers

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
        return max(delay, retry_after) if retry_after is not None else delay

    async def _send(self, session, body: dict) -> tuple[int, bytes, float | None]:
        """One attempt: ``(HTTP status, body, Retry-After seconds)``; raises :class:`TransportError`.

        A body with a ``prompt`` goes to ``/completions``, one with ``messages`` to ``/chat/completions``.
        """
        import aiohttp

        route = ROUTES[TEXT if "prompt" in body else CHAT]
        headers = self._headers()  # reads (and registers) the credentials before any URL is used
        try:
            async with session.post(self._where() + route, json=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                return resp.status, await resp.read(), parse_retry_after(resp.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            raise TransportError("timeout", f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientPayloadError as exc:
            raise TransportError("malformed_response", str(exc)) from None
        except aiohttp.ClientError as exc:
            raise TransportError("connection", f"{type(exc).__name__}: {exc}") from None

    async def _request(self, session, prompt: Prompt, params: GenerationParams) -> Completion:
        endpoint = endpoint_kind(prompt)
        attempt = 0
        while True:
            fmt = self._current_format(endpoint)
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
                        completion.options = self._options(endpoint, fmt)
                        if endpoint == TEXT and completion.text is not None and prompt.response_prefix:
                            completion.text = prompt.response_prefix + completion.text  # the model continued it
                        if completion.error is not None:  # an answer that is no answer: asking again would not help
                            self._stats["failures"][_error_kind(completion.error)] += 1
                        return completion
                    kind, detail = "malformed_response", f"unreadable response body ({len(raw)} bytes)"
                elif fmt in _FALLBACKS[endpoint] and _rejects_format(status, raw, fmt):
                    if self.response_format != "auto":  # asked for explicitly: the same request would fail again
                        self._stats["failures"]["unsupported_format"] += 1
                        return Completion(error=f"unsupported response_format {fmt} (http_{status}: "
                                                f"{_error_message(raw)}); response_format='auto' falls back")
                    self._reject_format(fmt, f"http_{status}: {_error_message(raw)}", endpoint)
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
        """The answer in a chat or text completion response body; None when the envelope itself is
        unreadable (a transport fault, retried). An answer that is no usable text (a refusal, a
        content-filter stop, content of the wrong type) is an error completion, not retried."""
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        if not isinstance(data, dict) or not isinstance(choice, dict):
            return None
        message = choice.get("message")
        if (message is not None and not isinstance(message, dict)) or (message is None and "text" not in choice):
            return None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        prompt_tokens = prompt_tokens if isinstance(prompt_tokens, int) else None
        completion_tokens = completion_tokens if isinstance(completion_tokens, int) else None
        self._stats["prompt_tokens"] += prompt_tokens or 0
        self._stats["completion_tokens"] += completion_tokens or 0
        finish = choice.get("finish_reason")
        finish = finish if isinstance(finish, str) else None
        out = Completion(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, finish_reason=finish)
        if finish == FINISH_CONTENT_FILTER:
            out.error = CONTENT_FILTER_ERROR
            return out
        if message is not None:
            refusal = message.get("refusal")
            text, problem = _content_text(message.get("content"), "message.content")
            if isinstance(refusal, str) and refusal.strip():
                problem = f"refusal: {refusal.strip()[:300]}"
        else:
            text, problem = _content_text(choice["text"], "choices[0].text", parts=False)
        if problem is not None:
            out.error = problem
        else:
            out.text = text
            out.top_logprobs = _top_logprobs(choice.get("logprobs"))
        return out


def _top_logprobs(logprobs) -> list[dict[str, float]] | None:
    """Per position ``token -> logprob`` from a choice's ``logprobs``: chat's ``content[i].top_logprobs``
    (a list of ``{token, logprob}``) or completions' ``top_logprobs`` (a list of dicts); None if absent."""
    if not isinstance(logprobs, dict):
        return None
    number = (int, float)
    if isinstance(logprobs.get("content"), list):
        positions = [[(t.get("token"), t.get("logprob")) for t in p.get("top_logprobs") or [] if isinstance(t, dict)]
                     for p in logprobs["content"] if isinstance(p, dict)]
    elif isinstance(logprobs.get("top_logprobs"), list):
        positions = [list(p.items()) for p in logprobs["top_logprobs"] if isinstance(p, dict)]
    else:
        return None
    out = [{t: float(v) for t, v in p if isinstance(t, str) and isinstance(v, number)} for p in positions]
    return out if out and out[0] else None


def _content_text(content, where: str, parts: bool = True) -> tuple[str | None, str | None]:
    """``(text, None)`` from a string, nothing, or (chat only) a list of text parts; else
    ``(None, reason)``: a refusal part gives ``refusal: ...``, anything else ``malformed_response``."""
    if content is None:
        return "", None
    if isinstance(content, str):
        return content, None
    if parts and isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict) and isinstance(part.get("refusal"), str):
                return None, f"refusal: {part['refusal'].strip()[:300]}"
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                return None, f"malformed_response: {where} holds a {kind!s:.40} part, not text"
        return "".join(pieces), None
    return None, f"malformed_response: {where} is a {type(content).__name__}, not text"


def _error_kind(error: str) -> str:
    """The failure kind an error text starts with (``refusal``, ``content_filter``, ...)."""
    head = error.split(":", 1)[0]
    return head if head and " " not in head else "error"


def _url_credentials(url: str) -> str | None:
    """The Basic-auth token of a ``user:password@`` in ``url`` (registered as secrets), else None."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return None
    if user is None and password is None:
        return None
    user, password = unquote(user or ""), unquote(password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    for secret in (password, token):
        register_secret(secret)
    if not password:  # a bare token as the user part (https://TOKEN@host)
        register_secret(user)
    return token


def _without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part (kept out of cache keys and cards)."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return scheme + sep + host.rpartition("@")[2] + slash + path if sep else url


# What a server says when it cannot do a response format: OpenAI "'response_format' of type
# 'json_schema' is not supported with this model", vLLM and gateways "json_schema ... not
# supported", llama-cpp-python a validation error located at ``response_format.type``, TGI
# (the hf backend's text route sends the schema as ``grammar``) "grammar ... not supported".
_FORMAT_WORDS = {"json_schema": ("response_format", "json_schema", "structured output", "guided_json", "grammar"),
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
