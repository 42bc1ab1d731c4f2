"""What the embedded default (SmolLM2-135M-Instruct, fewshot@1) makes of the bundled sample.

Prints the parse-ok rate per sample, diversity and complexity of the raw tags, the top
tags and a few examples: the honest picture the README quotes. Answers come from the
request cache when an earlier run (e.g. ``instag demo``) already paid for them; the
numbers do not depend on timing, so that is safe. ``--no-cache`` forces fresh answers.

    python benchmarks/bench_embedded_quality.py [--no-cache] [--examples 8]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import disable_progress_bars  # noqa: E402

from instag_hf import Tagger, load_sample, schema  # noqa: E402
from instag_hf.analysis.metrics import summarize_dataset  # noqa: E402
from instag_hf.samples import SAMPLES  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--examples", type=int, default=8)
    args = ap.parse_args()
    disable_progress_bars()
    tagger = Tagger(use_cache=not args.no_cache, progress=False)
    print(f"tagger: {tagger.describe()}\n")
    print("| sample | rows | user turns | turns parsed ok | rows ok | diversity (raw) | complexity |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    tagged = {}
    for name in SAMPLES:
        ds = tagger.map(load_sample(name), load_from_cache_file=False)
        tagged[name] = ds
        turns = [s for row in ds[schema.TURN_STATUS] for s in row]
        summary = summarize_dataset(ds)
        print(f"| {name} | {len(ds)} | {len(turns)} | {turns.count('ok')}/{len(turns)} ({turns.count('ok') / len(turns):.1%}) "
              f"| {summary.tagged_rows}/{summary.rows} | {summary.diversity} | {summary.complexity:.2f} |")
    print(f"\nrequests this run: {tagger.stats.requests}, cache hits: {tagger.stats.cache_hits}")
    combined = [t["tag"] for ds in tagged.values() for row in ds[schema.TAGS] for t in row]
    from collections import Counter

    print("\nTop raw tags: " + ", ".join(f"{t} ({n})" for t, n in Counter(combined).most_common(12)))
    print("\n| query (first 80 characters) | tags |\n|---|---|")
    ds = tagged["alpaca"]
    for i in range(0, len(ds), max(1, len(ds) // args.examples))[: args.examples]:
        query = (ds[i]["instruction"] + " " + ds[i]["input"]).strip().replace("|", "/").replace("\n", " ")[:80]
        print(f"| {query} | {', '.join(t['tag'] for t in ds[i][schema.TAGS]) or ds[i][schema.STATUS]} |")


if __name__ == "__main__":
    main()
