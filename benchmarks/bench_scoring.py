"""Scoring (issue 25): throughput against the concurrency bound, and MIG with and without scores.

1. ``ds.map(Scorer(backend="openai"), batched=True)`` against the loopback server
   (``--score-logprobs``, a fixed latency per request, in its own process), per
   concurrency: rows/s and requests/s against the bound a perfect client would reach,
   concurrency / latency requests/s (a single-turn row is two requests: complexity of
   the query, quality of the answer).
2. The bundled sample (both parts, as ``instag demo`` reads them), tagged with the
   retrieval backend, normalized as the demo does, scored through the loopback server,
   then ``compare_strategies`` with ``mig`` (weighed by ``instag_score``) beside
   ``mig-unscored`` (every score 1). The loopback scores are a hash of the prompt, not a
   judgement: the table shows what weighing by a score does to MIG's picks, not which
   scores are right.

    python benchmarks/bench_scoring.py [--latency 0.05] [--concurrency 1 8 32 64] [--select 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset, disable_progress_bars  # noqa: E402

import _paths  # noqa: E402,F401  (tests/support on the path)
import instag_hf  # noqa: E402
from instag_hf import Scorer, schema  # noqa: E402
from bench_api import start_server  # noqa: E402


def throughput(url: str, concurrency: int, rows: int, cache_dir: str) -> tuple[float, float, float]:
    """(rows/s, requests/s, client CPU ms per row) of one scoring run over fresh single-turn rows."""
    ds = Dataset.from_dict({"instruction": [f"c{concurrency} row {i}: explain subject {i}" for i in range(rows)],
                            "output": [f"subject {i} is explained here" for i in range(rows)]})
    scorer = Scorer(backend="openai", model="fake-scorer", base_url=url, concurrency=concurrency, timeout=30,
                    cache_dir=cache_dir, progress=False)
    start, cpu = time.perf_counter(), time.process_time()
    out = scorer.map(ds, load_from_cache_file=False)
    secs, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert out[schema.SCORE_STATUS].count("ok") == rows, "every row should be scored"
    return rows / secs, scorer.stats.requests / secs, 1000 * cpu / rows


def sample_pool(url: str, cache_dir: str):
    """The bundled sample tagged by retrieval, normalized as the demo does, scored through the server."""
    from datasets import concatenate_datasets

    from instag_hf.normalize import TagNormalizer
    from instag_hf.pipeline import DEMO_NORMALIZER, as_messages
    from instag_hf.samples import SAMPLES

    tagger = instag_hf.Tagger(backend="retrieval", cache_dir=cache_dir, progress=False)
    pool = concatenate_datasets([as_messages(tagger.map(instag_hf.load_sample(name), load_from_cache_file=False),
                                             name) for name in SAMPLES])
    pool = TagNormalizer(**DEMO_NORMALIZER, progress=False).fit(pool).map(pool)
    scorer = Scorer(backend="openai", model="fake-scorer", base_url=url, concurrency=32, cache_dir=cache_dir,
                    progress=False)
    return scorer.map(pool, load_from_cache_file=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--seconds", type=float, default=4.0, help="target duration per run at the bound")
    ap.add_argument("--select", type=int, nargs="+", default=[20, 50])
    args = ap.parse_args()
    disable_progress_bars()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"\n### Scoring, loopback server with {args.latency * 1000:.0f} ms latency per request\n")
    print("| concurrency | rows | requests | rows/s | requests/s | bound (concurrency / latency, requests/s) "
          "| ratio | client CPU ms/row |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    proc, url = start_server(args.latency, "--score-logprobs")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in args.concurrency:
                bound = c / args.latency
                rows = max(20, int(bound * args.seconds / 2))
                rate, requests, ms = throughput(url, c, rows, os.path.join(tmp, f"c{c}"))
                print(f"| {c} | {rows} | {2 * rows} | {rate:,.1f} | {requests:,.1f} | {bound:,.0f} "
                      f"| {requests / bound:.2f} | {ms:.2f} |", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)

    from instag_hf.reporting.compare_plots import comparison_markdown
    from instag_hf.selection.compare import MIG_UNSCORED, compare_strategies
    from instag_hf.selection.params import COMPARED

    proc, url = start_server(0.0, "--score-logprobs")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            pool = sample_pool(url, tmp)
            secs = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(10)
    scores = [s for s in pool[schema.SCORE] if s is not None]
    print(f"\n### MIG with and without scores on the bundled sample ({len(pool)} rows, retrieval tags, "
          f"loopback scores)\n")
    print(f"tagged, normalized and scored in {secs:.1f} s; {len(scores)} of {len(pool)} rows scored, "
          f"instag_score {min(scores):.2f} to {max(scores):.2f} (mean {sum(scores) / len(scores):.2f})")
    for n in args.select:
        comparison = compare_strategies(pool, n, (*COMPARED, MIG_UNSCORED), seed=0)
        print(f"\nn = {n}:\n")
        print(comparison_markdown(comparison).rstrip("\n"))


if __name__ == "__main__":
    main()
