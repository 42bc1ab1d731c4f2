"""The fast local tagger against the embedded LLM tagger: speed, and F1 against held-out teacher tags.

Teacher: the synthetic template teacher of :mod:`support.synthetic_queries`
(queries built from tasks, slots and modifiers with known intentions; the teacher
names 30% of task/modifier tags by a paraphrase and drops 5%), so "teacher tags" are
known without an API. The local tagger (all-MiniLM-L6-v2 embeddings + ridge or kNN)
is trained on the teacher's tags of the training queries and scored on held-out
queries (the paper held out 1K). The embedded LLM tagger (``instag_hf.Tagger()``,
SmolLM2-135M on CPU, cache off) tags a few of the same held-out queries in the same
run, as the speed baseline. Timings exclude model loading (each tagger is warmed up
on one query first).

    python benchmarks/bench_quality.py [--train 2000] [--test 1000] [--llm-queries 16] [--skip-llm]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

import _paths  # noqa: E402,F401  (tests/support on the path)
from instag_hf import Tagger  # noqa: E402
from instag_hf.quality.local_backend import LocalBackend  # noqa: E402
from instag_hf.quality import LocalTagModel, tag_f1  # noqa: E402
from support.synthetic_queries import make_tagged_queries  # noqa: E402
from instag_hf.quality.embedding import get_embedder  # noqa: E402

PAPER = "paper: InsTagger (LLaMA-2 7B) vs ChatGPT teacher, 1K held out (not measured here)"


class Recorder:
    """Wraps the shared MiniLM embedder: remembers vectors so both classifiers train on one embedding pass."""

    cache_id = None

    def __init__(self):
        self.inner = get_embedder(None)
        self.memory: dict[str, np.ndarray] = {}
        self.seconds = 0.0

    def __call__(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self.memory]
        if missing:
            start = time.perf_counter()
            for t, v in zip(missing, self.inner(missing)):
                self.memory[t] = v
            self.seconds += time.perf_counter() - start
        return np.stack([self.memory[t] for t in texts])


def split(n_train: int, n_test: int, seed: int) -> tuple[list, list]:
    data = make_tagged_queries(int((n_train + n_test) * 1.15) + 50, seed=seed)
    seen, rows = set(), []
    for q, t in zip(data.queries, data.teacher):
        if q not in seen:
            seen.add(q)
            rows.append((q, t))
    order = np.random.default_rng(seed).permutation(len(rows))
    test = [rows[i] for i in order[:n_test]]
    train = [rows[i] for i in order[n_test:n_test + n_train]]
    return train, test


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def scores(pred: list[list[str]], gold: list[list[dict]]):
    r = tag_f1(pred, gold, threshold=0.8)
    return r.exact.micro, r.fuzzy.micro


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=2000, help="training queries (default: 2000)")
    ap.add_argument("--test", type=int, default=1000, help="held-out queries (default: 1000, as the paper)")
    ap.add_argument("--llm-queries", type=int, default=16,
                    help="held-out queries the embedded LLM tags (default: 16; ~15-35 s each on 2 busy cores)")
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    started = time.perf_counter()
    train, test = split(args.train, args.test, args.seed)
    queries, gold = [q for q, _ in test], [t for _, t in test]
    print("# Local tagger vs embedded LLM tagger\n")
    print(f"Teacher: synthetic template teacher (`instag_hf.quality.make_tagged_queries`, seed {args.seed}): "
          "tags known by construction, 30% of task/modifier tags named by a paraphrase, 5% dropped. "
          f"{len(train)} training queries, {len(test)} held-out queries (distinct texts).")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads; CPU shared with other jobs, "
          "so absolute timings are noisy (ratios are from the same run).\n")

    recorder = Recorder()
    recorder(["warm-up"])
    recorder.seconds = 0.0
    fit_rows, models = [], {}
    for method in ("ridge", "knn"):
        model = LocalTagModel(method, recorder)
        before = recorder.seconds
        secs, _ = timed(lambda: model.fit([q for q, _ in train], [t for _, t in train]))
        embed_s = recorder.seconds - before
        models[method] = model
        fit_rows.append((method, len(train), len(model.vocab), embed_s, secs - embed_s, model.threshold_,
                         model.info["val_micro_f1"]))

    with tempfile.TemporaryDirectory() as tmp:
        speed, quality = [], []
        local_pred = {}
        for method, model in models.items():
            model._embedder = None  # served from the saved folder with the real MiniLM, as users run it
            model._embedder_spec = None
            model.info["embedder"] = model.embedder_name
            folder = model.save(os.path.join(tmp, method))
            tagger = Tagger(backend=LocalBackend(str(folder)), use_cache=False, progress=False)
            tagger.tag_queries(["warm-up query"])
            secs, results = timed(lambda: tagger.tag_queries(queries))
            assert all(r.status == "ok" for r in results)
            pred = [[t["tag"] for t in r.tags] for r in results]
            local_pred[method] = pred
            speed.append((f"local {method} (`Tagger(backend='local')`, cache off)", len(queries), secs))
            exact, fuzzy = scores(pred, gold)
            quality.append((f"local {method}", len(queries), exact, fuzzy))

    llm = None
    n_llm = min(args.llm_queries, len(queries))
    if not args.skip_llm:
        tagger = Tagger(use_cache=False, progress=False)
        tagger.tag_queries(["Say hello."])
        secs, results = timed(lambda: tagger.tag_queries(queries[:n_llm]))
        llm = (secs, results, tagger.backend.describe(), tagger.template.id)
        pred = [[t["tag"] for t in r.tags] if r.status in ("ok", "truncated") else None for r in results]
        llm_pred = pred
        ok = sum(p is not None for p in pred)
        exact, fuzzy = scores([p or [] for p in pred], gold[:n_llm])
        quality.append((f"embedded LLM ({llm[3]}; {ok}/{n_llm} answers parsed, failures scored as no tags)",
                        n_llm, exact, fuzzy))
        exact, fuzzy = scores(local_pred["ridge"][:n_llm], gold[:n_llm])
        quality.append(("local ridge, on the LLM's queries", n_llm, exact, fuzzy))

    print("## Speed (CPU)\n")
    base = (n_llm / llm[0]) if llm else None
    print("| tagger | queries | seconds | queries/s | vs embedded LLM |")
    print("|---|---:|---:|---:|---:|")
    if llm:
        print(f"| embedded LLM: {llm[2]}, `Tagger()`, cache off (baseline) | {n_llm} | {llm[0]:.1f} "
              f"| {base:.2f} | 1.0x |")
    for name, n, secs in speed:
        ratio = f"{(n / secs) / base:,.0f}x" if base else "n/a"
        print(f"| {name} | {n} | {secs:.2f} | {n / secs:,.1f} | {ratio} |")

    print("\n## Quality against held-out teacher tags (micro averages; fuzzy = MiniLM cosine >= 0.8, "
          "one-to-one Hungarian matching)\n")
    print("| tagger | queries | exact P | exact R | exact F1 | fuzzy P | fuzzy R | fuzzy F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, exact, fuzzy in quality:
        print(f"| {name} | {n} | {pct(exact.precision)} | {pct(exact.recall)} | {pct(exact.f1)} "
              f"| {pct(fuzzy.precision)} | {pct(fuzzy.recall)} | {pct(fuzzy.f1)} |")
    print(f"| {PAPER} | 1000 | | | 31.8% | | | 73.4% |")

    print("\n## Training the local tagger\n")
    print("| method | training queries | tags | embedding s | fit s | threshold | validation micro F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for method, n, tags, embed_s, fit_s, thr, val in fit_rows:
        print(f"| {method} | {n} | {tags} | {embed_s:.1f} | {fit_s:.2f} | {thr:.3f} | {pct(val)} |")
    print("\n(kNN reuses the embeddings computed for ridge: its embedding time is ~0.)")
    if llm:
        print("\n## Examples (held-out queries)\n")
        print("| query | teacher | local ridge | embedded LLM |\n|---|---|---|---|")
        for i in range(min(3, n_llm)):
            cells = [queries[i], ", ".join(t["tag"] for t in gold[i]), ", ".join(local_pred["ridge"][i]),
                     ", ".join(llm_pred[i]) if llm_pred[i] is not None else f"({llm[1][i].status})"]
            print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    print(f"\nTotal wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
