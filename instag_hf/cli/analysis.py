"""``instag analyze`` and ``instag sample``: metrics reports and subset selection from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import schema
from ..strict_json import write_json
from ..selection.params import COMPARED, QUOTA_MODES, STRATEGIES, TIES, UNTAGGED
from .main import SAMPLE_PREFIX, load_input, non_negative_int, percent, positive_int, require_tags_column


def _name(source: str) -> str:
    return Path(source.rstrip("/").replace(SAMPLE_PREFIX, "sample_")).stem or "dataset"


def _unique_names(sources: list[str]) -> list[str]:
    names: list[str] = []
    for source in sources:
        base = name = _name(source)
        k = 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def parse_quotas(text: str | None):
    """``proportional``, ``equal`` or ``value=rows,value=rows`` (as the ``--quotas`` option takes it)."""
    if text is None or text in QUOTA_MODES:
        return text
    quotas = {}
    for item in text.split(","):
        key, sep, value = item.strip().rpartition("=")
        if not sep or not key or not value.strip().isdigit():
            raise ValueError(f"--quotas takes {' or '.join(QUOTA_MODES)} or value=rows pairs like a=100,b=50; "
                             f"could not read {item!r}")
        quotas[key.strip()] = int(value)
    return quotas


def cmd_analyze(args) -> int:
    from ..analysis.metrics import analyze
    from ..reporting.report import write_report

    names = _unique_names(args.inputs)
    data = {name: load_input(source, args.split) for name, source in zip(names, args.inputs)}
    for source, ds in zip(args.inputs, data.values()):
        require_tags_column(ds, source, args.tags_column)
    try:
        analysis = analyze(data, source_column=args.source_column, tags_column=args.tags_column,
                           status_column=args.status_column, top=args.top)
        files = write_report(analysis, args.output, title=args.title)
    except ValueError as exc:
        print(f"instag: {exc}", file=sys.stderr)
        return 2
    print("| dataset | rows | tagged | unique tags | coverage | avg tags |\n|---|---:|---:|---:|---:|---:|")
    several = len(analysis.datasets) > 1
    for m in ([analysis.combined] if several else []) + analysis.datasets:
        print(f"| {m.name} | {m.rows:,} | {m.tagged_rows:,} | {m.diversity:,} | {percent(m.coverage)} "
              f"| {m.complexity:.2f} |")
    print(f"\nWrote {files.markdown.parent.resolve()}/ ({', '.join(sorted(p.name for p in files.paths()))})")
    return 0


def _mig_options(args, strategies) -> dict:
    """``sample``'s MIG keywords from the command line (only those given; only when mig runs)."""
    from ..selection.label_graph import LabelGraph

    given = {"--label-graph": args.label_graph, "--score-column": args.score_column,
             "--prop-weight": args.prop_weight}
    if "mig" not in strategies:
        used = [flag for flag, value in given.items() if value is not None]
        if used:
            raise ValueError(f"{', '.join(used)} apply only to --strategy mig (or a --compare that includes mig)")
        return {}
    options = {"score_column": args.score_column, "prop_weight": args.prop_weight}
    if args.label_graph is not None:
        options["label_graph"] = LabelGraph.load(args.label_graph)
    return {k: v for k, v in options.items() if v is not None}


def cmd_sample(args) -> int:
    from ..reporting.report import render_markdown
    from ..selection.sampling import sample

    if args.compare is not None:
        return _compare(args)
    ds = load_input(args.input, args.split)
    require_tags_column(ds, args.input, args.tags_column)
    try:
        subset, report = sample(ds, args.n, args.strategy, seed=args.seed, ties=args.ties, untagged=args.untagged,
                                quota_column=args.quota_column, quotas=parse_quotas(args.quotas),
                                max_per_tag=args.max_per_tag, tags_column=args.tags_column,
                                status_column=args.status_column, return_report=True,
                                **_mig_options(args, [args.strategy]))
    except ValueError as exc:
        print(f"instag: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    report.params["input"] = args.input
    subset.save_to_disk(str(out / "subset"))
    subset.to_json(str(out / "subset.jsonl"), lines=True, force_ascii=False)
    (out / "selection.md").write_text(render_markdown(report), encoding="utf-8")
    write_json(out / "selection.json", report.as_dict(), newline=False)
    print(f"{args.strategy}: {report.selected:,} of {report.pool_rows:,} rows, {report.subset_diversity:,} unique "
          f"tags ({percent(report.coverage)} of the pool's), {report.subset_complexity:.2f} tags per sample "
          f"(pool {report.pool_complexity:.2f})")
    print(f"Wrote {out.resolve()}/ (subset/, subset.jsonl, selection.md, selection.json)")
    return 0


def _compare(args) -> int:
    from ..reporting.compare_plots import comparison_markdown, write_comparison
    from ..selection.compare import compare_strategies

    ds = load_input(args.input, args.split)
    require_tags_column(ds, args.input, args.tags_column)
    try:
        strategies = [s.strip() for s in args.compare.split(",") if s.strip()]
        comparison = compare_strategies(
            ds, args.n, strategies, seed=args.seed, ties=args.ties, untagged=args.untagged,
            quota_column=args.quota_column, quotas=parse_quotas(args.quotas), max_per_tag=args.max_per_tag,
            tags_column=args.tags_column, status_column=args.status_column, source_column=args.source_column,
            **_mig_options(args, strategies))
    except ValueError as exc:
        print(f"instag: {exc}", file=sys.stderr)
        return 2
    comparison.params["input"] = args.input
    files = write_comparison(comparison, args.output)
    print(comparison_markdown(comparison))
    print(f"Wrote {Path(args.output).resolve()}/ ({', '.join(sorted(p.name for p in files.values()))})")
    return 0


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default="train", help="split of a hub dataset or data folder (default: train)")
    p.add_argument("--tags-column", help=f"tags to read (default: {schema.NORM_TAGS} if present, else {schema.TAGS})")
    p.add_argument("--status-column", default=schema.STATUS,
                   help=f"rows count only with status ok/truncated; absent column: every row (default: {schema.STATUS})")


def add_commands(subparsers) -> None:
    """Add ``analyze`` and ``sample`` to the ``instag`` command line."""
    p = subparsers.add_parser(
        "analyze", help="diversity, complexity, coverage, tag recall and plots of tagged datasets",
        description="Measure tagged datasets and write report.md, report.html (plots embedded), metrics.json "
                    "and the PNG plots.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="tagged datasets: save_to_disk folder, .jsonl/.json/.parquet/.csv file, or hub id")
    p.add_argument("--source-column", help="also split each input by the values of this column")
    p.add_argument("--output", default="instag-analysis", help="output folder (default: instag-analysis)")
    p.add_argument("--top", type=non_negative_int, default=20, help="top tags kept per dataset (default: 20)")
    p.add_argument("--title", default="InsTag analysis")
    _add_data_options(p)
    p.set_defaults(func=cmd_analyze)

    p = subparsers.add_parser(
        "sample", help="select a subset by tags (Cf-D sampling, MIG, random, complexity, diversity)",
        description="Select N rows and write subset/ (save_to_disk), subset.jsonl, selection.md and selection.json; "
                    "with --compare, run several strategies at the same N and write comparison.json, "
                    "comparison.md and the plots instead.")
    p.add_argument("input", help="a tagged dataset: save_to_disk folder, data file, or hub id")
    p.add_argument("-n", "--n", type=positive_int, required=True, help="rows to select")
    p.add_argument("--strategy", choices=STRATEGIES, default="cfd",
                   help="default: cfd (Algorithm 1); mig: information gain over a label graph")
    p.add_argument("--seed", type=int, default=0, help="seed of random and of --ties shuffle (default: 0)")
    p.add_argument("--ties", choices=TIES, default="index", help="order among equal tag counts (default: index)")
    p.add_argument("--untagged", choices=UNTAGGED, default="last",
                   help="rows without usable tags: fill after all tagged rows, or never (default: last)")
    p.add_argument("--quota-column", help="column whose values get quotas (e.g. source)")
    p.add_argument("--quotas", help="proportional (default with --quota-column), equal, or value=rows,value=rows")
    p.add_argument("--max-per-tag", type=positive_int, help="at most this many selected rows per tag")
    g = p.add_argument_group("mig")
    g.add_argument("--label-graph", metavar="PATH",
                   help="a LabelGraph file (LabelGraph.save); default: built from the data's tags with the "
                        "normalization step's embedder")
    g.add_argument("--score-column", help="per-row quality scores (default: 1 for every row)")
    g.add_argument("--prop-weight", type=float, help="weight of the graph's edges in propagation (default: 1.0)")
    p.add_argument("--compare", nargs="?", const=",".join(COMPARED), metavar="STRATEGIES",
                   help="compare strategies at the same N instead of writing a subset: comma-separated "
                        f"(default: {','.join(COMPARED)})")
    p.add_argument("--source-column", default="source",
                   help="--compare: report each value's share of the rows (default: source, when present)")
    p.add_argument("--output", default="instag-sample", help="output folder (default: instag-sample)")
    _add_data_options(p)
    p.set_defaults(func=cmd_sample)
