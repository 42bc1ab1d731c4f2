"""Selection and metrics speed, each against a plain-Python baseline measured in the same run.

1. Cf-D sampling (Algorithm 1) of 6K rows from a synthetic pool shaped like the
   paper's (306,044 rows, ~6.4K tags, ~4.5 tags per row, Zipf-like tag frequencies),
   against the obvious loop over Python sets; both must pick the same rows.
2. Metrics (diversity, complexity, top tags) over 1M rows of raw ``instag_tags`` items
   with statuses, against ``metrics.summarize`` over the rows as Python objects.
3. MIG: the lazy greedy against the plain greedy (every gain re-computed at every pick)
   at a size the plain one finishes, then the two scale targets, 6,000 of 306,044 rows
   and 50,000 of 1,000,000 rows (6,398 tags), each in a fresh process so that its peak
   memory is its own. The label graph joins tags of one synthetic "concept" (groups of
   three, :class:`~support.synthetic.SyntheticEmbedder`, cosine about 0.99),
   built with ``LabelGraph.from_tags`` (FAISS range search, threshold 0.9).

    python benchmarks/bench_selection.py [--pool-rows 306044] [--metric-rows 1000000] [--n 6000]
                                         [--only mig] [--mig-large-rows 1000000] [--mig-large-n 50000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from datasets import Dataset, disable_progress_bars  # noqa: E402
from datasets.table import InMemoryTable  # noqa: E402

import _paths  # noqa: E402,F401  (tests/support on the path)
from instag_hf import schema  # noqa: E402
from instag_hf.analysis.metrics import dataset_metrics, summarize, summarize_dataset  # noqa: E402
from instag_hf.analysis.metrics import cooccurrence  # noqa: E402
from instag_hf.selection.sampling import sample, select_indices  # noqa: E402
from instag_hf.analysis.tagsets import TagSets  # noqa: E402
from instag_hf.selection.label_graph import LabelGraph  # noqa: E402
from instag_hf.selection.mig import MigParams, mig_greedy, mig_objective, mig_plain  # noqa: E402
from support.synthetic import SyntheticEmbedder  # noqa: E402


def _timed(fn, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def synthetic_tags(rows: int, tags: int, mean_tags: float, seed: int, zipf: float = 1.0):
    """CSR tag ids: row lengths ~ 1 + negative binomial, tag ids drawn Zipf-like (weight 1/(rank + 2.7)^zipf)."""
    rng = np.random.default_rng(seed)
    extra = mean_tags - 1
    lengths = 1 + np.minimum(rng.negative_binomial(2, 2 / (2 + extra), size=rows), 39)
    weights = 1.0 / (np.arange(tags) + 2.7) ** zipf
    ids = rng.choice(tags, size=int(lengths.sum()), p=weights / weights.sum())
    ids = rng.permutation(tags)[ids]  # frequency rank unrelated to id
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, ids


def _names(tags: int) -> pa.Array:
    return pa.array([f"Intent {i:04d}" for i in range(tags)])


def pool_dataset(rows: int, tags: int, mean_tags: float, seed: int) -> Dataset:
    """``instag_norm_tags`` (strings) and a ``source`` column with four values."""
    offsets, ids = synthetic_tags(rows, tags, mean_tags, seed)
    column = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), _names(tags).take(pa.array(ids)))
    source = pa.array(np.array(["wizardlm_alpaca", "wizardlm_sharegpt", "ultrachat", "sharegpt"])[
        np.random.default_rng(seed + 1).integers(0, 4, rows)])
    return Dataset(InMemoryTable(pa.table({schema.NORM_TAGS: column, "source": source})))


def raw_dataset(rows: int, tags: int, mean_tags: float, seed: int, failed: float = 0.02) -> Dataset:
    """``instag_tags`` items with explanations and ``instag_status`` (a share of rows failed, with no tags)."""
    offsets, ids = synthetic_tags(rows, tags, mean_tags, seed)
    rng = np.random.default_rng(seed + 2)
    bad = rng.random(rows) < failed
    lengths = np.diff(offsets)
    lengths[bad] = 0
    keep = np.repeat(~bad, np.diff(offsets))
    ids = ids[keep]
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    explanations = pa.array([f"the user asks about intent number {i} in some detail" for i in range(64)])
    items = pa.StructArray.from_arrays(
        [_names(tags).take(pa.array(ids)), explanations.take(pa.array(ids % 64))], names=["tag", "explanation"])
    status = np.where(bad, schema.PARSE_ERROR, schema.OK)
    table = pa.table({schema.TAGS: pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items),
                      schema.STATUS: pa.array(status)})
    return Dataset(InMemoryTable(table))


def cfd_reference(tag_lists: list[list[str]], n: int) -> list[int]:
    """Algorithm 1 written the obvious way: Python sets and lists, one loop per pass."""
    sets = [set(t) for t in tag_lists]
    order = sorted((i for i in range(len(sets)) if sets[i]), key=lambda i: -len(sets[i]))
    picks: list[int] = []
    remaining = order
    while len(picks) < n and remaining:
        covered: set[str] = set()
        rest = []
        for i in remaining:
            if len(picks) == n:
                break
            if sets[i] <= covered:
                rest.append(i)
            else:
                picks.append(i)
                covered |= sets[i]
        remaining = rest
    return picks


def selection(rows: int, tags: int, mean_tags: float, n: int, seed: int) -> None:
    ds = pool_dataset(rows, tags, mean_tags, seed)
    ts = TagSets.from_dataset(ds)
    lists = ds[schema.NORM_TAGS][:]
    print(f"\n### Cf-D selection: {n:,} of {len(ds):,} rows ({np.count_nonzero(ts.tag_counts()):,} tags, "
          f"{ts.ids.size / len(ts):.2f} tags per row, Zipf-like)\n")

    ref_s, ref = _timed(lambda: cfd_reference(lists, n), repeat=3)
    fast_s, fast = _timed(lambda: select_indices(ts, n), repeat=3)
    read_s, _ = _timed(lambda: TagSets.from_dataset(ds), repeat=3)
    full_s, subset = _timed(lambda: sample(ds, n), repeat=3)
    assert fast.tolist() == ref, "Cf-D picks differ from the reference implementation"
    chosen = ts.take(fast)
    print("Best of 3 runs each.\n")
    print("| path | seconds | speedup vs reference |\n|---|---:|---:|")
    print(f"| reference: Python sets and lists, from Python tag lists | {ref_s:.3f} | 1.00 |")
    print(f"| `select_indices` on prebuilt TagSets | {fast_s:.3f} | {ref_s / fast_s:.1f} |")
    print(f"| `TagSets.from_dataset` (read the Arrow column) | {read_s:.3f} | |")
    print(f"| `sample(ds, n)` from the Dataset (read + select + `ds.select`) | {full_s:.3f} | {ref_s / full_s:.1f} |")
    print(f"\nidentical picks: yes ({len(fast):,}); selected: {chosen.ids.size / len(chosen):.2f} tags per row, "
          f"{np.count_nonzero(chosen.tag_counts()):,} of {np.count_nonzero(ts.tag_counts()):,} tags covered; "
          f"subset rows {len(subset):,}")

    print(f"\n### Other strategies on the same pool ({n:,} rows, one run each, from prebuilt TagSets)\n")
    print("| strategy | seconds | avg tags | coverage |\n|---|---:|---:|---:|")
    pool_tags = np.count_nonzero(ts.tag_counts())
    runs = [
        ("random", dict(strategy="random")),
        ("complexity", dict(strategy="complexity")),
        ("diversity (greedy max coverage)", dict(strategy="diversity")),
        ("cfd, all rows ordered (n = pool size)", dict(strategy="cfd", n=len(ts))),
        ("cfd, proportional quotas by source (reads the Dataset)", dict(strategy="cfd", quota_column="source")),
        ("cfd, max_per_tag=200 (row-by-row loop)", dict(strategy="cfd", max_per_tag=200)),
    ]
    for label, kwargs in runs:
        size = kwargs.pop("n", n)
        data = ds if "quota_column" in kwargs else ts
        secs, picks = _timed(lambda: select_indices(data, size, **kwargs))
        sub = ts.take(picks)
        print(f"| {label} | {secs:.3f} | {sub.ids.size / max(len(sub), 1):.2f} | "
              f"{100 * np.count_nonzero(sub.tag_counts()) / pool_tags:.1f}% |")


def metrics(rows: int, tags: int, mean_tags: float, seed: int) -> None:
    ds = raw_dataset(rows, tags, mean_tags, seed)
    print(f"\n### Metrics over {len(ds):,} rows of raw `instag_tags` items (2% failed rows)\n")
    naive_s, naive = _timed(lambda: summarize(ds[schema.TAGS], ds[schema.STATUS], top=20))
    fast_s, fast = _timed(lambda: dataset_metrics(ds, pairs=0, top=20), repeat=3)
    summ_s, summ = _timed(lambda: summarize_dataset(ds), repeat=3)
    pairs_s, _ = _timed(lambda: cooccurrence(TagSets.from_dataset(ds), 10))
    assert (fast.diversity, fast.tagged_rows) == (naive.diversity, naive.tagged_rows)
    assert abs(fast.complexity - naive.complexity) < 1e-9
    assert sorted(c for _, c in fast.top_tags) == sorted(c for _, c in naive.top_tags)
    assert summ.top_tags == fast.top_tags and summ.statuses == naive.statuses
    print("Naive: one run; the others: best of 3. Each reads the Dataset's column itself.\n")
    print("| path | seconds | speedup vs naive |\n|---|---:|---:|")
    print(f"| naive: `summarize` over the rows as Python objects | {naive_s:.2f} | 1.00 |")
    print(f"| `dataset_metrics` (diversity, complexity, top tags, histogram) | {fast_s:.2f} | {naive_s / fast_s:.1f} |")
    print(f"| `summarize_dataset` (Arrow path) | {summ_s:.2f} | {naive_s / summ_s:.1f} |")
    print(f"| co-occurrence, top 10 pairs (read + every pair in every row) | {pairs_s:.2f} | |")
    print(f"\nsame results: yes (diversity {fast.diversity:,}, complexity {fast.complexity:.3f}, "
          f"tagged rows {fast.tagged_rows:,})")


def _rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tag_graph(tags: int) -> tuple[LabelGraph, float]:
    """The benchmark's label graph over ``Intent 0000``...: groups of three tags share a concept."""
    names = _names(tags).to_pylist()
    embedder = SyntheticEmbedder({name: i // 3 for i, name in enumerate(names)}, dim=32)
    secs, graph = _timed(lambda: LabelGraph.from_tags(names, embedder=embedder, threshold=0.9))
    return graph, secs


def _mig_target(rows: int, tags: int, mean_tags: float, n: int, seed: int, queue) -> None:
    """One scale target in a fresh process: time and peak memory of ``select_indices(..., "mig")``."""
    disable_progress_bars()
    ds = pool_dataset(rows, tags, mean_tags, seed)
    ts = TagSets.from_dataset(ds)
    graph, graph_s = tag_graph(tags)
    before = _rss_mib()
    secs, picks = _timed(lambda: select_indices(ts, n, "mig", label_graph=graph))
    peak = _rss_mib()
    full_s = None
    if rows <= 400_000:
        full_s, subset = _timed(lambda: sample(ds, n, "mig", label_graph=graph))
        assert subset["instag_norm_tags"][:5] == ds.select(picks[:5])["instag_norm_tags"]
    sub = ts.take(picks)
    queue.put({"rows": rows, "n": n, "tags": int(np.count_nonzero(ts.tag_counts())), "graph_s": graph_s,
               "edges": graph.n_edges, "seconds": secs, "full_seconds": full_s, "rss_before": before,
               "rss_peak": peak, "selected": len(picks),
               "coverage": np.count_nonzero(sub.tag_counts()) / np.count_nonzero(ts.tag_counts()),
               "avg_tags": sub.ids.size / max(len(sub), 1)})


def mig(tags: int, mean_tags: float, seed: int, small_rows: int, small_n: int,
        targets: list[tuple[int, int, float]]) -> None:
    print(f"\n### MIG: lazy greedy against the plain greedy ({small_n:,} of {small_rows:,} rows, {tags:,} tags)\n")
    ds = pool_dataset(small_rows, tags, mean_tags, seed)
    ts = TagSets.from_dataset(ds)
    graph, graph_s = tag_graph(tags)
    params = MigParams(graph)
    rows, rank = np.flatnonzero(ts.lengths > 0), np.arange(len(ts))
    plain_s, plain = _timed(lambda: mig_plain(ts, rows, rank, small_n, params))
    lazy_s, lazy = _timed(lambda: mig_greedy(ts, rows, rank, small_n, None, params), repeat=3)
    same = lazy == plain
    print(f"Label graph: `LabelGraph.from_tags` over {len(graph):,} tags, {graph.n_edges:,} edges, "
          f"{graph_s:.2f} s. Lazy: best of 3; plain: one run.\n")
    print("| path | seconds | speedup vs plain |\n|---|---:|---:|")
    print(f"| plain greedy: every gain re-computed at every pick (numpy) | {plain_s:.2f} | 1.00 |")
    print(f"| lazy greedy (`select_indices(..., \"mig\")`'s path) | {lazy_s:.2f} | {plain_s / lazy_s:.1f} |")
    if same:
        print(f"\nidentical picks: yes ({len(lazy):,})")
    else:
        first = next(i for i, (a, b) in enumerate(zip(lazy, plain)) if a != b)
        a, b = mig_objective(ts, lazy, params), mig_objective(ts, plain, params)
        print(f"\nidentical picks: no (first difference at pick {first}); objective {a:.12g} vs {b:.12g}")

    print(f"\n### MIG at scale ({tags:,} tags, {mean_tags} tags per row before de-duplication)\n")
    print("Each target in a fresh process: the selection from prebuilt TagSets and a prebuilt label graph; "
          "memory is the process's peak resident set (ru_maxrss) before and after the selection "
          "(the pool, its TagSets and the graph are in the first figure).\n")
    print("| target | seconds | limit | `sample(ds, n)` seconds | peak memory before / after (MiB) "
          "| graph build s | coverage | avg tags |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    ctx = multiprocessing.get_context("spawn")
    for rows_, n_, limit in targets:
        queue = ctx.Queue()
        proc = ctx.Process(target=_mig_target, args=(rows_, tags, mean_tags, n_, seed, queue))
        proc.start()
        r = queue.get()
        proc.join()
        full = f"{r['full_seconds']:.2f}" if r["full_seconds"] is not None else "-"
        status = "ok" if r["seconds"] <= limit else "OVER"
        print(f"| {r['n']:,} of {r['rows']:,} rows | {r['seconds']:.2f} | {limit:.0f} s ({status}) | {full} | "
              f"{r['rss_before']:,.0f} / {r['rss_peak']:,.0f} | {r['graph_s']:.2f} | {100 * r['coverage']:.1f}% | "
              f"{r['avg_tags']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool-rows", type=int, default=306_044)
    ap.add_argument("--tags", type=int, default=6_398)
    ap.add_argument("--mean-tags", type=float, default=4.55, help="before de-duplication within rows")
    ap.add_argument("--n", type=int, default=6_000)
    ap.add_argument("--metric-rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("cfd", "metrics", "mig"), help="run one part")
    ap.add_argument("--mig-small-rows", type=int, default=50_000, help="pool of the lazy vs plain comparison")
    ap.add_argument("--mig-small-n", type=int, default=1_000)
    ap.add_argument("--mig-large-rows", type=int, default=1_000_000)
    ap.add_argument("--mig-large-n", type=int, default=50_000)
    args = ap.parse_args()
    disable_progress_bars()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, pyarrow {pa.__version__}, load average {os.getloadavg()[0]:.1f}")
    if args.only in (None, "cfd"):
        selection(args.pool_rows, args.tags, args.mean_tags, args.n, args.seed)
    if args.only in (None, "metrics"):
        metrics(args.metric_rows, args.tags, args.mean_tags, args.seed)
    if args.only in (None, "mig"):
        mig(args.tags, args.mean_tags, args.seed, args.mig_small_rows, args.mig_small_n,
            [(args.pool_rows, args.n, 10.0), (args.mig_large_rows, args.mig_large_n, 120.0)])


if __name__ == "__main__":
    main()
