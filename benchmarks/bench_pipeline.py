"""Everything after tagging, end to end, at 1M+ rows: time and peak memory (process tree) per step.

Steps, on a synthetic tagged pool (``support.synthetic.make_corpus``, read back
from a ``save_to_disk`` folder, as a real pool would be): normalize (paper preset, the
real all-MiniLM-L6-v2), map (``instag_norm_tags``), analyze, Cf-D and MIG selection of
``--select`` rows each, and ``write_publication`` (parquet configs, plots, card). Each
size starts from an empty ``INSTAG_HF_HOME`` that every step shares, as a user's first
run does: the embedding cache is cold for normalization, and MIG's label graph reads the
vectors normalization stored. Each size runs in a fresh child process; peak memory is the resident set
of that process and all its children, sampled every 250 ms (each sample scans /proc for children:
sampling faster takes a core of its own), and its own VmHWM (exact, reset before each step),
whichever is larger.

Baseline in the same run: the association step as it was (mlxtend FP-Growth at
``max_len=2`` on the samples x frequent-tags table) against the pair count, on the
first ``--baseline-rows`` rows of the same association input, with a check that both
find the same rules. With several sizes, the growth of every step from the smallest to
the largest size is printed as a ratio.

    python benchmarks/bench_pipeline.py --rows 1000000 2000000 [--select 50000]
        [--baseline-rows 300000] [--embedder minilm|synthetic] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("INSTAG_HF_VERBOSITY", "WARNING")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

import _paths  # noqa: E402,F401  (tests/support on the path)

GIB = 1024 ** 3
PAPER = 306_044
OUT: list[str] = []


def emit(line: str = "") -> None:
    print(line, flush=True)
    OUT.append(line)


# --- memory ------------------------------------------------------------------------------
class TreePeak:
    """The largest resident set of this process plus its children, sampled in a thread."""

    def __init__(self, interval: float = 0.25):
        self.proc, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        total = 0
        for p in [self.proc] + self.proc.children(recursive=True):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.interval)

    def reset(self) -> None:
        self.peak = self.now()
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def read(self) -> int:
        hwm = 0
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
        except OSError:
            pass
        return max(self.peak, self.now(), hwm)

    def stop(self) -> None:
        self._stop.set()


def measured(meter: TreePeak, fn):
    meter.reset()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, meter.read()


# --- the corpus --------------------------------------------------------------------------
def generate(rows: int, seed: int, path: Path) -> None:
    """A pool of ``rows`` tagged samples (+1% failed rows) saved to ``path``; concepts and noise scale with it."""
    from support.synthetic import make_corpus

    scale = rows / PAPER
    corpus = make_corpus(n_samples=rows, n_concepts=int(8000 * scale), noise_tags=int(100_000 * scale), n_pairs=60,
                         max_variants=3, variant_share=0.2, seed=seed)
    ds = corpus.to_dataset()
    del corpus
    ds.save_to_disk(str(path))


def pool(rows: int, seed: int, folder: Path, me: list[str]) -> Path:
    """The saved pool of ``rows`` for ``seed`` in ``folder``, generated (in a child process) unless
    a whole one is there: it is written under a temporary name and renamed when complete."""
    path = folder / f"pool_{rows}_seed{seed}"
    if path.is_dir():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{path.name}.partial"
    subprocess.run(["rm", "-rf", str(partial)], check=False)
    t0 = time.perf_counter()
    subprocess.run(me + ["--generate", str(partial)], check=True)
    partial.rename(path)
    print(f"{rows:,} rows generated in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return path


# --- the old association step, for the baseline ------------------------------------------
def fpgrowth_rules(corpus, min_count: int, min_confidence: float) -> set:
    """The association rules as the step found them before pair counts: FP-Growth on a one-hot table."""
    import pandas as pd
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    frequent = np.flatnonzero(corpus.counts >= min_count)
    sub = corpus.matrix[:, frequent].tocsr()
    sub = sub[np.diff(sub.indptr) > 0]
    n = sub.shape[0]
    table = pd.DataFrame.sparse.from_spmatrix(sub.astype(bool), columns=range(len(frequent)))
    itemsets = fpgrowth(table, min_support=(min_count - 0.5) / n, use_colnames=True, max_len=2)
    del table
    if itemsets["itemsets"].map(len).max() < 2:
        return set()
    found = association_rules(itemsets, num_itemsets=n, metric="confidence", min_threshold=min_confidence - 1e-9,
                              return_metrics=["antecedent support", "support", "confidence"])
    out = set()
    for ante, cons, ab in zip(found["antecedents"], found["consequents"], found["support"]):
        a, b, both = int(frequent[next(iter(ante))]), int(frequent[next(iter(cons))]), round(ab * n)
        if both >= min_confidence * corpus.counts[a] - 1e-9:
            out.add((a, b, both))
    return out


def baseline(meter: TreePeak, corpus, min_support: int, min_confidence: float) -> dict:
    from instag_hf.normalize import AssociationAggregator

    step = AssociationAggregator(min_support, min_confidence)
    before = meter.now()
    (new, t_new, p_new) = measured(meter, lambda: step.rules(corpus))
    (old, t_old, p_old) = measured(meter, lambda: fpgrowth_rules(corpus, min_support, min_confidence))
    ante, cons, both, _ = new[0]
    same = old == set(zip(ante.tolist(), cons.tolist(), both.tolist()))
    return {"rows": len(corpus), "tags": len(corpus.vocab), "frequent": new[1]["frequent_tags"],
            "rules": len(old), "same": same, "pairs_s": t_new, "pairs_peak": p_new, "fpgrowth_s": t_old,
            "fpgrowth_peak": p_old, "before": before}


# --- one size, in a child process --------------------------------------------------------
def run_size(path: Path, select: int, baseline_rows: int, embedder_name: str, work: Path) -> dict:
    from datasets import disable_progress_bars, load_from_disk

    from instag_hf.analysis.metrics import analyze
    from instag_hf.normalize import SentenceTransformerEmbedder, TagNormalizer
    from instag_hf.publish import write_publication
    from instag_hf.selection.sampling import sample

    disable_progress_bars()
    warnings.simplefilter("ignore")
    meter = TreePeak()
    steps: dict[str, dict] = {}

    def step(name, fn):
        out, secs, peak = measured(meter, fn)
        steps[name] = {"seconds": secs, "peak": peak}
        print(f"  {name}: {secs:.1f} s, peak {peak / GIB:.2f} GiB", file=sys.stderr, flush=True)
        return out

    ds = step("load", lambda: load_from_disk(str(path)))
    if embedder_name == "minilm":
        embedder = SentenceTransformerEmbedder(device="cpu")
    else:
        from support.synthetic import SyntheticEmbedder
        embedder = SyntheticEmbedder({}, dim=384)
    normalizer = TagNormalizer(preset="paper", embedder=embedder, progress=False)
    held = {}

    def fit():
        for stage, corpus in normalizer.iter_fit(ds):
            if stage.name == "semantic":  # the association input, its first rows kept for the baseline
                held["assoc_input"] = corpus.take(np.arange(min(baseline_rows, len(corpus))))
        return normalizer.mapping_

    mapping = step("normalize (fit)", fit)
    stages = {s.name: {"seconds": s.seconds, "tags_before": s.tags_before, "tags_after": s.tags_after,
                       "stats": {k: v for k, v in s.stats.items() if isinstance(v, (int, float, str))}}
              for s in mapping.report.stages}
    pool = step("map (instag_norm_tags)", lambda: mapping.map(ds))
    step("analyze", lambda: analyze(pool))
    cfd = step(f"Cf-D {select:,}", lambda: sample(pool, select, strategy="cfd", return_report=True))
    mig = step(f"MIG {select:,}", lambda: sample(pool, select, strategy="mig", return_report=True))
    step("write_publication", lambda: write_publication(
        work / "publication", pool, mapping=mapping, subsets={"cfd": cfd, "mig": mig}, overwrite=True,
        pretty_name="bench_pipeline"))
    whole_peak = max(s["peak"] for s in steps.values())
    del cfd, mig, pool, ds
    assoc = normalizer.association_aggregator
    base = baseline(meter, held.pop("assoc_input"), assoc.min_support, assoc.min_confidence)
    meter.stop()
    return {"steps": steps, "stages": stages, "peak": whole_peak, "baseline": base,
            "rows": mapping.report.samples + mapping.report.skipped_rows}


def child_main(args) -> int:
    with tempfile.TemporaryDirectory(dir=args.tmp) as work:
        # a first run's state: every cache (embeddings included) empty, and one home for all steps,
        # so MIG's label graph reads the vectors normalization stored, as it does for a user
        os.environ["INSTAG_HF_HOME"] = str(Path(work) / "home")
        result = run_size(Path(args.child), args.select, args.baseline_rows, args.embedder, Path(work))
    Path(args.result).write_text(json.dumps(result))
    return 0


# --- the parent: generate, run each size, print the tables -------------------------------
def table(rows: int, r: dict) -> None:
    emit(f"\n### {rows:,} rows\n")
    emit("| step | seconds | peak RSS, process tree (GiB) |")
    emit("|---|---:|---:|")
    for name, s in r["steps"].items():
        emit(f"| {name} | {s['seconds']:.1f} | {s['peak'] / GIB:.2f} |")
    total = sum(s["seconds"] for s in r["steps"].values())
    emit(f"| **all steps** | **{total:.1f}** | **{r['peak'] / GIB:.2f}** |")
    emit("\nNormalization stages (seconds, tags in -> out):")
    emit("")
    for name, s in r["stages"].items():
        extra = ""
        if name == "association":
            st = s["stats"]
            extra = (f"; {st.get('frequent_tags', 0):,} frequent tags, {st.get('cooccurring_pairs', 0):,} "
                     f"co-occurring pairs, {st.get('rules', 0):,} rules, {st.get('merged_tags', 0):,} merges")
        if name == "semantic":
            st = s["stats"]
            extra = f"; embedding {st.get('embed_seconds', 0):.1f} s of {st.get('embedded', 0):,} tags"
        emit(f"- {name}: {s['seconds']:.1f} s, {s['tags_before']:,} -> {s['tags_after']:,}{extra}")
    b = r["baseline"]
    emit(f"\nBaseline, association on the first {b['rows']:,} rows of the same association input "
         f"({b['frequent']:,} frequent tags, {b['rules']:,} rules; same rules: {'yes' if b['same'] else 'NO'}):\n")
    base = b.get("before", 0)
    emit("| association | seconds | peak RSS (GiB) | above the process before (GiB) |")
    emit("|---|---:|---:|---:|")
    emit(f"| FP-Growth (mlxtend, max_len 2, one-hot table), before | {b['fpgrowth_s']:.1f} | "
         f"{b['fpgrowth_peak'] / GIB:.2f} | {(b['fpgrowth_peak'] - base) / GIB:.2f} |")
    emit(f"| pair counts (X.T @ X in row chunks), now | {b['pairs_s']:.1f} | {b['pairs_peak'] / GIB:.2f} "
         f"| {(b['pairs_peak'] - base) / GIB:.2f} |")
    emit(f"| FP-Growth / pairs | {b['fpgrowth_s'] / max(b['pairs_s'], 1e-9):.1f}x | "
         f"{b['fpgrowth_peak'] / max(b['pairs_peak'], 1):.2f}x | "
         + (f"{(b['fpgrowth_peak'] - base) / (b['pairs_peak'] - base):.1f}x |" if b['pairs_peak'] - base >= 2 ** 20
            else "pairs: under 1 MiB |"))


def growth(results: dict[int, dict]) -> None:
    sizes = sorted(results)
    lo, hi = sizes[0], sizes[-1]
    emit(f"\n### Growth from {lo:,} to {hi:,} rows ({hi / lo:.1f}x the rows)\n")
    emit("| step | seconds | seconds ratio | peak GiB | peak ratio |")
    emit("|---|---:|---:|---:|---:|")
    for name in results[lo]["steps"]:
        a, b = results[lo]["steps"][name], results[hi]["steps"].get(name)
        if b is None:
            continue
        emit(f"| {name} | {a['seconds']:.1f} -> {b['seconds']:.1f} | {b['seconds'] / max(a['seconds'], 1e-9):.2f}x "
             f"| {a['peak'] / GIB:.2f} -> {b['peak'] / GIB:.2f} | {b['peak'] / max(a['peak'], 1):.2f}x |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="tagged samples per size")
    ap.add_argument("--select", type=int, default=50_000, help="rows selected by Cf-D and by MIG")
    ap.add_argument("--baseline-rows", type=int, default=300_000, help="rows of the FP-Growth baseline")
    ap.add_argument("--embedder", choices=["minilm", "synthetic"], default="minilm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", help="folder for the corpora and outputs (default: the system's)")
    ap.add_argument("--markdown", help="also write the tables to this file")
    ap.add_argument("--pools", help="keep the generated pools in this folder and reuse them on later runs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--generate", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.generate:
        generate(args.rows[0], args.seed, Path(args.generate))
        return 0
    if args.child:
        return child_main(args)

    emit("## End to end after tagging (bench_pipeline.py)\n")
    emit(f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
         f"{psutil.virtual_memory().total / GIB:.0f} GiB; paper preset, embedder {args.embedder}, "
         f"Cf-D and MIG {args.select:,} rows each; peak = process tree RSS sampled every 250 ms "
         "(or the process's VmHWM, whichever is larger), reset before each step.")
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for rows in args.rows:
            me = [sys.executable, __file__, "--rows", str(rows), "--seed", str(args.seed)]
            path = pool(rows, args.seed, Path(args.pools) if args.pools else Path(tmp), me)
            out = Path(tmp) / f"result_{rows}.json"
            subprocess.run(me + ["--child", str(path), "--result", str(out), "--select", str(args.select),
                                 "--baseline-rows", str(args.baseline_rows), "--embedder", args.embedder,
                                 "--tmp", tmp], check=True)
            results[rows] = json.loads(out.read_text())
            table(results[rows]["rows"], results[rows])
            if not args.pools:
                subprocess.run(["rm", "-rf", str(path)], check=False)
    if len(results) > 1:
        growth(results)
    if args.markdown:
        Path(args.markdown).write_text("\n".join(OUT) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
