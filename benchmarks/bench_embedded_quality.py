"""The CPU taggers on our reference set, old and new, in one run.

For each run (a backend and template: the embedded SmolLM2 on transformers or vLLM's CPU
build, or the retrieval tagger, no language model), in the same process: fuzzy and exact micro F1
against the reference tags (``instag_hf.samples.load_reference``: 186 queries we wrote,
none in the few-shot bank), tags per query, the most frequent predicted tag's share of
rows (beside its share in the reference), and queries per second (user turns per second,
request cache off, model loaded before the clock starts, start-up timed apart).

    python benchmarks/bench_embedded_quality.py [--runs transformers:fewshot@1 retrieval+method=vote ...] [--rows 186]

A run is ``backend[:template][+option=value...]``; options go to the backend
(``retrieval+method=vote+k=5``).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import disable_progress_bars  # noqa: E402

import instag_hf  # noqa: E402
from instag_hf.quality.reference import score_tagger  # noqa: E402
from instag_hf.samples import load_reference  # noqa: E402


def _option(pair: str) -> tuple[str, object]:
    key, _, value = pair.partition("=")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", default=["transformers:fewshot@1", "transformers:fewshot_retrieval@2", "retrieval+method=vote",
                             "retrieval"],
                    help="backend[:template][+option=value...] to score, in this order (vllm needs scripts/vllm_cpu_env.sh)")
    ap.add_argument("--rows", type=int, default=0, help="every k-th row, to about this many (0: all)")
    ap.add_argument("--examples", type=int, default=6, help="sample rows to print per template")
    args = ap.parse_args()
    disable_progress_bars()
    import torch

    ds = load_reference()
    if args.rows:
        ds = ds.select(range(0, len(ds), max(1, len(ds) // args.rows)))
    print(f"reference set: {len(ds)} rows; torch threads {torch.get_num_threads()}, {os.cpu_count()} cores\n")
    print("| engine | template | fuzzy F1 | exact F1 | tags per query | top tag (share; in reference) | queries/s | start-up s |")
    print("|---|---|---:|---:|---:|---|---:|---:|")
    samples = {}
    for run in args.runs:
        spec, *pairs = run.split("+")
        backend, _, name = spec.partition(":")
        t0 = time.perf_counter()
        options = {} if backend == "retrieval" else {"model": "embedded"}
        options.update(_option(pair) for pair in pairs)
        tagger = instag_hf.Tagger(backend=backend, template=name or None, use_cache=False, progress=False,
                                  batch_size=64 if backend == "vllm" else 16, **options)
        tagger.tag_queries(["Warm-up: say hello."])  # loads the model (and the bank's embeddings)
        start = time.perf_counter() - t0
        r = score_tagger(tagger, ds)
        label = " ".join([backend, *pairs])
        print(f"| {label} | {tagger.template.id} | {r['fuzzy']['f1']:.3f} | {r['exact']['f1']:.3f} | {r['tags_per_query']:.2f} "
              f"| {r['top_tag']} ({r['top_tag_share']:.1%}; {r['top_tag_reference_share']:.1%}) "
              f"| {r['queries_per_s']:.2f} | {start:.0f} |", flush=True)
        samples[f"{label}, {tagger.template.id}"] = r["predictions"]
    for name, preds in samples.items():
        print(f"\n{name}, sample rows:\n\n| id | predicted | reference |\n|---|---|---|")
        for p in preds[:: max(1, len(preds) // args.examples)][: args.examples]:
            print(f"| {p['id']} | {', '.join(p['tags']) or p['status']} | {', '.join(p['reference_tags'])} |")


if __name__ == "__main__":
    main()
