"""Tagging throughput, each number against a baseline measured in the same run.

1. Framework overhead: ``ds.map(Tagger, batched=True)`` with an instant fake backend
   against a bare Python loop doing the same per-row work (render, generate, parse).
2. The embedded model (SmolLM2-135M on CPU): queries/s batched against one query
   at a time, on the same queries, cache off.

    python benchmarks/bench_tagging.py [--rows 20000] [--queries 16] [--batch-sizes 1 16] [--skip-model]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset, disable_progress_bars  # noqa: E402

from instag_hf import Tagger, load_sample  # noqa: E402
from instag_hf.tagging.backends.base import GenerationParams  # noqa: E402
from instag_hf.tagging.parsing import parse_tags  # noqa: E402
from instag_hf.tagging.prompts import get_template  # noqa: E402
from instag_hf.tagging.queries import detect_format  # noqa: E402
from instag_hf.testing import KeywordBackend  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bare_loop(queries: list[str]) -> list:
    backend, template, params = KeywordBackend(), get_template("teacher"), GenerationParams()
    out = []
    for q in queries:
        (c,) = backend.generate([template.render(q)], params)
        out.append(parse_tags(c.text).tags)
    return out


def overhead(rows: int) -> list[tuple]:
    words = ["python", "recursion", "poetry", "algebra", "pirates", "database", "grammar", "travel"]
    queries = [f"Question {i}: explain {words[i % 8]} and {words[(i * 3) % 8]} with examples" for i in range(rows)]
    ds = Dataset.from_dict({"query": queries})
    base_s, base_out = _timed(lambda: bare_loop(queries))
    results = [("bare Python loop (baseline)", base_s, 1.0)]
    with tempfile.TemporaryDirectory() as tmp:
        for label, kwargs in [
            ("ds.map(Tagger), cache off", dict(use_cache=False)),
            ("ds.map(Tagger), cache on, cold", dict(cache_dir=tmp)),
            ("ds.map(Tagger), cache on, warm", dict(cache_dir=tmp)),
        ]:
            tagger = Tagger(backend=KeywordBackend(), batch_size=64, progress=False, **kwargs)
            secs, out = _timed(lambda: ds.map(tagger, batched=True, batch_size=1000, load_from_cache_file=False))
            assert [[t["tag"] for t in r] for r in out["instag_tags"]] == [[t["tag"] for t in r] for r in base_out]
            results.append((label, secs, base_s / secs))
    return [(label, rows / secs, ratio) for label, secs, ratio in results]


def model_speed(n: int, max_new_tokens: int, batch_sizes: list[int]):
    """Yield (batch size, queries/s, output tokens/s, ratio vs the first batch size, parsed ok)."""
    pool = []
    for name in ("alpaca", "chat"):
        ds = load_sample(name)
        fmt = detect_format(ds.column_names)
        pool += [t for row in ds for t in fmt.extract(row) if t.strip()]
    queries = list(dict.fromkeys(pool))[:n]
    Tagger(use_cache=False, progress=False, max_new_tokens=8).tag_queries(["warm up the model"])
    base = None
    for bs in batch_sizes:
        tagger = Tagger(use_cache=False, progress=False, batch_size=bs, max_new_tokens=max_new_tokens)
        secs, out = _timed(lambda: tagger.tag_queries(queries))
        qps = n / secs
        base = base or qps
        yield bs, qps, tagger.stats.completion_tokens / secs, qps / base, sum(r.status == "ok" for r in out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--skip-model", action="store_true")
    args = ap.parse_args()
    disable_progress_bars()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")

    print(f"\n### Framework overhead ({args.rows} rows, instant fake backend)\n")
    print("| path | rows/s | ratio vs bare loop |\n|---|---:|---:|")
    for label, rps, ratio in overhead(args.rows):
        print(f"| {label} | {rps:,.0f} | {ratio:.2f} |")

    if not args.skip_model:
        print(f"\n### Embedded model, SmolLM2-135M-Instruct on CPU ({args.queries} queries, "
              f"max_new_tokens={args.max_new_tokens}, cache off)\n")
        print("| batch size | queries/s | output tokens/s | ratio vs one at a time | parsed ok |\n|---:|---:|---:|---:|---:|")
        for bs, qps, tps, ratio, ok in model_speed(args.queries, args.max_new_tokens, args.batch_sizes):
            print(f"| {bs} | {qps:.2f} | {tps:.1f} | {ratio:.2f} | {ok}/{args.queries} |", flush=True)


if __name__ == "__main__":
    main()
