"""API backend throughput against the loopback chat server at a fixed latency.

For each concurrency, rows/s of ``ds.map(Tagger(backend="openai"), batched=True)``
(default map batch of 1000 rows, request cache on) against the bound a perfect
client would reach, concurrency / latency, and the client process's CPU time per
row (which other jobs on the machine do not inflate). The server runs in its own
process so it does not share the client's interpreter lock.

``--clients`` compares ways of sending the same requests in one run, against the
same server, interleaved and repeated (``--repeat``, best run kept):

- ``aiohttp``: the backend as shipped (our aiohttp transport, our retries);
- ``sdk``: the official ``openai.AsyncOpenAI`` with its own httpx transport and
  retries (``chat.completions.with_raw_response.create``);
- ``sdk-aiohttp``: the SDK over an httpx transport backed by aiohttp (what the
  SDK's ``DefaultAioHttpClient`` does), same call;
- ``sdk-aiohttp-post``: the same, through the SDK's low-level ``post`` (skips the
  SDK's parameter transformation).

Everything but the transport is the shipped backend (concurrency gate, answer
parsing, cache, statuses), so the rows/s differ by the transport alone.

    python benchmarks/bench_api.py [--latency 0.1] [--concurrency 1 16 64 256] [--clients aiohttp sdk]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset, disable_progress_bars  # noqa: E402

import _paths  # noqa: E402,F401  (tests/support on the path)
from instag_hf import Tagger  # noqa: E402
from instag_hf.tagging.backends.openai import OpenAIBackend, TransportError, parse_retry_after  # noqa: E402

CLIENTS = ("aiohttp", "sdk", "sdk-aiohttp", "sdk-aiohttp-post")


class _AiohttpTransport:
    """An ``httpx.AsyncBaseTransport`` that sends through one aiohttp session."""

    def __init__(self, limit: int):
        self.limit, self.session = limit, None

    async def handle_async_request(self, request):
        import aiohttp
        import httpx

        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.limit),
                                                 auto_decompress=False)
        timeout = request.extensions.get("timeout", {})
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in ("content-length",)]
        body = await request.aread()
        try:
            async with self.session.request(request.method, str(request.url), headers=headers, data=body or None,
                                            timeout=aiohttp.ClientTimeout(sock_connect=timeout.get("connect"),
                                                                          sock_read=timeout.get("read"))) as resp:
                content = await resp.read()
                return httpx.Response(resp.status, headers=list(resp.raw_headers), content=content, request=request)
        except asyncio.TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc

    async def aclose(self):
        if self.session is not None:
            await self.session.close()


class _Closable:
    def __init__(self, client):
        self.client, self.closed = client, False

    async def close(self):
        self.closed = True
        await self.client.close()


class SDKBackend(OpenAIBackend):
    """The shipped backend with each request sent by the official SDK (which also retries)."""

    def __init__(self, *args, transport: str = "httpx", call: str = "create", **kwargs):
        super().__init__(*args, **kwargs)
        self.transport, self.call = transport, call

    async def _client(self):
        import httpx
        import openai

        runner = self._runner
        if runner.session is None or runner.session.closed:
            if self.transport == "aiohttp":
                http = httpx.AsyncClient(transport=_AiohttpTransport(self.concurrency), timeout=self.timeout)
            else:
                http = openai.DefaultAsyncHttpxClient(limits=httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency))
            client = openai.AsyncOpenAI(api_key="unused", base_url=self.base_url, timeout=self.timeout,
                                        max_retries=self.max_retries, http_client=http)
            runner.session = _Closable(client)
        return runner.session

    async def _send(self, session, body):
        import httpx
        import openai

        try:
            if self.call == "post":
                resp = await session.client.post("/chat/completions", body=body, cast_to=httpx.Response)
            else:
                resp = (await session.client.chat.completions.with_raw_response.create(**body)).http_response
            return resp.status_code, resp.content, None
        except openai.APIStatusError as exc:
            return exc.status_code, exc.response.content, parse_retry_after(exc.response.headers.get("retry-after"))
        except openai.APITimeoutError:
            raise TransportError("timeout", f"no answer within {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise TransportError("connection", str(exc)) from None


def make(client: str, url: str, concurrency: int):
    options = dict(model="fake-tagger", base_url=url, concurrency=concurrency, timeout=30)
    if client == "aiohttp":
        return OpenAIBackend(**options)
    return SDKBackend(**options, transport="aiohttp" if "aiohttp" in client else "httpx",
                      call="post" if client.endswith("post") else "create")


def start_server(latency: float, *options: str) -> tuple[subprocess.Popen, str]:
    """The loopback server in its own process (``options``: more of its flags); returns it and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "support.server", "--latency", str(latency), *options,
                             "--lifetime", "1800"], stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1"):
        proc.kill()
        raise RuntimeError(f"server did not start: {url!r}")
    return proc, url


def run(url: str, client: str, concurrency: int, rows: int, cache_dir: str, tag: str) -> tuple[float, float]:
    """(rows/s, client CPU milliseconds per row) of one tagging run."""
    ds = Dataset.from_dict({"query": [f"{tag} row {i}: describe subject {i} briefly" for i in range(rows)]})
    backend = make(client, url, concurrency)
    tagger = Tagger(backend=backend, cache_dir=cache_dir, progress=False)
    start, cpu = time.perf_counter(), time.process_time()
    out = ds.map(tagger, batched=True, load_from_cache_file=False)
    secs, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert out["instag_status"].count("ok") == rows, "every row should be tagged"
    backend.close()
    return rows / secs, 1000 * cpu / rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--clients", nargs="+", default=["aiohttp"], choices=CLIENTS)
    ap.add_argument("--repeat", type=int, default=1, help="runs per client and concurrency, interleaved; best kept")
    ap.add_argument("--seconds", type=float, default=5.0, help="target duration per run at the bound")
    args = ap.parse_args()
    disable_progress_bars()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"\n### API backend, loopback server with {args.latency * 1000:.0f} ms latency per request\n")
    print("| client | concurrency | rows | rows/s (runs) | bound (concurrency / latency) | ratio | vs aiohttp "
          "| client CPU ms/row |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    proc, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in args.concurrency:
                bound = c / args.latency
                rows = max(20, int(bound * args.seconds))
                runs: dict[str, list[float]] = {name: [] for name in args.clients}
                cpu: dict[str, list[float]] = {name: [] for name in args.clients}
                for r in range(args.repeat):
                    for name in args.clients:
                        tag = f"{name} c{c} r{r}"
                        rate, ms = run(url, name, c, rows, os.path.join(tmp, tag.replace(" ", "_")), tag)
                        runs[name].append(rate)
                        cpu[name].append(ms)
                base = max(runs["aiohttp"]) if "aiohttp" in runs else None
                for name, rates in runs.items():
                    best = max(rates)
                    shown = ", ".join(f"{x:,.1f}" for x in rates)
                    rel = f"{best / base:.2f}" if base else "-"
                    print(f"| {name} | {c} | {rows} | {best:,.1f} ({shown}) | {bound:,.0f} | {best / bound:.2f} "
                          f"| {rel} | {min(cpu[name]):.2f} |", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
