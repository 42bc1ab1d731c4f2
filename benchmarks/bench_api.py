"""API backend throughput against the loopback chat server at a fixed latency.

For each concurrency, rows/s of ``ds.map(Tagger(backend="openai"), batched=True)``
(default map batch of 1000 rows, request cache on) against the bound a perfect
client would reach, concurrency / latency. The server runs in its own process so
it does not share the client's interpreter lock.

    python benchmarks/bench_api.py [--latency 0.1] [--concurrency 1 16 64 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset, disable_progress_bars  # noqa: E402

from instag_hf import Tagger  # noqa: E402


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "instag_hf.testing.server", "--latency", str(latency),
                             "--lifetime", "900"], stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1"):
        proc.kill()
        raise RuntimeError(f"server did not start: {url!r}")
    return proc, url


def run(url: str, concurrency: int, rows: int, cache_dir: str) -> float:
    ds = Dataset.from_dict({"query": [f"c{concurrency} row {i}: describe subject {i} briefly" for i in range(rows)]})
    tagger = Tagger(backend="openai", model="fake-tagger", base_url=url, concurrency=concurrency,
                    cache_dir=cache_dir, progress=False, timeout=30)
    start = time.perf_counter()
    out = ds.map(tagger, batched=True, load_from_cache_file=False)
    secs = time.perf_counter() - start
    assert out["instag_status"].count("ok") == rows, "every row should be tagged"
    tagger.backend.close()
    return rows / secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--seconds", type=float, default=5.0, help="target duration per concurrency at the bound")
    args = ap.parse_args()
    disable_progress_bars()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"\n### API backend, loopback server with {args.latency * 1000:.0f} ms latency per request\n")
    print("| concurrency | rows | rows/s | bound (concurrency / latency) | ratio |\n|---:|---:|---:|---:|---:|")
    proc, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in args.concurrency:
                bound = c / args.latency
                rows = max(20, int(bound * args.seconds))
                rps = run(url, c, rows, os.path.join(tmp, f"c{c}"))
                print(f"| {c} | {rows} | {rps:,.1f} | {bound:,.0f} | {rps / bound:.2f} |", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
