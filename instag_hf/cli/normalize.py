"""``instag normalize``: fit the tag normalization on a tagged dataset and write the results."""

from __future__ import annotations

import argparse
from pathlib import Path

from .main import positive_int, require_tags_column


def _count_or_fraction(text: str) -> int | float:
    """``"20"`` -> 20 (a count), ``"0.0001"`` -> 0.0001 (a fraction)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int count or a float fraction, got {text!r}") from None


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "normalize", help="normalize the tags of a tagged dataset (frequency, rules, semantic, association)",
        description="Fit InsTag tag normalization on a tagged dataset, then write the mapping (JSON), the "
                    "dataset with instag_norm_tags (save_to_disk folder and JSONL) and a Markdown report.")
    p.add_argument("input", help="tagged dataset: save_to_disk folder, .jsonl/.json/.parquet file, or hub id")
    p.add_argument("--split", default="train")
    p.add_argument("--output", default="instag-normalized", help="output folder (default: instag-normalized)")
    p.add_argument("--preset", default="paper", choices=["paper", "scaled"],
                   help="paper: the paper's counts; scaled: alpha as a fraction of the paper's 306,044 samples")
    for step in ("frequency", "rules", "semantic", "association"):
        p.add_argument(f"--no-{step}", action="store_true", help=f"skip {step} aggregation/filtering")
    g = p.add_argument_group("thresholds (default: the preset's)")
    g.add_argument("--alpha", type=_count_or_fraction, help="frequency filter: int count or float fraction")
    g.add_argument("--eps", type=float, help="semantic: cosine distance (0.05 = similarity >= 0.95)")
    g.add_argument("--min-samples", type=positive_int, help="semantic: DBSCAN min_samples (counts the tag itself)")
    g.add_argument("--min-support", type=_count_or_fraction, help="association: int count or float fraction")
    g.add_argument("--min-confidence", type=float, help="association: rule confidence")
    g = p.add_argument_group("semantic aggregation")
    g.add_argument("--model", help="sentence-transformers model id or folder (default: all-MiniLM-L6-v2, packaged)")
    g.add_argument("--device", help="cpu, cuda, ... (default: sentence-transformers' choice)")
    g.add_argument("--index", default="auto", choices=["auto", "flat", "ivf"], help="FAISS index (default: auto)")
    g.add_argument("--embedding-cache", help="embedding cache folder (default: $INSTAG_HF_HOME/embeddings)")
    g = p.add_argument_group("rules")
    g.add_argument("--rule-label", default="lemma", choices=["lemma", "frequent"],
                   help="text of a rule group: its lemma (paper) or its most frequent cleaned form")
    g.add_argument("--no-lemmatize", action="store_true")
    p.add_argument("--tags-column", default="instag_tags")
    p.add_argument("--unknown", default="drop", choices=["drop", "keep", "rules"],
                   help="what the saved mapping does with tags it never saw (default: drop)")
    p.set_defaults(func=cmd_normalize)


def cmd_normalize(args) -> int:
    from ..normalize import TagNormalizer
    from .main import load_input

    normalizer = TagNormalizer(
        preset=args.preset, frequency=not args.no_frequency, rules=not args.no_rules,
        semantic=not args.no_semantic, association=not args.no_association, alpha=args.alpha, eps=args.eps,
        min_samples=args.min_samples, min_support=args.min_support, min_confidence=args.min_confidence,
        embedder=args.model, device=args.device, index=args.index, embedding_cache_dir=args.embedding_cache,
        rule_label=args.rule_label, lemmatize=not args.no_lemmatize, tags_column=args.tags_column,
        unknown=args.unknown,
    )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_input(args.input, args.split)
    require_tags_column(ds, args.input, args.tags_column)
    mapping = normalizer.fit(ds)
    written = {
        "mapping": mapping.save(out / "mapping.json"),
        "report": out / "report.md",
    }
    written["report"].write_text(mapping.report.to_markdown())
    normalized = mapping.map(ds)
    normalized.save_to_disk(str(out / "normalized"))
    normalized.to_json(str(out / "normalized.jsonl"), lines=True, force_ascii=False)
    written["dataset"] = out / "normalized"
    written["jsonl"] = out / "normalized.jsonl"
    report = mapping.report
    print("\n| step | tags before | tags after | seconds |\n|---|---:|---:|---:|")
    for s in report.stages:
        after = f"{s.tags_after:,}" if s.enabled else "(off)"
        print(f"| {s.title} | {s.tags_before:,} | {after} | {s.seconds:.1f} |")
    print(f"\n{report.samples:,} tagged samples ({report.skipped_rows:,} skipped for their status): "
          f"{report.raw_tags:,} raw tags -> {report.final_tags:,} canonical tags ({report.dropped_tags:,} dropped)")
    for warning in report.warnings:  # also logged; repeated here, after the table, where it is read
        print(f"warning: {warning}")
    for name, path in written.items():
        print(f"wrote {name}: {path.resolve()}")
    return 0
