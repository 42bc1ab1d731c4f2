"""The Batch API path at scale: memory per request of ``Tagger(backend="openai-batch").map``.

The loopback server (``tests/support/server.py`` with its Batch API) runs in its own
process, so the figures are the tagging process alone. For each size and window the run
is a fresh child process: ``--rows`` single-turn rows are tagged in one ``map`` (requests
submitted ``--window-requests`` at a time in batch files split at ``--max-batch-requests``
lines, each window collected and cached before the next), and its peak resident set above
the process before ``map`` (VmHWM) is reported, whole and per row. The baseline is the same
rows asked in one window, in the same run: each windowed run's memory and time are printed
as a ratio against it.

    python benchmarks/bench_batch_api.py --rows 50000 200000 --window-requests 50000
        [--max-batch-requests 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("INSTAG_HF_VERBOSITY", "WARNING")

import _paths  # noqa: E402,F401  (tests/support on the path)
from bench_api import start_server  # noqa: E402

MIB = 1024 ** 2


def child(url: str, rows: int, max_batch_requests: int, window: int, cache_dir: str) -> dict:
    from datasets import Dataset

    from instag_hf import Tagger, schema

    ds = Dataset.from_dict({"query": [f"Row {i}: describe subject {i % 9973} and its history briefly" for i in range(rows)]})
    tagger = Tagger(backend="openai-batch", model="fake-tagger", base_url=url, cache_dir=cache_dir, progress=False,
                    poll_interval=0, max_batch_requests=max_batch_requests, window_requests=window)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    out = tagger.map(ds, load_from_cache_file=False)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ok = out.with_format("arrow")[schema.STATUS].to_pylist().count("ok")
    stats = tagger.backend.stats()
    return dict(rows=rows, window=window, seconds=secs, before=before, peak=peak, ok=ok,
                batches=stats["batches_created"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--max-batch-requests", type=int, default=50_000)
    ap.add_argument("--window-requests", type=int, nargs="+", default=[50_000],
                    help="windows to run each size with besides one that holds every row (the baseline)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        url, cache_dir = args.child
        print(json.dumps(child(url, args.rows[0], args.max_batch_requests, args.window_requests[0], cache_dir)))
        return 0
    proc, url = start_server(0.0, "--batch-validate-seconds", "0", "--batch-run-seconds", "0")
    results = []
    try:
        for rows in sorted(args.rows):
            # the baseline first (one window holds every row), then each window smaller than the rows
            for window in [max(rows, *args.window_requests)] + sorted({w for w in args.window_requests if w < rows},
                                                                      reverse=True):
                with tempfile.TemporaryDirectory() as tmp:
                    line = subprocess.run([sys.executable, __file__, "--rows", str(rows), "--max-batch-requests",
                                           str(args.max_batch_requests), "--window-requests", str(window),
                                           "--child", url, tmp],
                                          check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
                results.append(json.loads(line))
                print(results[-1], file=sys.stderr, flush=True)
    finally:
        proc.kill()
    print("| rows | window | batch files | seconds | rows/s | peak above start (MiB) | KiB per row | rows ok |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        grew = r["peak"] - r["before"]
        window = f"{r['window']:,}" if r["window"] < r["rows"] else "all"
        print(f"| {r['rows']:,} | {window} | {r['batches']} | {r['seconds']:.0f} | {r['rows'] / r['seconds']:,.0f} | "
              f"{grew / MIB:,.0f} | {grew / r['rows'] / 1024:.2f} | {r['ok']:,} |")
    whole = {r["rows"]: r for r in results if r["window"] >= r["rows"]}
    for r in results:  # the baseline: the same rows in one window, same run
        base = whole.get(r["rows"])
        if base is not None and r is not base:
            print(f"\n{r['rows']:,} rows in windows of {r['window']:,} against one window (baseline, same run): "
                  f"memory {(r['peak'] - r['before']) / (base['peak'] - base['before']):.2f}x, "
                  f"time {r['seconds'] / base['seconds']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
