"""``instag eval``, ``judge``, ``distill`` and ``train-local``: tag quality and distillation from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..strict_json import dumps, write_json
from .main import API_OPTIONS, _add_tagger_options, load_input, non_negative_int, positive_int


def _fail(message: str) -> int:
    print(f"instag: {message}", file=sys.stderr)
    return 2


def _threshold(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def _test_size(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}") from None


def cmd_eval(args) -> int:
    from ..quality.f1 import evaluate_tags

    if args.reference:
        return _eval_reference(args)
    if args.predicted is None:
        return _fail("name a tagged dataset (instag eval PRED [GOLD]), or tag the reference set with --reference")
    if args.backend != "auto" or args.model or args.template:
        return _fail("--backend, --model and --template choose the tagger for --reference; PRED is already tagged")
    predicted = load_input(args.predicted, args.split)
    gold = load_input(args.gold, args.split) if args.gold else None
    try:
        report = evaluate_tags(
            predicted, gold, predicted_column=args.predicted_column, gold_column=args.gold_column, on=args.on,
            predicted_status=None if args.no_status else "auto", gold_status=None if args.no_status else "auto",
            threshold=None if args.exact_only else args.threshold, embedder=args.embedder,
            matching=args.matching, failed=args.failed or "skip")
    except ValueError as exc:
        return _fail(str(exc))
    print(report.to_markdown(top=args.top))
    if args.output:
        report.to_json(args.output)
        print(f"\nWrote {Path(args.output).resolve()}")
    return 0


def _eval_reference(args) -> int:
    """``instag eval --reference``: tag the bundled reference set and score the tags against it."""
    from ..quality.reference import score_tagger
    from .main import _tagger

    if args.predicted or args.gold:
        return _fail("--reference tags the bundled reference set itself: drop PRED/GOLD, or drop --reference")
    used = [f"--{k.replace('_', '-')}" for k in ("predicted_column", "gold_column", "on", "no_status")
            if getattr(args, k)]
    if used:
        return _fail(f"{', '.join(used)}: for scoring PRED/GOLD, not with --reference")
    tagger = _tagger(args)
    try:
        result = score_tagger(tagger, threshold=None if args.exact_only else args.threshold,
                              embedder=args.embedder, matching=args.matching, failed=args.failed or "empty")
    except ValueError as exc:
        return _fail(str(exc))
    report = result.pop("report")
    print(report.to_markdown(top=args.top))
    print("\n" + _reference_summary(result))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        report.to_json(str(out / "report.json"))
        summary = {"tagger": tagger.describe(), **{k: v for k, v in result.items() if k != "predictions"}}
        write_json(out / "summary.json", summary)
        with open(out / "predictions.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(dumps(row) + "\n" for row in result["predictions"])
        print(f"\nWrote {out.resolve()}/ (report.json, summary.json, predictions.jsonl)")
    print(f"\n{tagger.summary()}")
    return 0


def _reference_summary(r: dict) -> str:
    statuses = ", ".join(f"{k}={v}" for k, v in sorted(r["statuses"].items()))
    lines = [f"Reference set: {r['rows']} rows, {r['queries']} queries in {r['seconds']:.1f} s "
             f"({r['queries_per_s']:.2f} queries/s); statuses: {statuses}"]
    for mode in ("fuzzy", "exact"):
        if r[mode] is not None:
            m = r[mode]
            lines.append(f"{mode} micro F1 {100 * m['f1']:.1f}% (P {100 * m['precision']:.1f}%, "
                         f"R {100 * m['recall']:.1f}%)")
    top = (f"{r['top_tag']!r} on {100 * r['top_tag_share']:.1f}% of rows "
           f"(reference tags: {100 * r['top_tag_reference_share']:.1f}%)" if r["top_tag"] else "none")
    lines.append(f"tags per query {r['tags_per_query']:.2f}; most frequent predicted tag: {top}")
    return "\n".join(lines)


def cmd_judge(args) -> int:
    from ..quality.judge import LLMJudge

    if args.template:
        return _fail("judge prompts are chosen with --precision-template / --consistency-template, not --template")
    ds = load_input(args.input, args.split)
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    options = {k: getattr(args, k) for k in API_OPTIONS if getattr(args, k) is not None}
    try:
        judge = LLMJudge(args.backend, args.model, n=args.cases, seed=args.seed, unit=args.unit,
                         queries_per_tag=args.queries_per_tag, min_queries=args.min_queries,
                         precision_template=args.precision_template, consistency_template=args.consistency_template,
                         batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, cache_dir=args.cache_dir,
                         use_cache=not args.no_cache, **options)
        result = judge.judge(ds, [m.strip() for m in args.metrics.split(",") if m.strip()],
                             tags_column=args.tags_column, query_column=args.query_column, format=args.format)
    except ValueError as exc:
        return _fail(str(exc))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    result.to_jsonl(str(out / "cases.jsonl"))
    write_json(out / "summary.json", result.as_dict(cases=False))
    (out / "summary.md").write_text(result.to_markdown() + "\n")
    print(result.to_markdown())
    print(f"\nWrote {out.resolve()}/ (cases.jsonl, summary.json, summary.md)")
    return 0


def cmd_distill(args) -> int:
    from ..quality.distill import distill_dataset, finetune_command, save_distill

    ds = load_input(args.input, args.split)
    try:
        splits, report = distill_dataset(ds, args.template, args.layout, tags_column=args.tags_column,
                                         test_size=args.test_size, seed=args.seed, query_column=args.query_column,
                                         format=args.format, return_report=True)
    except ValueError as exc:
        return _fail(str(exc))
    paths = save_distill(splits, args.output, report)
    skipped = ", ".join(f"{k}: {v}" for k, v in report.skipped.items()) or "none"
    print(f"{report.examples} examples ({report.train} train, {report.test} held out) with template "
          f"{report.template}, layout {report.layout}; skipped: {skipped}")
    print(f"Wrote {', '.join(str(p) for p in paths.values())}")
    print("\nFine-tune (TRL; not run here):\n  " + finetune_command(args.output, args.base_model))
    print(f"Then tag with: instag tag DATA --backend transformers --model instagger-local --template {args.template}")
    return 0


def cmd_train_local(args) -> int:
    from ..quality.f1 import tag_f1
    from ..quality.local_model import LocalTagModel

    ds = load_input(args.input, args.split)
    try:
        model = LocalTagModel(args.method, args.embedder, k=args.k, alpha=args.alpha, min_count=args.min_count,
                              threshold=args.threshold, min_tags=args.min_tags, max_tags=args.max_tags,
                              seed=args.seed)
        held = None
        if args.test_size:
            from ..quality.distill import split_groups, tagged_turns

            tags_column = args.tags_column
            if tags_column is None and "instag_norm_tags" in ds.column_names:
                tags_column = "instag_norm_tags"
            turns, _ = tagged_turns(ds, tags_column, args.query_column, args.format)
            mask = split_groups([q for _, _, q, _ in turns], args.test_size, args.seed)
            train = [t for t, m in zip(turns, mask) if not m]
            held = [t for t, m in zip(turns, mask) if m]
            model.fit([q for _, _, q, _ in train], [i for _, _, _, i in train])
        else:
            model.fit_dataset(ds, args.tags_column, args.query_column, args.format)
    except ValueError as exc:
        return _fail(str(exc))
    folder = model.save(args.output)
    info = model.info
    print(f"Trained a {model.method} tagger on {info['queries']} queries: {len(model.vocab)} tags "
          f"(of {info['raw_tags']} raw, min_count {model.min_count}), threshold {model.threshold_:.3f}")
    if held:
        pred = model.predict([q for _, _, q, _ in held])
        report = tag_f1([[t for t, _ in p] for p in pred], [i for _, _, _, i in held],
                        threshold=None if args.exact_only else 0.8, embedder=args.embedder)
        print(f"\nHeld-out evaluation against the teacher ({len(held)} queries):\n")
        print(report.to_markdown(top=0))
    print(f"\nWrote {folder.resolve()}/ (config.json, vocab.json, arrays.npz)")
    print(f"Tag with it: instag tag DATA --backend local --model {folder}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("eval", help="precision, recall and F1 of tags against reference tags (exact and fuzzy)",
                       description="Score a tagged dataset (PRED [GOLD]), or tag the bundled reference set with a "
                                   "tagger and score that (--reference).")
    p.add_argument("predicted", nargs="?", help="tagged dataset (file, save_to_disk folder, hub id)")
    p.add_argument("gold", nargs="?", help="reference dataset; omit to compare two columns of PREDICTED")
    p.add_argument("--reference", action="store_true",
                   help="tag the bundled reference set with the tagger options below and score it")
    p.add_argument("--split", default="train")
    p.add_argument("--predicted-column", help="default: instag_norm_tags if present, else instag_tags")
    p.add_argument("--gold-column", help="default: the predicted column's name (required with one dataset)")
    p.add_argument("--on", help="join the two datasets on this column (an id or the query); default: row order")
    p.add_argument("--threshold", type=float, default=0.8, help="fuzzy match at cosine >= this (default: 0.8)")
    p.add_argument("--exact-only", action="store_true", help="skip fuzzy matching (no embedding model needed)")
    p.add_argument("--matching", choices=("hungarian", "greedy"), default="hungarian")
    p.add_argument("--embedder", help="sentence-transformers model for fuzzy matching (default: all-MiniLM-L6-v2)")
    p.add_argument("--failed", choices=("skip", "empty"),
                   help="rows whose prediction failed: leave out (default) or score as no tags "
                        "(the default with --reference)")
    p.add_argument("--no-status", action="store_true", help="ignore instag_status columns (trust every row)")
    p.add_argument("--top", type=non_negative_int, default=20, help="tags in the per-tag table (default: 20)")
    p.add_argument("--output", help="write the full report (all tags) as JSON to this file; with --reference, a "
                                    "folder for report.json, summary.json and predictions.jsonl")
    _add_tagger_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("judge", help="LLM-judged precision and consistency of tags on a seeded sample")
    p.add_argument("input")
    p.add_argument("--split", default="train")
    p.add_argument("--metrics", default="precision,consistency")
    p.add_argument("--cases", type=positive_int, default=200, help="cases per metric (default: 200; the paper: 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unit", choices=("query", "tag"), default="query",
                   help="precision case: a query with all its tags (default) or one query-tag pair")
    p.add_argument("--queries-per-tag", type=positive_int, default=5)
    p.add_argument("--min-queries", type=positive_int, default=2)
    p.add_argument("--precision-template", default="precision")
    p.add_argument("--consistency-template", default="consistency")
    p.add_argument("--tags-column", help="default: instag_norm_tags if present, else instag_tags")
    p.add_argument("--limit", type=positive_int, help="sample from the first N rows only")
    p.add_argument("--output", default="instag-judge")
    _add_tagger_options(p)
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("distill", help="teacher tags as fine-tuning conversations for a local tagger")
    p.add_argument("input")
    p.add_argument("--split", default="train")
    p.add_argument("--template", default="vicuna_v1.1", help="vicuna_v1.1 (default) or chatml")
    p.add_argument("--layout", default="auto",
                   choices=("auto", "messages", "conversations", "prompt_completion", "text"))
    p.add_argument("--tags-column", help="default: the per-turn teacher tags")
    p.add_argument("--test-size", type=_test_size, default=1000, help="held-out count or fraction (default: 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--query-column")
    p.add_argument("--format")
    p.add_argument("--base-model", default="Qwen/Qwen2.5-0.5B", help="model named in the printed TRL command")
    p.add_argument("--output", default="instag-distill")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("train-local", help="train the fast local tagger (embeddings + classifier) on teacher tags")
    p.add_argument("input")
    p.add_argument("--split", default="train")
    p.add_argument("--output", default="instag-local-tagger")
    p.add_argument("--method", choices=("ridge", "knn"), default="ridge")
    p.add_argument("--embedder", help="sentence-transformers model (default: all-MiniLM-L6-v2, offline)")
    p.add_argument("--k", type=positive_int, default=10, help="neighbours that vote (knn)")
    p.add_argument("--alpha", type=float, default=1.0, help="L2 penalty (ridge)")
    p.add_argument("--min-count", type=positive_int, default=3)
    p.add_argument("--threshold", type=_threshold, default="auto")
    p.add_argument("--min-tags", type=non_negative_int, default=1)
    p.add_argument("--max-tags", type=positive_int, default=8)
    p.add_argument("--tags-column", help="default: instag_norm_tags if present, else the per-turn teacher tags")
    p.add_argument("--test-size", type=_test_size, default=0,
                   help="hold out this many queries (or a fraction) and report F1 against the teacher")
    p.add_argument("--exact-only", action="store_true", help="held-out evaluation without fuzzy matching")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--query-column")
    p.add_argument("--format")
    p.set_defaults(func=cmd_train_local)

