"""The embedded default (SmolLM2-135M-Instruct) on our reference set: the old template against the new, one run.

For each template, in the same process and on the same model: fuzzy and exact micro F1
against the reference tags (``instag_hf.samples.load_reference``: 186 queries we wrote,
none in the few-shot bank), tags per query, the most frequent predicted tag's share of
rows (beside its share in the reference), and queries per second (user turns per second,
request cache off, model loaded before the clock starts). ``--knn`` adds the tags of the
nearest bank queries alone (no language model), the floor any prompt should beat.

    python benchmarks/bench_embedded_quality.py [--templates fewshot@1 fewshot_retrieval@1] [--rows 186] [--knn]
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


def knn_row(ds) -> dict:
    """Tags of the nearest bank query, as predictions (what retrieval alone gives)."""
    from datasets import Dataset

    from instag_hf.quality.f1 import evaluate_tags
    from instag_hf.tagging.fewshot import default_bank

    bank = default_bank()
    queries = [" ".join(m["content"] for m in row if m["role"] == "user") for row in ds["messages"]]
    nearest = bank.nearest(queries, 1)
    preds = [list(n[-1].tags) for n in nearest]
    report = evaluate_tags(Dataset.from_dict({"pred": preds, "gold": ds["reference_tags"]}),
                           predicted_column="pred", gold_column="gold")
    return {"fuzzy": report.fuzzy.micro.f1, "exact": report.exact.micro.f1,
            "tags_per_query": sum(map(len, preds)) / len(preds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--templates", nargs="+", default=["fewshot@1", "fewshot_retrieval@1"])
    ap.add_argument("--rows", type=int, default=0, help="every k-th row, to about this many (0: all)")
    ap.add_argument("--knn", action="store_true")
    ap.add_argument("--examples", type=int, default=6, help="sample rows to print per template")
    args = ap.parse_args()
    disable_progress_bars()
    import torch

    ds = load_reference()
    if args.rows:
        ds = ds.select(range(0, len(ds), max(1, len(ds) // args.rows)))
    print(f"reference set: {len(ds)} rows; torch threads {torch.get_num_threads()}, {os.cpu_count()} cores\n")
    print("| template | fuzzy F1 | exact F1 | tags per query | top tag (share; in reference) | queries/s | start-up s |")
    print("|---|---:|---:|---:|---|---:|---:|")
    samples = {}
    for name in args.templates:
        t0 = time.perf_counter()
        tagger = instag_hf.Tagger(backend="transformers", model="embedded", template=name, use_cache=False,
                                  progress=False)
        tagger.tag_queries(["Warm-up: say hello."])  # loads the model (and the bank's embeddings)
        start = time.perf_counter() - t0
        r = score_tagger(tagger, ds)
        print(f"| {tagger.template.id} | {r['fuzzy']['f1']:.3f} | {r['exact']['f1']:.3f} | {r['tags_per_query']:.2f} "
              f"| {r['top_tag']} ({r['top_tag_share']:.1%}; {r['top_tag_reference_share']:.1%}) "
              f"| {r['queries_per_s']:.2f} | {start:.0f} |", flush=True)
        samples[tagger.template.id] = r["predictions"]
    if args.knn:
        k = knn_row(ds)
        print(f"| nearest bank query's tags (no LLM) | {k['fuzzy']:.3f} | {k['exact']:.3f} | {k['tags_per_query']:.2f} "
              "| - | - | - |")
    for name, preds in samples.items():
        print(f"\n{name}, sample rows:\n\n| id | predicted | reference |\n|---|---|---|")
        for p in preds[:: max(1, len(preds) // args.examples)][: args.examples]:
            print(f"| {p['id']} | {', '.join(p['tags']) or p['status']} | {', '.join(p['reference_tags'])} |")


if __name__ == "__main__":
    main()
