"""Selection and metrics speed, each against a plain-Python baseline measured in the same run.

1. Cf-D sampling (Algorithm 1) of 6K rows from a synthetic pool shaped like the
   paper's (306,044 rows, ~6.4K tags, ~4.5 tags per row, Zipf-like tag frequencies),
   against the obvious loop over Python sets; both must pick the same rows.
2. Metrics (diversity, complexity, top tags) over 1M rows of raw ``instag_tags`` items
   with statuses, against ``metrics.summarize`` over the rows as Python objects.

    python benchmarks/bench_selection.py [--pool-rows 306044] [--metric-rows 1000000] [--n 6000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from datasets import Dataset, disable_progress_bars  # noqa: E402
from datasets.table import InMemoryTable  # noqa: E402

from instag_hf import schema  # noqa: E402
from instag_hf.analysis.metrics import dataset_metrics, summarize, summarize_dataset  # noqa: E402
from instag_hf.analysis.metrics import cooccurrence  # noqa: E402
from instag_hf.selection.sampling import sample, select_indices  # noqa: E402
from instag_hf.analysis.tagsets import TagSets  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool-rows", type=int, default=306_044)
    ap.add_argument("--tags", type=int, default=6_398)
    ap.add_argument("--mean-tags", type=float, default=4.55, help="before de-duplication within rows")
    ap.add_argument("--n", type=int, default=6_000)
    ap.add_argument("--metric-rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    disable_progress_bars()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, pyarrow {pa.__version__}")
    selection(args.pool_rows, args.tags, args.mean_tags, args.n, args.seed)
    metrics(args.metric_rows, args.tags, args.mean_tags, args.seed)


if __name__ == "__main__":
    main()
