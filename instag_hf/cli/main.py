"""The ``instag`` command line (also ``python -m instag_hf``)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path

SAMPLE_PREFIX = "sample:"
#: modules that contribute subcommands (normalize, analyze, sample, ...)
API_OPTIONS = ("base_url", "api_key_env", "concurrency", "timeout", "max_retries")
#: options of the tag subcommand for the openai-batch and hf backends
TAG_API_OPTIONS = ("submit_only", "poll_interval", "provider")
VLLM_OPTIONS = ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype", "engine_kwargs")
COMMAND_MODULES = ("instag_hf.cli.normalize", "instag_hf.cli.analysis", "instag_hf.cli.publish", "instag_hf.cli.quality")


def load_input(source: str, split: str = "train"):
    """A ``Dataset`` from ``sample:alpaca``/``sample:chat``, a data file, a ``save_to_disk`` folder, or a hub id."""
    from datasets import load_dataset, load_from_disk

    from ..samples import load_sample

    if source.startswith(SAMPLE_PREFIX):
        return load_sample(source[len(SAMPLE_PREFIX):])
    path = Path(source)
    if path.is_dir() and (path / "dataset_info.json").exists():
        return load_from_disk(str(path))
    if path.is_file():
        kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
        if kind is None:
            raise SystemExit(f"instag: cannot read {path}: use .jsonl, .json, .parquet or .csv")
        return load_dataset(kind, data_files=str(path), split="train")
    if path.exists():
        return load_dataset(str(path), split=split)
    return load_dataset(source, split=split)


def _add_tagger_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tagger")
    g.add_argument("--backend", default="auto",
                   help="auto, openai, openai-batch (the Batch API), hf (Hugging Face Inference Providers), "
                        "retrieval (the tagged bank's nearest queries, no language model), transformers, vllm, "
                        "or package.module:Class (default: auto)")
    g.add_argument("--model", help="model for the backend (transformers: hub id, folder or 'embedded')")
    g.add_argument("--template", help="prompt template: teacher, vicuna_v1.1, chatml, fewshot, fewshot_retrieval "
                        "(default: the backend's)")
    g.add_argument("--batch-size", type=int, default=16, help="prompts per backend call (default: 16)")
    g.add_argument("--max-query-tokens", type=int, default=1536)
    g.add_argument("--max-new-tokens", type=int, help="answer budget (default: the template's)")
    g.add_argument("--cache-dir", help="request cache folder (default: $INSTAG_HF_HOME/requests)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the request cache")
    g.add_argument("--base-url", help="openai backend: server URL (default: $INSTAG_API_BASE_URL or OpenAI)")
    g.add_argument("--api-key-env", help="openai backend: NAME of the environment variable holding the key")
    g.add_argument("--concurrency", type=int, help="openai backend: requests in flight (default: 16)")
    g.add_argument("--timeout", type=float, help="openai backend: seconds per attempt (default: 60)")
    g.add_argument("--max-retries", type=int, help="openai backend: retries after the first attempt (default: 5)")
    g.add_argument("--tensor-parallel-size", type=int, help="vllm backend: GPUs per engine (default: 1)")
    g.add_argument("--gpu-memory-utilization", type=float,
                   help="vllm backend: share of GPU memory the engine may take (default: 0.9)")
    g.add_argument("--max-model-len", type=int, help="vllm backend: context length (default: 2048, InsTagger's)")
    g.add_argument("--dtype", help="vllm backend: weights dtype (default: the model's)")
    g.add_argument("--engine-arg", dest="engine_kwargs", action="append", type=_engine_arg, metavar="KEY=VALUE",
                   help="vllm backend: any other vLLM engine argument, repeatable; VALUE is read as JSON when it "
                        "parses (enforce_eager=true, load_format=dummy)")
    g.add_argument("--query-column", help="tag this plain text column")
    g.add_argument("--format", help="force the layout: sharegpt, messages, alpaca, dolly, text")


def _engine_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def _tagger(args):
    from ..tagging.tagger import Tagger

    engine = {k: getattr(args, k) for k in VLLM_OPTIONS if getattr(args, k, None) is not None}
    if engine and args.backend != "vllm":
        flags = ", ".join("--" + ("engine-arg" if k == "engine_kwargs" else k.replace("_", "-")) for k in engine)
        raise SystemExit(f"instag: {flags} set the vLLM engine; add --backend vllm")
    if "engine_kwargs" in engine:
        engine["engine_kwargs"] = dict(engine["engine_kwargs"])
    return Tagger(
        backend=args.backend, model=args.model, template=args.template, batch_size=args.batch_size,
        max_query_tokens=args.max_query_tokens, max_new_tokens=args.max_new_tokens,
        cache_dir=args.cache_dir, use_cache=not args.no_cache, query_column=args.query_column,
        format=args.format,
        **{k: getattr(args, k) for k in API_OPTIONS if getattr(args, k) is not None}, **engine,
        **{k: getattr(args, k) for k in TAG_API_OPTIONS if getattr(args, k, None) not in (None, False)},
    )


def _tag_and_save(tagger, ds, out: Path, name: str, limit: int | None, map_batch_size: int,
                  ray_actors: int = 0, ray_gpus: float = 0, gpus: int = 0) -> dict:
    from ..analysis.metrics import summarize_dataset

    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    if ray_actors:
        from ..tagging.ray_data import tag_dataset_with_ray

        tagged = tag_dataset_with_ray(ds, tagger, actors=ray_actors, num_gpus_per_actor=ray_gpus,
                                      batch_size=map_batch_size)
    elif gpus:
        from ..tagging.gpus import tag_on_gpus

        tagged = tag_on_gpus(ds, tagger, num_gpus=gpus, batch_size=map_batch_size, desc=f"Tagging {name}")
    else:
        tagged = tagger.map(ds, batch_size=map_batch_size, desc=f"Tagging {name}")
    tagged.save_to_disk(str(out / name))
    tagged.to_json(str(out / f"{name}.jsonl"), lines=True, force_ascii=False)
    summary = summarize_dataset(tagged)
    print(f"\n== {name} ==\n{summary.to_text()}")
    return summary.as_dict()


def _write_summary(out: Path, tagger, parts: dict) -> None:
    record = {"tagger": tagger.describe(), "stats": tagger.stats.as_dict(), "backend_stats": tagger.configured_backend.stats(),
              "datasets": parts}
    (out / "summary.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
    print(f"\n{tagger.summary()}")
    print(f"Wrote {out.resolve()}/ ({', '.join(sorted(p.name for p in out.iterdir()))})")


def cmd_tag(args) -> int:
    if args.gpus and args.ray_actors:
        raise SystemExit("instag: use either --gpus (one machine) or --ray-actors (a Ray cluster)")
    if (args.submit_only or args.poll_interval is not None) and args.backend != "openai-batch":
        raise SystemExit("instag: --submit-only and --poll-interval are for --backend openai-batch")
    tagger = _tagger(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_input(args.input, args.split)
    name = Path(args.input.replace(SAMPLE_PREFIX, "sample_")).stem or "tagged"
    try:
        parts = {name: _tag_and_save(tagger, ds, out, name, args.limit, args.map_batch_size,
                                     args.ray_actors, args.ray_gpus_per_actor, args.gpus)}
    except Exception as exc:
        from ..tagging.backends.openai_batch import BatchPending

        if not isinstance(exc, BatchPending):
            raise
        print(f"instag: submitted; {exc}", file=sys.stderr)
        return 0
    _write_summary(out, tagger, parts)
    return 0


def cmd_demo(args) -> int:
    from ..pipeline import run_pipeline
    from ..samples import SAMPLES, load_sample

    tagger = _tagger(args)
    samples = {}
    for name in SAMPLES:
        ds = load_sample(name)
        samples[name] = ds.select(range(min(args.limit, len(ds)))) if args.limit is not None else ds
    written = run_pipeline(samples, args.output, tagger, select=args.select, strategy=args.strategy, seed=args.seed)
    print(f"\n{tagger.summary()}\n")
    width = max(map(len, written))
    for what, path in written.items():
        print(f"{what:<{width}}  {path.resolve()}")
    return 0


def cmd_templates(args) -> int:
    from ..tagging.prompts import TEMPLATES

    for t in TEMPLATES.values():
        print(f"{t.id:16s} {t.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instag", description="InsTag intention tagging for SFT datasets")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the whole pipeline on the bundled sample: tag, normalize, analyze, select, card")
    p.add_argument("--output", default="instag-output", help="output folder (default: instag-output)")
    p.add_argument("--limit", type=int, help="use only the first N rows of each sample")
    p.add_argument("--select", type=int, default=50, help="rows to select (default: 50)")
    p.add_argument("--strategy", default="cfd", help="selection strategy (default: cfd)")
    p.add_argument("--seed", type=int, default=0)
    _add_tagger_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tag", help="tag a dataset (file, save_to_disk folder, hub id, or sample:alpaca)")
    p.add_argument("input")
    p.add_argument("--split", default="train")
    p.add_argument("--output", default="instag-output")
    p.add_argument("--limit", type=int, help="tag only the first N rows")
    p.add_argument("--map-batch-size", type=int, default=64, help="rows per Dataset.map batch (default: 64)")
    p.add_argument("--ray-actors", type=int, default=0,
                   help="tag on Ray Data with this many actors (ray.init() joins $RAY_ADDRESS or starts one locally)")
    p.add_argument("--ray-gpus-per-actor", type=float, default=0)
    p.add_argument("--gpus", type=int, default=0,
                   help="data parallel on this machine: one engine per GPU in N spawned map workers (vllm backend)")
    p.add_argument("--submit-only", action="store_true",
                   help="openai-batch backend: return once every request is submitted (or running); run the same "
                        "command again to collect the results")
    p.add_argument("--poll-interval", type=float,
                   help="openai-batch backend: seconds between looks at running batches (default: 60)")
    p.add_argument("--provider", help="hf backend: inference provider (default: auto)")
    _add_tagger_options(p)
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("templates", help="list the prompt templates")
    p.set_defaults(func=cmd_templates)

    for name in COMMAND_MODULES:  # each adds its subcommands with add_commands(sub)
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("instag: interrupted; finished requests are in the cache and will not be re-run", file=sys.stderr)
        return 130
    except Exception as exc:
        from ..tagging.queries import QueryFormatError

        if isinstance(exc, QueryFormatError):
            print(f"instag: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
