"""The request cache at tens of millions of entries: write and lookup rates, file size, memory.

Fills one :class:`~instag_hf.tagging.cache.RequestCache` through the Tagger's own writer
(:func:`~instag_hf.tagging.answers.store_answers`, one transaction per group of
``--group`` answers, as a backend returns them), with keys from the real key function
and answers shaped like InsTagger's (five tags with explanations, about 330 bytes, plus
``completion_tokens`` and ``finish_reason``). At each checkpoint it measures:

- the write rate over the entries written since the previous checkpoint;
- lookups as the Tagger makes them (``get_many`` of ``--group`` keys): all hits (random
  keys already written) and all misses (keys never written), ``--lookups`` groups each;
- the file's size (database plus write-ahead log) and bytes per entry;
- this process's peak resident set (the cache holds nothing per entry in memory).

The baseline is the first checkpoint of the same run: every rate at the last checkpoint
is printed as a ratio against it.

    python benchmarks/bench_request_cache.py --checkpoints 1000000 10000000 [--group 1000]
        [--lookups 200] [--tmp DIR] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import psutil

from instag_hf.tagging.answers import store_answers
from instag_hf.tagging.backends.base import Completion
from instag_hf.tagging.cache import RequestCache, namespace_hash, request_key

GIB = 1024 ** 3
OUT: list[str] = []
NAMESPACE = namespace_hash({"backend": "openai", "model": "OFA-Sys/InsTagger", "template": "vicuna_v1.1@1",
                            "max_new_tokens": 512, "temperature": 0.0})
ANSWER = ('[{"tag": "information retrieval", "explanation": "The user asks for facts about item %d."}, '
          '{"tag": "summarization", "explanation": "A short summary is wanted."}, '
          '{"tag": "history", "explanation": "The topic is historical."}, '
          '{"tag": "comparison", "explanation": "Two periods are compared."}, '
          '{"tag": "list format", "explanation": "The answer should be a list."}]')


def emit(line: str = "") -> None:
    print(line, flush=True)
    OUT.append(line)


def key(i: int) -> str:
    return request_key(NAMESPACE, f"Query number {i}: tell me about topic {i % 9973} in detail")


def answers(start: int, stop: int) -> dict[str, Completion]:
    return {key(i): Completion(text=ANSWER % i, completion_tokens=96, finish_reason="stop") for i in range(start, stop)}


def file_bytes(cache: RequestCache) -> int:
    return sum(p.stat().st_size for p in cache.directory.glob("requests.sqlite*") if p.is_file())


def lookups(cache: RequestCache, keys_of, groups: int) -> float:
    """Keys looked up per second, ``groups`` calls of one group each."""
    batches = [keys_of() for _ in range(groups)]
    t0 = time.perf_counter()
    for batch in batches:
        cache.get_many(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - t0)


def run(checkpoints: list[int], group: int, groups: int, folder: Path) -> list[dict]:
    cache = RequestCache(folder)
    rng = random.Random(0)
    rows, written = [], 0
    for target in checkpoints:
        t0, start = time.perf_counter(), written
        while written < target:
            stop = min(target, written + group)
            store_answers(cache, answers(written, stop))
            written = stop
            if written % (10 * group * 100) == 0:
                print(f"  {written:,} entries", file=sys.stderr, flush=True)
        write_rate = (written - start) / (time.perf_counter() - t0)
        hit_rate = lookups(cache, lambda: [key(rng.randrange(written)) for _ in range(group)], groups)
        miss_rate = lookups(cache, lambda: [key(written + rng.randrange(10 ** 12)) for _ in range(group)], groups)
        size = file_bytes(cache)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        rows.append(dict(entries=written, write=write_rate, hit=hit_rate, miss=miss_rate, size=size,
                         per_entry=size / written, peak=peak, counted=len(cache)))
        print(f"{written:,}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[1_000_000, 2_000_000, 5_000_000, 10_000_000])
    ap.add_argument("--group", type=int, default=1000, help="answers per transaction and keys per lookup")
    ap.add_argument("--lookups", type=int, default=200, help="lookup calls per checkpoint, hits and misses each")
    ap.add_argument("--tmp", help="folder for the cache file (default: the system's)")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args(argv)
    checkpoints = sorted(set(args.checkpoints))
    if checkpoints[0] < args.group:
        ap.error("every checkpoint must be at least --group entries")

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t0 = time.perf_counter()
        rows = run(checkpoints, args.group, args.lookups, Path(tmp))
        total = time.perf_counter() - t0
    emit("## Request cache at scale (bench_request_cache.py)\n")
    emit(f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
         f"{psutil.virtual_memory().total / GIB:.0f} GiB; one process, groups of {args.group:,} answers per "
         f"transaction and {args.group:,} keys per lookup, {args.lookups} lookups of each kind per checkpoint; "
         f"filled in {total:.0f} s.\n")
    emit("| entries | writes/s (since previous) | hits/s | misses/s | file (GiB) | bytes/entry | peak RSS (GiB) |")
    emit("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        emit(f"| {r['entries']:,} | {r['write']:,.0f} | {r['hit']:,.0f} | {r['miss']:,.0f} | {r['size'] / GIB:.2f} "
             f"| {r['per_entry']:.0f} | {r['peak'] / GIB:.2f} |")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        emit(f"\n{last['entries']:,} against {first['entries']:,} entries (the baseline, same run): writes "
             f"{last['write'] / first['write']:.2f}x, hits {last['hit'] / first['hit']:.2f}x, misses "
             f"{last['miss'] / first['miss']:.2f}x, bytes/entry {last['per_entry'] / first['per_entry']:.2f}x, "
             f"peak RSS {last['peak'] / first['peak']:.2f}x.")
    assert all(r["counted"] == r["entries"] for r in rows), "the cache lost entries"
    if args.markdown:
        Path(args.markdown).write_text("\n".join(OUT) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
