"""``instag score``: Deita's quality and complexity scores (MIG's row weights) for a dataset."""

from __future__ import annotations

from pathlib import Path

from .main import SAMPLE_PREFIX, add_request_options, load_input, positive_int, request_options


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="add Deita's quality and complexity scores (instag_score, MIG's row weights)",
        description="Score every row with Deita's complexity prompt (user turn) and quality prompt (user turn and "
                    "answer), each the expectation over 1..6 of the first token's probabilities, and write the "
                    "dataset (save_to_disk folder and JSONL) and summary.json. Without a model on a CPU the "
                    "embedded SmolLM2 stands in: its scores are not Deita's.")
    p.add_argument("input", help="dataset: file, save_to_disk folder, hub id, or sample:alpaca")
    p.add_argument("--split", default="train")
    p.add_argument("--output", default="instag-scores", help="output folder (default: instag-scores)")
    p.add_argument("--limit", type=positive_int, help="score only the first N rows")
    p.add_argument("--map-batch-size", type=positive_int, default=64, help="rows per Dataset.map batch (default: 64)")
    g = p.add_argument_group("scorer")
    g.add_argument("--backend", default="auto",
                   help="auto (on a CPU: the embedded SmolLM2 stand-in), openai (any server returning logprobs), "
                        "openai-batch, transformers, vllm, or package.module:Class (default: auto)")
    g.add_argument("--model", help="model, e.g. hkust-nlp/deita-quality-scorer (transformers: 'embedded')")
    g.add_argument("--complexity-model", help="model for the complexity prompt (default: --model)")
    g.add_argument("--quality-model", help="model for the quality prompt (default: --model)")
    g.add_argument("--batch-size", type=positive_int, default=16, help="prompts per backend call (default: 16)")
    g.add_argument("--top-logprobs", type=positive_int, default=20,
                   help="log-probabilities asked per position (default: 20)")
    add_request_options(g)
    g.add_argument("--query-column", help="score this plain text column (complexity only: no answer)")
    g.add_argument("--format", help="force the layout: sharegpt, messages, alpaca, dolly, text")
    p.set_defaults(func=cmd_score)


def _scorer(args):
    from ..scoring import Scorer

    return Scorer(backend=args.backend, model=args.model, complexity_model=args.complexity_model,
                  quality_model=args.quality_model, batch_size=args.batch_size,
                  top_logprobs=args.top_logprobs, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                  query_column=args.query_column, format=args.format, **request_options(args))


def cmd_score(args) -> int:
    from .. import schema
    from ..strict_json import write_json

    scorer = _scorer(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_input(args.input, args.split)
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    name = Path(args.input.replace(SAMPLE_PREFIX, "sample_")).stem or "scored"
    scored = scorer.map(ds, batch_size=args.map_batch_size, desc=f"Scoring {name}")
    scored.save_to_disk(str(out / name))
    scored.to_json(str(out / f"{name}.jsonl"), lines=True, force_ascii=False)
    values = [v for v in scored[schema.SCORE] if v is not None]
    stats = {"rows": len(scored), "scored": len(values),
             "mean_score": sum(values) / len(values) if values else None,
             "statuses": {s: scored[schema.SCORE_STATUS].count(s) for s in sorted(set(scored[schema.SCORE_STATUS]))}}
    if len(scored) and scorer.stats.rows == 0:  # datasets' own cache served every row
        scorer.stats.rows = len(scored)
        scorer.stats.statuses.update(scored[schema.SCORE_STATUS])
    write_json(out / "summary.json", {"scorer": scorer.describe(), "stats": scorer.stats.as_dict(),
                                      "datasets": {name: stats}})
    print(f"\n{scorer.summary()}")
    print(f"Wrote {out.resolve()}/ ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0
