"""Hugging Face Inference Providers (and dedicated endpoints) through ``huggingface_hub``.

Requests go through ``huggingface_hub.AsyncInferenceClient.chat_completion``: with
``model`` (a Hub model id) and ``provider`` (default ``"auto"``: the first provider
serving the model in the user's preference order), or with ``base_url`` for a
dedicated Inference Endpoint or any server with the chat-completions route. Text
templates (Vicuna, for InsTagger) go through ``AsyncInferenceClient.text_generation``
with ``details=True`` (its finish reason tells a cut answer): at a ``base_url``, TGI's
generate route at the endpoint's root; with a provider, that provider's text-generation
task (an OpenAI-style completions route for most). A provider without one is refused with
a ``ValueError`` at first use that names the chat templates to use instead. The token is
the user's Hugging Face login or ``$HF_TOKEN``, resolved by ``huggingface_hub`` at request
time; this backend reads it only to mask it in error texts, and never stores or logs it.

Everything around the transport is the ``openai`` backend's: at most ``concurrency``
requests in flight on a private event loop (it works inside Jupyter), answers handed
back as they finish so the request cache keeps each at once, retries with
exponential backoff and full jitter that honour ``Retry-After``, per-row statuses with
reasons, the response-format fallback, and the run summary (requests, retries,
failures by kind, tokens). ``huggingface_hub`` itself does not retry.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import dataclass
from typing import Iterator

from ...redact import register_secret
from ..prompts import BOUNDED_TAGS_SCHEMA_ID, Prompt
from .base import GenerationParams, settle
from .openai import (
    SCHEMA_FORMAT,
    OpenAIBackend,
    OpenAIOptions,
    TransportError,
    _without_credentials,
    parse_retry_after,
)

DEFAULT_PROVIDER = "auto"
# TGI's finish reasons, in the OpenAI names the Tagger acts on
_TGI_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


class _Session:
    """An ``AsyncInferenceClient`` with the ``closed``/``close()`` the loop thread expects."""

    def __init__(self, client):
        self.client, self.closed = client, False

    async def close(self) -> None:
        self.closed = True
        await self.client.close()


@dataclass(frozen=True, kw_only=True)
class HFOptions(OpenAIOptions):
    """:class:`~instag_hf.tagging.backends.openai.OpenAIOptions` plus ``provider`` and ``bill_to``
    (see :class:`HFBackend`). ``model`` or ``base_url`` is required, neither is read from the
    environment, and the token is huggingface_hub's (``api_key_env`` is unused)."""

    api_key_env: str = ""
    provider: str = DEFAULT_PROVIDER
    bill_to: str | None = None

    def _resolve_server(self) -> None:
        if self.model is None and self.base_url is None:
            raise ValueError("the hf backend needs model= (a Hub model id) or base_url= (a dedicated endpoint)")
        settle(self, model=self.model or "tgi", base_url=self.base_url.rstrip("/") if self.base_url else None,
               provider=self.provider or DEFAULT_PROVIDER)


class HFBackend(OpenAIBackend):
    """Tags through Hugging Face Inference Providers or a dedicated endpoint.

    Parameters: ``model``, a Hub model id (``meta-llama/Llama-3.1-8B-Instruct``); with
    ``base_url`` it is only sent as the request's model name. ``provider``: ``"auto"``
    (default) or a provider name (``"together"``, ``"hf-inference"``, ...); ignored with
    ``base_url``. ``bill_to``: an organization to bill. The other options are the
    ``openai`` backend's (``concurrency``, ``timeout``, ``max_retries``, ``backoff_base``,
    ``backoff_max``, ``max_retry_after``, ``response_format``, ``revision``, ``extra_body``).
    Or all of them as one :class:`HFOptions` (``options=``; keywords over it).
    """

    name = "hf"
    default_template = "teacher"
    Options = HFOptions

    def __init__(self, model: str | None = None, provider: str = DEFAULT_PROVIDER, base_url: str | None = None,
                 concurrency: int = 16, timeout: float = 60.0, max_retries: int = 5, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, max_retry_after: float = 120.0, response_format: str = "auto",
                 revision: str | None = None, extra_body: dict | None = None, bill_to: str | None = None, *,
                 options: HFOptions | None = None):
        self._configure(options, locals())

    @classmethod
    def auto_config(cls) -> dict | None:
        return None  # chosen by name only: "auto" would need to guess a model and a provider

    def identity(self) -> dict:
        """Provider (or endpoint), model and every request option that can change an answer."""
        o = self.options
        ident = {"backend": self.name, "model": o.model, "revision": o.revision,
                 "provider": None if o.base_url else o.provider,
                 "base_url": _without_credentials(o.base_url) if o.base_url else None,
                 "response_format": o.response_format, "schema": SCHEMA_FORMAT["json_schema"],
                 "text_schema": BOUNDED_TAGS_SCHEMA_ID}
        if o.extra_body:
            ident["extra_body"] = o.extra_body
        return ident

    def _server(self) -> tuple[str, str]:
        return (self.base_url or f"hf:{self.provider}", self.model)

    def _where(self) -> str:
        return _without_credentials(self.base_url) if self.base_url else f"provider {self.provider}"

    def label(self) -> str:
        return f"{self.name} ({self.model} via {self._where()}, concurrency {self.concurrency})"

    def _init_runtime(self) -> None:
        super()._init_runtime()
        self._text_checked = False

    def stream(self, prompts: list[Prompt], params: GenerationParams,
               batch_size: int | None = None) -> Iterator[list]:
        if not self._text_checked and any(p.text is not None for p in prompts):
            self._check_text_route()
            self._text_checked = True
        yield from super().stream(prompts, params, batch_size)

    def _check_text_route(self) -> None:
        """Raise a clear ValueError when a text template cannot be served here: a provider without
        a text-generation task, or ``extra_body`` keys ``text_generation`` cannot send."""
        from huggingface_hub import AsyncInferenceClient

        from ..prompts import TEMPLATES

        chat = ", ".join(sorted(name for name, t in TEMPLATES.items() if not t.vicuna))
        accepted = set(inspect.signature(AsyncInferenceClient.text_generation).parameters) - {"self", "prompt"}
        unknown = sorted(set(self.extra_body) - accepted)
        if unknown:
            raise ValueError(f"extra_body keys {unknown} cannot be sent with a text template through "
                             f"huggingface_hub's text_generation (it takes {sorted(accepted)}); use a chat "
                             f"template ({chat}) or drop them")
        if self.base_url:
            return
        from huggingface_hub.inference._providers import get_provider_helper

        try:
            get_provider_helper(self.provider, task="text-generation", model=self.model)
        except Exception as exc:  # noqa: BLE001 - only "not supported" is ours to say; the rest, each request will
            if not (isinstance(exc, ValueError) and "not supported" in str(exc)):
                return
            raise ValueError(f"{self._where()} cannot serve a text template ({exc}); the hf backend sends text "
                             f"templates (Vicuna) to a provider's text-generation task. Use a chat template "
                             f"({chat}), a provider with text generation, or base_url= of an endpoint serving "
                             f"the model (TGI), or the openai backend against `vllm serve`") from None

    async def _client(self):
        from huggingface_hub import AsyncInferenceClient, get_token

        register_secret(get_token())  # read only to mask it: huggingface_hub sends it
        runner = self._runner
        if runner.session is None or runner.session.closed:
            if self.base_url:
                client = AsyncInferenceClient(base_url=self.base_url, timeout=self.timeout, bill_to=self.bill_to)
            else:
                client = AsyncInferenceClient(provider=self.provider, timeout=self.timeout, bill_to=self.bill_to)
            runner.session = _Session(client)
        return runner.session

    async def _send(self, session, body: dict) -> tuple[int, bytes, float | None]:
        """One attempt through huggingface_hub: chat bodies to ``chat_completion``, text bodies
        (``prompt``) to ``text_generation``, answered in the OpenAI shapes the parser reads."""
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, TextGenerationError

        try:
            if "prompt" in body:
                return 200, json.dumps(await self._generate_text(session.client, body)).encode(), None
            args = dict(body)
            messages = args.pop("messages")
            known = {k: args.pop(k) for k in ("model", "max_tokens", "temperature", "stop", "response_format")
                     if k in args}
            out = await session.client.chat_completion(messages, **known, extra_body=args or None)
        except (HfHubHTTPError, TextGenerationError) as exc:
            http = exc if isinstance(exc, HfHubHTTPError) else exc.__cause__
            response = getattr(http, "response", None)
            if response is None:
                raise TransportError("connection", f"{type(exc).__name__}: {exc}") from None
            return (response.status_code, response.content or str(exc).encode(),
                    parse_retry_after(response.headers.get("Retry-After")))
        except (InferenceTimeoutError, asyncio.TimeoutError, httpx2.TimeoutException):
            raise TransportError("timeout", f"no answer within {self.timeout:g} s") from None
        except httpx2.RemoteProtocolError as exc:
            kind = "malformed_response" if "body" in str(exc) else "connection"
            raise TransportError(kind, f"{type(exc).__name__}: {exc}") from None
        except httpx2.TransportError as exc:
            raise TransportError("connection", f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # a 200 whose body is not JSON
            raise TransportError("malformed_response", f"unreadable response body: {exc}") from None
        return 200, json.dumps(_plain(out)).encode(), None

    async def _generate_text(self, client, body: dict) -> dict:
        """``text_generation`` with ``details=True``, returned as a completions response.

        Greedy decoding is asked as ``do_sample=False`` (TGI refuses a temperature of 0); the JSON
        schema goes as TGI's ``grammar``. At a ``base_url`` the request goes to the endpoint's
        root (TGI's generate route), whatever ``/v1`` suffix the chat route needed.
        """
        args = dict(body)
        prompt = args.pop("prompt")
        kwargs = {"details": True, "max_new_tokens": args.pop("max_tokens", None), "stop": args.pop("stop", None)}
        temperature = args.pop("temperature", 0) or 0
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
        else:
            kwargs["do_sample"] = False
        fmt = args.pop("response_format", None) or {}
        if fmt.get("type") == "json_schema":
            kwargs["grammar"] = {"type": "json", "value": fmt["json_schema"]["schema"]}
        elif fmt.get("type") == "json_object":
            kwargs["grammar"] = {"type": "json", "value": {"type": "object"}}
        model = args.pop("model", None)
        if self.base_url:
            root = self.base_url.rstrip("/")
            model = root[: -len("/v1")] if root.endswith("/v1") else root
        kwargs.update(args)  # extra_body: only text_generation's own parameters (checked at first use)
        try:
            out = await client.text_generation(prompt, model=model, **kwargs)
        except (KeyError, TypeError) as exc:  # huggingface_hub could not read a 200's body
            raise TransportError("malformed_response", f"unreadable response body: {type(exc).__name__}: {exc}") \
                from None
        if isinstance(out, str):  # not a TGI server: huggingface_hub dropped the details
            text, finish, tokens = out, None, None
        else:
            details = getattr(out, "details", None)
            text = out.generated_text
            finish = getattr(details, "finish_reason", None)
            tokens = getattr(details, "generated_tokens", None)
        finish = _TGI_FINISH.get(finish, finish) if isinstance(finish, str) else None
        return {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": finish}],
                "usage": {"completion_tokens": tokens if isinstance(tokens, int) else None}}


def _plain(value):
    """huggingface_hub's parsed output as plain JSON, with the fields its dataclasses do not
    declare (``message.refusal``) that it keeps as attributes but leaves out of the parent's items."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in {**value, **getattr(value, "__dict__", {})}.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
