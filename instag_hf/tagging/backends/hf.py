"""Hugging Face Inference Providers (and dedicated endpoints) through ``huggingface_hub``.

Requests go through ``huggingface_hub.AsyncInferenceClient.chat_completion``: with
``model`` (a Hub model id) and ``provider`` (default ``"auto"``: the first provider
serving the model in the user's preference order), or with ``base_url`` for a
dedicated Inference Endpoint or any server with the chat-completions route. The
token is the user's Hugging Face login or ``$HF_TOKEN``, resolved by
``huggingface_hub`` at request time; this backend never reads, stores or logs it.

Everything around the transport is the ``openai`` backend's: at most ``concurrency``
requests in flight on a private event loop (it works inside Jupyter), answers handed
back as they finish so the request cache keeps each at once, retries with
exponential backoff and full jitter that honour ``Retry-After``, per-row statuses with
reasons, the response-format fallback, and the run summary (requests, retries,
failures by kind, tokens). ``huggingface_hub`` itself does not retry.
"""

from __future__ import annotations

import asyncio
import json

from .openai import SCHEMA_FORMAT, OpenAIBackend, TransportError, _without_credentials, parse_retry_after

DEFAULT_PROVIDER = "auto"


class _Session:
    """An ``AsyncInferenceClient`` with the ``closed``/``close()`` the loop thread expects."""

    def __init__(self, client):
        self.client, self.closed = client, False

    async def close(self) -> None:
        self.closed = True
        await self.client.close()


class HFBackend(OpenAIBackend):
    """Tags through Hugging Face Inference Providers or a dedicated endpoint.

    Parameters: ``model``, a Hub model id (``meta-llama/Llama-3.1-8B-Instruct``); with
    ``base_url`` it is only sent as the request's model name. ``provider``: ``"auto"``
    (default) or a provider name (``"together"``, ``"hf-inference"``, ...); ignored with
    ``base_url``. ``bill_to``: an organization to bill. The other options are the
    ``openai`` backend's (``concurrency``, ``timeout``, ``max_retries``, ``backoff_base``,
    ``backoff_max``, ``max_retry_after``, ``response_format``, ``revision``, ``extra_body``).
    """

    name = "hf"
    default_template = "teacher"

    def __init__(self, model: str | None = None, provider: str = DEFAULT_PROVIDER, base_url: str | None = None,
                 concurrency: int = 16, timeout: float = 60.0, max_retries: int = 5, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, max_retry_after: float = 120.0, response_format: str = "auto",
                 revision: str | None = None, extra_body: dict | None = None, bill_to: str | None = None):
        if model is None and base_url is None:
            raise ValueError("the hf backend needs model= (a Hub model id) or base_url= (a dedicated endpoint)")
        super().__init__(model=model or "tgi", base_url=base_url or "https://router.huggingface.co",
                         api_key_env="", concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                         backoff_base=backoff_base, backoff_max=backoff_max, max_retry_after=max_retry_after,
                         response_format=response_format, revision=revision, extra_body=extra_body)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.provider = provider or DEFAULT_PROVIDER
        self.bill_to = bill_to

    _CONFIG = ("model", "provider", "base_url", "concurrency", "timeout", "max_retries", "backoff_base",
               "backoff_max", "max_retry_after", "response_format", "revision", "extra_body", "bill_to")

    @classmethod
    def auto_config(cls) -> dict | None:
        return None  # chosen by name only: "auto" would need to guess a model and a provider

    def identity(self) -> dict:
        """Provider (or endpoint), model and every request option that can change an answer."""
        ident = {"backend": self.name, "model": self.model, "revision": self.revision,
                 "provider": None if self.base_url else self.provider,
                 "base_url": _without_credentials(self.base_url) if self.base_url else None,
                 "response_format": self.response_format, "schema": SCHEMA_FORMAT["json_schema"]}
        if self.extra_body:
            ident["extra_body"] = self.extra_body
        return ident

    def _server(self) -> tuple[str, str]:
        return (self.base_url or f"hf:{self.provider}", self.model)

    def describe(self) -> str:
        where = self.base_url or f"provider {self.provider}"
        return f"{self.name} ({self.model} via {where}, concurrency {self.concurrency})"

    async def _client(self):
        from huggingface_hub import AsyncInferenceClient

        runner = self._runner
        if runner.session is None or runner.session.closed:
            if self.base_url:
                client = AsyncInferenceClient(base_url=self.base_url, timeout=self.timeout, bill_to=self.bill_to)
            else:
                client = AsyncInferenceClient(provider=self.provider, timeout=self.timeout, bill_to=self.bill_to)
            runner.session = _Session(client)
        return runner.session

    async def _send(self, session, body: dict) -> tuple[int, bytes, float | None]:
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

        args = dict(body)
        messages = args.pop("messages")
        known = {k: args.pop(k) for k in ("model", "max_tokens", "temperature", "stop", "response_format")
                 if k in args}
        try:
            out = await session.client.chat_completion(messages, **known, extra_body=args or None)
        except HfHubHTTPError as exc:
            response = exc.response
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
        return 200, json.dumps(out).encode(), None
