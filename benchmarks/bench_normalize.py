"""Tag normalization at the paper's scale, each comparison against a baseline measured in the same run.

1. End to end on a synthetic paper-scale corpus (306,044 samples, about 4.5 tags each,
   more than 100K unique raw tags; see ``support.synthetic``), read from a
   ``save_to_disk`` folder: time and peak memory of every stage, with the paper preset
   and the real all-MiniLM-L6-v2 (or ``--embedder synthetic``).
2. The semantic step (FAISS range search -> sparse graph -> DBSCAN) against scikit-learn
   DBSCAN on a dense cosine-distance matrix, on the same vectors, checking both give
   the same clusters: the paper-scale semantic input and ``--dense-sizes`` synthetic sets.
3. Grouping quality, B-cubed against the corpus's known truth: lexical variants (rules)
   and paraphrases (MiniLM at several eps).
4. ``--huge``: about 1M unique tags through the whole normalizer, with the approximate
   IVF index and the cheap synthetic embedder (MiniLM would need hours on this CPU to
   embed a million tags), and the IVF index's pair recall against an exact search.

Memory is the peak resident set size (VmHWM) of this process, reset before every stage
through /proc/self/clear_refs (Linux), so it counts native memory (FAISS, torch, BLAS)
that tracemalloc cannot see; where the reset is not allowed it falls back to ru_maxrss
(the peak since the process started) and says so.

    python benchmarks/bench_normalize.py [--samples 306044] [--embedder minilm|synthetic]
        [--dense-sizes 20000] [--huge] [--huge-tags 1000000] [--markdown results.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("INSTAG_HF_VERBOSITY", "WARNING")

import numpy as np  # noqa: E402
from datasets import disable_progress_bars, load_from_disk  # noqa: E402

import _paths  # noqa: E402,F401  (tests/support on the path)
from instag_hf.normalize import SemanticAggregator, SentenceTransformerEmbedder, TagNormalizer  # noqa: E402
from instag_hf.embeddings import embed  # noqa: E402
from instag_hf.normalize.semantic import build_index, dbscan_labels, neighbor_graph  # noqa: E402
from support.synthetic import SyntheticEmbedder, bcubed, make_corpus  # noqa: E402

GIB = 1024 ** 3
OUT: list[str] = []


def emit(line: str = "") -> None:
    print(line, flush=True)
    OUT.append(line)


# --- memory ------------------------------------------------------------------------------
def _can_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


RESETTABLE = _can_reset()
MEMORY_NOTE = ("peak RSS: VmHWM, reset before each stage" if RESETTABLE
               else "peak RSS: ru_maxrss, the peak since start (this system does not allow a reset)")


def reset_peak() -> None:
    if RESETTABLE:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def peak_bytes() -> int:
    if RESETTABLE:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measured(fn):
    reset_peak()
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0, peak_bytes()


def gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def same_partition(a: np.ndarray, b: np.ndarray) -> tuple[bool, int]:
    """Whether two labelings (-1: noise, each its own group) are one partition, and the points that differ."""
    a, b = a.copy(), b.copy()
    a[a < 0] = a.max(initial=0) + 1 + np.arange((a < 0).sum())
    b[b < 0] = b.max(initial=0) + 1 + np.arange((b < 0).sum())
    pairs = np.unique(np.stack([a, b], 1), axis=0)
    bad_a = np.unique(pairs[:, 0], return_counts=True)
    bad_b = np.unique(pairs[:, 1], return_counts=True)
    split = set(bad_a[0][bad_a[1] > 1]) if len(bad_a[0]) else set()
    joined = set(bad_b[0][bad_b[1] > 1]) if len(bad_b[0]) else set()
    differing = int(np.isin(a, list(split)).sum() + np.isin(b, list(joined)).sum())
    return not split and not joined, differing


def column(mapping, name):
    return {r: t for r, t in zip(mapping.columns["raw_tag"], mapping.columns[name]) if t is not None}


# --- 1. end to end -----------------------------------------------------------------------
def end_to_end(ds, normalizer: TagNormalizer, title: str):
    """Every stage of fit and map, timed and measured; returns the mapping and the stage corpora."""
    emit(f"\n### {title}\n")
    emit(f"| stage | tags in | tags out | seconds | peak RSS (GiB) |")
    emit("|---|---:|---:|---:|---:|")
    (corpus, _), secs, peak = measured(lambda: normalizer.read(ds))
    emit(f"| read tags (arrow -> TagSets) | {len(corpus.vocab):,} raw | {corpus.n_usable:,} samples "
         f"| {secs:.1f} | {gib(peak)} |")
    total, top = secs, peak
    corpora = {}
    stages = normalizer.iter_fit(corpus)
    while True:
        reset_peak()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            item = next(stages, None)
        if item is None:
            break
        stage, out = item
        secs, peak = time.perf_counter() - t0, peak_bytes()
        corpora[stage.name] = out
        extra = ""
        if stage.name == "semantic" and stage.enabled:
            st = stage.stats
            extra = (f" (embed {st['embed_seconds']:.1f}s of {st['embedded']:,} tags, {st['index']} search "
                     f"{st['search_seconds']:.1f}s, DBSCAN {st['dbscan_seconds']:.1f}s)")
        if stage.name == "association" and stage.enabled:
            extra = f" ({stage.stats.get('rules', 0):,} rules, {stage.stats.get('merged_tags', 0):,} merges)"
        emit(f"| {stage.title}{extra} | {stage.tags_before:,} | {stage.tags_after:,} | {secs:.1f} | {gib(peak)} |")
        total, top = total + secs, max(top, peak)
    mapping = normalizer.mapping_
    with tempfile.TemporaryDirectory() as tmp:
        _, secs, peak = measured(lambda: mapping.save(Path(tmp) / "mapping.json"))
        emit(f"| save mapping (JSON) | | | {secs:.1f} | {gib(peak)} |")
        total, top = total + secs, max(top, peak)
    out, secs, peak = measured(lambda: mapping.map(ds))
    n_tags = sum(len(t) for t in out.data.column("instag_norm_tags").to_pylist())
    emit(f"| map -> instag_norm_tags ({len(out):,} rows, {n_tags / len(out):.2f} tags/row) | | | {secs:.1f} "
         f"| {gib(peak)} |")
    total, top = total + secs, max(top, peak)
    emit(f"| **whole normalization** | {len(corpus.vocab):,} | {len(mapping.canonical_counts):,} | **{total:.1f}** "
         f"| **{gib(top)}** |")
    return mapping, corpora, total, top


# --- 2. sparse vs dense ------------------------------------------------------------------
def semantic_vs_dense(named_vectors: list[tuple[str, np.ndarray]], eps: float, min_samples: int):
    from sklearn.cluster import DBSCAN
    from sklearn.metrics.pairwise import cosine_distances

    emit("\n### Semantic step: FAISS range search + sparse DBSCAN vs scikit-learn DBSCAN on dense cosine distances\n")
    emit(f"eps {eps} (cosine distance), min_samples {min_samples}; both on the same unit vectors.\n")
    emit("| vectors | n | dim | ours: s | ours: peak GiB | dense: s | dense: peak GiB | dense / ours (time) "
         "| same clusters |")
    emit("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, x in named_vectors:
        def ours():
            graph = neighbor_graph(x, eps, build_index(x, "flat"))
            return dbscan_labels(graph, eps, min_samples)

        def dense():
            d = cosine_distances(x)
            np.clip(d, 0, 2, out=d)
            return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(d).labels_

        a, ta, pa = measured(ours)
        b, tb, pb = measured(dense)
        same, differing = same_partition(a, b)
        clusters = int(a.max(initial=-1)) + 1
        verdict = f"yes ({clusters:,} clusters)" if same else f"no: {differing} points differ"
        emit(f"| {name} | {len(x):,} | {x.shape[1]} | {ta:.2f} | {gib(pa)} | {tb:.2f} | {gib(pb)} | "
             f"{tb / ta:.1f}x | {verdict} |")


def synthetic_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """n texts: a tenth are concepts written three ways (within eps of each other), the rest unrelated."""
    k = n // 10
    texts = [f"c{i} v{j}" for i in range(k) for j in range(3)]
    texts += [f"noise {i}" for i in range(n - len(texts))]
    concept_of = {f"c{i} v{j}": i for i in range(k) for j in range(3)}
    return SyntheticEmbedder(concept_of, dim=dim, seed=seed)(texts)


# --- 3. quality --------------------------------------------------------------------------
def quality(corpus, mapping, rules_corpus, embedder, cache_dir, eps_values, min_samples, embedder_name):
    kept = set(column(mapping, "rule_tag"))
    para = [t for t in kept if corpus.concept[t] in corpus.paraphrase_concepts]
    emit(f"\n### Grouping quality against the synthetic truth (B-cubed over the {len(kept):,} raw tags kept by "
         "the frequency filter)\n")
    emit("| grouping | truth | tags scored | precision | recall | F1 |")
    emit("|---|---|---:|---:|---:|---:|")

    def row(label, pred, gold_name, items=None):
        gold = getattr(corpus, gold_name)
        p, r, f = bcubed(pred, gold, items=items)
        n = len(items) if items is not None else len(set(pred) & set(gold))
        emit(f"| {label} | {gold_name} | {n:,} | {p:.3f} | {r:.3f} | {f:.3f} |")

    row("rule aggregation (lexical variants)", column(mapping, "rule_tag"), "lexical")
    row(f"+ semantic, {embedder_name}, eps {mapping.params['eps']}", column(mapping, "semantic_tag"), "concept")
    row(f"+ semantic, {embedder_name}, eps {mapping.params['eps']}: paraphrase tags only",
        column(mapping, "semantic_tag"), "concept", para)
    row("+ association (final canonical tags)", column(mapping, "canonical_tag"), "merged")

    emit(f"\nParaphrases by eps ({embedder_name}; the semantic step rerun on the rule-aggregated tags, "
         "embeddings from the cache):\n")
    emit("| eps (cosine distance) | min similarity | paraphrase tags: P | R | F1 "
         "| all kept tags vs concept: P | R | F1 |")
    emit("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rule_of = column(mapping, "rule_tag")
    for eps in eps_values:
        step = SemanticAggregator(eps=eps, min_samples=min_samples, embedder=embedder, embedding_cache_dir=cache_dir)
        result = step.fit(rules_corpus)
        sem = {t: result.vocab[result.target[j]] for j, t in enumerate(rules_corpus.vocab)}
        pred = {raw: sem[r] for raw, r in rule_of.items()}
        p1, r1, f1 = bcubed(pred, corpus.concept, items=para)
        p2, r2, f2 = bcubed(pred, corpus.concept)
        emit(f"| {eps:.2f} | {1 - eps:.2f} | {p1:.3f} | {r1:.3f} | {f1:.3f} | {p2:.3f} | {r2:.3f} | {f2:.3f} |")


# --- 4. a million tags -------------------------------------------------------------------
def huge(n_tags: int, seed: int, tmp: Path):
    emit(f"\n## Over {n_tags:,} unique tags: approximate index, synthetic embedder\n")
    noise = n_tags  # plus the concepts' forms: a little over n_tags unique tags
    n_samples = max(100_000, int(n_tags * 0.5))
    (corpus, secs, _) = measured(lambda: make_corpus(
        n_samples=n_samples, n_concepts=max(1000, n_tags // 30), noise_tags=noise, n_pairs=60,
        max_variants=3, variant_share=0.2, seed=seed))
    ds_path = tmp / "huge"
    corpus.to_dataset().save_to_disk(str(ds_path))
    ds = load_from_disk(str(ds_path))
    emit(f"corpus: {n_samples:,} samples, {len(corpus.lexical):,} unique raw tags, "
         f"{np.mean([len(s) for s in corpus.samples]):.2f} tags/sample (generated in {secs:.0f}s); "
         "alpha 1 so that every tag reaches the semantic step; embedder: SyntheticEmbedder (dim 32).")
    embedder = corpus.embedder(dim=32)
    del corpus
    normalizer = TagNormalizer(preset="paper", alpha=1, embedder=embedder, progress=False)
    mapping, corpora, total, top = end_to_end(ds, normalizer, "index auto (IVF above "
                                                              f"{normalizer.semantic_aggregator.approximate_above:,})")
    emit(f"\nWhole normalization of {len(mapping):,} unique tags: {total / 60:.1f} min, peak {gib(top)} GiB.")

    del ds, mapping, corpora

    # the semantic step alone on n_tags vectors with a known cluster structure
    x = synthetic_vectors(n_tags, 32, seed)
    truth = np.concatenate([np.repeat(np.arange(n_tags // 10), 3), -1 - np.arange(n_tags - 3 * (n_tags // 10))])
    step = SemanticAggregator(eps=0.05, min_samples=2, embedder=embedder)
    (labels, stats), secs, peak = measured(lambda: step.cluster(x))
    labels = np.where(labels < 0, -1 - np.arange(len(labels)), labels)
    p, r, f = bcubed(dict(enumerate(labels.tolist())), dict(enumerate(truth.tolist())))
    emit("\n| semantic step alone | n | index | search s | DBSCAN s | total s | peak GiB | B-cubed P / R / F1 |")
    emit("|---|---:|---|---:|---:|---:|---:|---|")
    emit(f"| {n_tags // 10:,} concepts x 3 forms + {n_tags - 3 * (n_tags // 10):,} unrelated (dim 32) | {n_tags:,} "
         f"| {stats['index']} | {stats['search_seconds']:.1f} | {stats['dbscan_seconds']:.1f} | {secs:.1f} "
         f"| {gib(peak)} | {p:.4f} / {r:.4f} / {f:.4f} |")
    del x, labels

    # IVF pair recall against an exact search, at a size an exact search finishes
    sub = synthetic_vectors(100_000, 32, seed + 1)
    eps = step.eps
    exact, t_exact, _ = measured(lambda: neighbor_graph(sub, eps, build_index(sub, "flat")))
    approx, t_ivf, _ = measured(lambda: neighbor_graph(sub, eps, build_index(sub, "ivf", nprobe=16)))

    def pair_set(g):
        g = g.tocoo()
        keep = (g.row < g.col) & (g.data <= eps)
        return set(zip(g.row[keep].tolist(), g.col[keep].tolist()))

    e, a = pair_set(exact), pair_set(approx)
    recall = len(e & a) / len(e) if e else 1.0
    emit("\n| index, 100,000 synthetic vectors (10,000 concepts x 3 forms + 70,000 unrelated) | seconds "
         "| pairs within eps | pair recall |")
    emit("|---|---:|---:|---:|")
    emit(f"| flat (exact) | {t_exact:.1f} | {len(e):,} | 1.000 |")
    emit(f"| IVF (nlist 2*sqrt(n), nprobe 16) | {t_ivf:.1f} | {len(a):,} | {recall:.4f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=306_044, help="samples of the paper-scale corpus")
    ap.add_argument("--noise-tags", type=int, default=100_000, help="unique rare tags in it")
    ap.add_argument("--embedder", choices=["minilm", "synthetic"], default="minilm")
    ap.add_argument("--dense-sizes", type=int, nargs="*", default=[20_000],
                    help="synthetic sizes for the dense DBSCAN comparison (n x n float32 each: 20K = 1.6 GB)")
    ap.add_argument("--eps", type=float, nargs="*", default=[0.05, 0.10, 0.15, 0.20, 0.25],
                    help="eps values for the paraphrase table")
    ap.add_argument("--huge", action="store_true", help="also run about 1M unique tags (several minutes)")
    ap.add_argument("--huge-tags", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", help="also write the tables to this file")
    args = ap.parse_args(argv)
    disable_progress_bars()
    started = time.perf_counter()

    import faiss

    emit("## Tag normalization benchmark\n")
    emit(f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
         f"FAISS threads {faiss.omp_get_max_threads()}; {MEMORY_NOTE}.")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus, secs, _ = measured(lambda: make_corpus(
            n_samples=args.samples, n_concepts=8000, noise_tags=args.noise_tags, n_pairs=60, max_variants=3,
            variant_share=0.2, seed=args.seed))
        corpus.to_dataset().save_to_disk(str(tmp / "paper"))
        ds = load_from_disk(str(tmp / "paper"))
        emit(f"\nCorpus (support.synthetic, seed {args.seed}): {args.samples:,} samples (+{corpus.failed_rows:,} "
             f"failed rows), {np.mean([len(s) for s in corpus.samples]):.2f} tags/sample, "
             f"{len(corpus.lexical):,} unique raw tags ({len(corpus.noise):,} rare noise tags, "
             f"{len(corpus.paraphrase_concepts)} paraphrased concepts, {len(corpus.pairs)} always-together pairs); "
             f"generated in {secs:.1f}s, read from a save_to_disk folder.")
        corpus.samples = []  # the truth stays; the tags are read from disk
        cache_dir = tmp / "embeddings"
        if args.embedder == "minilm":
            embedder, name = SentenceTransformerEmbedder(device="cpu"), "all-MiniLM-L6-v2"
        else:
            embedder, name = corpus.embedder(dim=384), "SyntheticEmbedder (oracle)"
        normalizer = TagNormalizer(preset="paper", embedder=embedder, embedding_cache_dir=cache_dir, progress=False)
        mapping, corpora, total, top = end_to_end(
            ds, normalizer, f"Paper preset (alpha 20, eps 0.05, min_samples 2, min_support 40, confidence 0.99), "
                            f"{name}, cold embedding cache (model load included)")
        target = "met" if total < 600 and top < 8 * GIB else "NOT met"
        emit(f"\nWhole normalization: {total / 60:.1f} min, peak {gib(top)} GiB (target: under 10 min and 8 GiB: "
             f"{target}).")

        sem_input = corpora["rules"].vocab
        x, _ = embed(sem_input, embedder, cache_dir)
        named = [(f"paper-scale semantic input ({name})", x)]
        named += [(f"synthetic ({n // 10:,} concepts x 3 forms + noise)", synthetic_vectors(n, 384, args.seed))
                  for n in args.dense_sizes]
        semantic_vs_dense(named, normalizer.semantic_aggregator.eps, normalizer.semantic_aggregator.min_samples)
        del x, named

        quality(corpus, mapping, corpora["rules"], embedder, cache_dir, args.eps,
                normalizer.semantic_aggregator.min_samples, name)
        del ds, mapping, corpora
        if args.huge:
            huge(args.huge_tags, args.seed, tmp)
    emit(f"\nBenchmark wall time: {(time.perf_counter() - started) / 60:.1f} min. Timings are of one run on a "
         "shared machine: other processes may have competed for the 2 cores.")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(OUT) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
