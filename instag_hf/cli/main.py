"""The ``instag`` command line (also ``python -m instag_hf``).

Bad input (an empty, non-UTF-8 or malformed file, a missing column, a bad option value)
ends every command with one line on stderr that names the file, the line where it can,
and what to do, and exit status 2; ``instag --debug ...`` also prints the traceback.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import importlib.util
import json
import math
import re
import sys
import traceback
from pathlib import Path

from ..strict_json import write_json

SAMPLE_PREFIX = "sample:"
#: modules that contribute subcommands (normalize, analyze, sample, ...)
API_OPTIONS = ("base_url", "api_key_env", "concurrency", "timeout", "max_retries")
#: options of the tag subcommand for the openai-batch and hf backends
TAG_API_OPTIONS = ("submit_only", "poll_interval", "window_requests", "provider")
VLLM_OPTIONS = ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype", "engine_kwargs")
COMMAND_MODULES = ("instag_hf.cli.normalize", "instag_hf.cli.analysis", "instag_hf.cli.publish", "instag_hf.cli.quality", "instag_hf.cli.score")
DATA_FILES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


class InputError(ValueError):
    """Bad input the user can fix; the command line prints it as one line and exits with status 2."""


# --- option types: argparse rejects bad counts before anything runs ---------------------------
def _number(text: str, kind: type, least: float, strict: bool, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value < least or (strict and value == least):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An option that counts something: an int >= 1."""
    return _number(text, int, 0, True, "a whole number >= 1")


def non_negative_int(text: str) -> int:
    """An int >= 0."""
    return _number(text, int, 0, False, "a whole number >= 0")


def positive_float(text: str) -> float:
    """A number > 0 (seconds, a share)."""
    return _number(text, float, 0.0, True, "a number > 0")


def non_negative_float(text: str) -> float:
    return _number(text, float, 0.0, False, "a number >= 0")


def percent(value) -> str:
    """``0.125`` -> ``"12.5%"``; a missing or non-finite statistic -> ``"n/a"`` (never ``"nan%"``)."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


# --- reading input ----------------------------------------------------------------------------
def load_input(source: str, split: str = "train"):
    """A ``Dataset`` from ``sample:alpaca``/``sample:chat``, a data file, a ``save_to_disk`` folder, or a hub id.

    Raises :class:`InputError` naming the file (and the line, for text files) when it is
    empty, not UTF-8, malformed, of an unknown kind, or missing.
    """
    from datasets import load_dataset, load_from_disk

    from ..samples import SAMPLES, load_sample

    if source.startswith(SAMPLE_PREFIX):
        name = source[len(SAMPLE_PREFIX):]
        if name not in SAMPLES:
            raise InputError(f"no bundled sample {name!r}: use one of {', '.join(SAMPLE_PREFIX + s for s in SAMPLES)}")
        return load_sample(name)
    path = Path(source)
    if path.is_dir() and (path / "dataset_info.json").exists():
        try:
            return load_from_disk(str(path))
        except Exception as exc:
            raise InputError(f"{path}: cannot read this save_to_disk folder ({_cause(exc)}); write it again with "
                             "Dataset.save_to_disk") from exc
    if path.is_file():
        return _load_file(path)
    if path.exists():
        return _loaded(path, split, lambda: load_dataset(str(path), split=split))
    if path.suffix.lower() in DATA_FILES or not _HUB_ID.fullmatch(source):
        raise InputError(f"{source}: no such file or folder; check the path (or give a hub id as owner/name)")
    return _loaded(source, split, lambda: load_dataset(source, split=split))


def _loaded(source, split: str, load):
    """``load()``, with any failure as one :class:`InputError` naming ``source``."""
    try:
        ds = load()
    except Exception as exc:
        raise InputError(f"{source}: cannot load split {split!r} ({_cause(exc)}); give a data file "
                         "(.jsonl, .json, .parquet, .csv), a save_to_disk folder or a reachable hub id") from exc
    return _not_empty(ds, source)


def _load_file(path: Path):
    from datasets import load_dataset

    kind = DATA_FILES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: cannot read a {path.suffix or 'suffix-less'} file; use .jsonl, .json, .parquet "
                         "or .csv")
    if kind != "parquet":
        check_text_file(path)
    elif path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; give a file with at least one row")
    try:
        with _quiet_loading(path.stat().st_size):
            ds = load_dataset(kind, data_files=str(path), split="train")
    except Exception as exc:
        found = _find_bad_json(path) if kind == "json" else None
        if found is None and "corresponds to no data" in _cause(exc):
            found = f"{path}: the file holds no rows; give a file with at least one row"
        raise InputError(found or f"{path}: cannot read as {path.suffix[1:]} ({_cause(exc)}); fix the file") from exc
    return _not_empty(ds, path)


#: files smaller than this load without a progress bar (so a failed load prints only its one line)
QUIET_BELOW = 64 << 20


@contextlib.contextmanager
def _quiet_loading(size: int):
    """``datasets``' own error log off while a file loads (the error is reported once, by us); its progress
    bar too, for a file under :data:`QUIET_BELOW` bytes (it loads in moments)."""
    import datasets

    verbosity = datasets.logging.get_verbosity()
    bars = not datasets.utils.are_progress_bars_disabled()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    if bars and size < QUIET_BELOW:
        datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars:
            datasets.utils.enable_progress_bars()


def _not_empty(ds, source):
    if hasattr(ds, "__len__") and len(ds) == 0:
        raise InputError(f"{source}: no rows; give data with at least one row")
    return ds


def check_text_file(path: Path, chunk: int = 1 << 20) -> None:
    """Raise :class:`InputError` if ``path`` is empty (only whitespace) or not UTF-8, naming the line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    content = False
    with open(path, "rb") as fh:
        try:
            while block := fh.read(chunk):
                decoder.decode(block)
                content = content or bool(block.strip())
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            _raise_not_utf8(path)
    if not content:
        raise InputError(f"{path}: the file is empty; give a file with at least one row")


def _raise_not_utf8(path: Path) -> None:
    """Find the first line that is not UTF-8 and raise an :class:`InputError` naming it."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = line[exc.start]
                raise InputError(
                    f"{path}, line {number}: not UTF-8 text (byte 0x{byte:02x} at column {exc.start + 1}); "
                    f"save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > utf8{path.suffix}") from None
    raise InputError(f"{path}: not UTF-8 text (it ends inside a character); save the file as UTF-8")


def _find_bad_json(path: Path) -> str | None:
    """The first malformed row of a JSON / JSON Lines file, as a message naming its line, or None."""
    with open(path, encoding="utf-8") as fh:
        first = fh.read(1 << 16).lstrip()
    if first.startswith("[") or (first.startswith("{") and path.suffix.lower() == ".json"):
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            if not first.startswith("{"):
                return f"{path}, line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); fix that line"
            value = None  # maybe JSON Lines in a .json file: read it line by line
        if isinstance(value, list):
            bad = next((i for i, row in enumerate(value) if not isinstance(row, dict)), None)
            if not value:
                return f"{path}: the JSON list is empty; give at least one row"
            if bad is not None:
                return (f"{path}: item {bad} of the JSON list is a {_json_type(value[bad])}, not an object; every row "
                        "must be a JSON object of columns")
            return None
        if isinstance(value, dict):
            return None
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                return (f"{path}, line {number}: not valid JSON ({exc.msg} at column {exc.colno}); fix or remove "
                        "that line (JSON Lines: one object per line)")
            if not isinstance(row, dict):
                return (f"{path}, line {number}: a JSON {_json_type(row)}, not an object; each line must be one "
                        "JSON object of columns")
    return None


def _json_type(value) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _cause(exc: BaseException) -> str:
    """The innermost cause of ``exc`` as ``Type: message`` on one line."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def require_tags_column(ds, source: str, tags_column: str | None) -> str:
    """The tags column of ``ds`` (see ``resolve_tags_column``), or an :class:`InputError` naming ``source``."""
    from ..analysis.tagsets import TAG_COLUMNS, resolve_tags_column

    try:
        return resolve_tags_column(ds.column_names, tags_column)
    except ValueError:
        wanted = repr(tags_column) if tags_column else " or ".join(map(repr, TAG_COLUMNS))
        raise InputError(f"{source}: no tags column {wanted} (columns: {', '.join(ds.column_names)}); tag it first "
                         f"with `instag tag {source}`, or name its tags column with --tags-column") from None


def add_request_options(g) -> None:
    """The request cache, API and vLLM engine flags every command that asks a model shares."""
    g.add_argument("--cache-dir", help="request cache folder (default: $INSTAG_HF_HOME/requests)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the request cache")
    g.add_argument("--base-url", help="openai backend: server URL (default: $INSTAG_API_BASE_URL or OpenAI)")
    g.add_argument("--api-key-env", help="openai backend: NAME of the environment variable holding the key")
    g.add_argument("--concurrency", type=positive_int, help="openai backend: requests in flight (default: 16)")
    g.add_argument("--timeout", type=positive_float, help="openai backend: seconds per attempt (default: 60)")
    g.add_argument("--max-retries", type=non_negative_int,
                   help="openai backend: retries after the first attempt (default: 5)")
    g.add_argument("--tensor-parallel-size", type=positive_int, help="vllm backend: GPUs per engine (default: 1)")
    g.add_argument("--gpu-memory-utilization", type=positive_float,
                   help="vllm backend: share of GPU memory the engine may take (default: 0.9)")
    g.add_argument("--max-model-len", type=positive_int,
                   help="vllm backend: context length (default: 2048, InsTagger's)")
    g.add_argument("--dtype", help="vllm backend: weights dtype (default: the model's)")
    g.add_argument("--engine-arg", dest="engine_kwargs", action="append", type=_engine_arg, metavar="KEY=VALUE",
                   help="vllm backend: any other vLLM engine argument, repeatable; VALUE is read as JSON when it "
                        "parses (enforce_eager=true, load_format=dummy)")


def engine_options(args) -> dict:
    """The vLLM engine flags that were given, refused unless the backend is vllm."""
    engine = {k: getattr(args, k) for k in VLLM_OPTIONS if getattr(args, k, None) is not None}
    if engine and args.backend != "vllm":
        flags = ", ".join("--" + ("engine-arg" if k == "engine_kwargs" else k.replace("_", "-")) for k in engine)
        raise SystemExit(f"instag: {flags} set the vLLM engine; add --backend vllm")
    if "engine_kwargs" in engine:
        engine["engine_kwargs"] = dict(engine["engine_kwargs"])
    return engine


def request_options(args) -> dict:
    """The API flags that were given, and the engine flags (see :func:`engine_options`)."""
    return {**{k: getattr(args, k) for k in API_OPTIONS if getattr(args, k) is not None}, **engine_options(args)}


def _add_tagger_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tagger")
    g.add_argument("--backend", default="auto",
                   help="auto, openai, openai-batch (the Batch API), hf (Hugging Face Inference Providers), "
                        "retrieval (the tagged bank's nearest queries, no language model), transformers, vllm, "
                        "or package.module:Class (default: auto)")
    g.add_argument("--model", help="model for the backend (transformers: hub id, folder or 'embedded')")
    g.add_argument("--template", help="prompt template: teacher, paper, vicuna_v1.1, vicuna_v1.1_raw, chatml, fewshot, fewshot_retrieval "
                        "(default: the backend's)")
    g.add_argument("--batch-size", type=positive_int, default=16, help="prompts per backend call (default: 16)")
    g.add_argument("--max-query-tokens", type=positive_int, default=1536)
    g.add_argument("--max-new-tokens", type=positive_int, help="answer budget (default: the template's)")
    add_request_options(g)
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

    return Tagger(
        backend=args.backend, model=args.model, template=args.template, batch_size=args.batch_size,
        max_query_tokens=args.max_query_tokens, max_new_tokens=args.max_new_tokens,
        cache_dir=args.cache_dir, use_cache=not args.no_cache, query_column=args.query_column,
        format=args.format, **request_options(args),
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
    write_json(out / "summary.json", record)
    print(f"\n{tagger.summary()}")
    print(f"Wrote {out.resolve()}/ ({', '.join(sorted(p.name for p in out.iterdir()))})")


def cmd_tag(args) -> int:
    if args.gpus and args.ray_actors:
        raise SystemExit("instag: use either --gpus (one machine) or --ray-actors (a Ray cluster)")
    if (args.submit_only or args.poll_interval is not None or args.window_requests is not None) \
            and args.backend != "openai-batch":
        raise SystemExit("instag: --submit-only, --poll-interval and --window-requests are for --backend openai-batch")
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
    parser.add_argument("--debug", action="store_true", help="on an error, also print the traceback")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the whole pipeline on the bundled sample: tag, normalize, analyze, select, card")
    p.add_argument("--output", default="instag-output", help="output folder (default: instag-output)")
    p.add_argument("--limit", type=positive_int, help="use only the first N rows of each sample")
    p.add_argument("--select", type=positive_int, default=50, help="rows to select (default: 50)")
    p.add_argument("--strategy", default="cfd", help="selection strategy (default: cfd)")
    p.add_argument("--seed", type=int, default=0)
    _add_tagger_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tag", help="tag a dataset (file, save_to_disk folder, hub id, or sample:alpaca)")
    p.add_argument("input")
    p.add_argument("--split", default="train")
    p.add_argument("--output", default="instag-output")
    p.add_argument("--limit", type=positive_int, help="tag only the first N rows")
    p.add_argument("--map-batch-size", type=positive_int, default=64, help="rows per Dataset.map batch (default: 64)")
    p.add_argument("--ray-actors", type=non_negative_int, default=0,
                   help="tag on Ray Data with this many actors (ray.init() joins $RAY_ADDRESS or starts one locally)")
    p.add_argument("--ray-gpus-per-actor", type=non_negative_float, default=0)
    p.add_argument("--gpus", type=non_negative_int, default=0,
                   help="data parallel on this machine: one engine per GPU in N spawned map workers (vllm backend)")
    p.add_argument("--submit-only", action="store_true",
                   help="openai-batch backend: return once every request is submitted (or running); run the same "
                        "command again to collect the results")
    p.add_argument("--poll-interval", type=positive_float,
                   help="openai-batch backend: seconds between looks at running batches (default: 60)")
    p.add_argument("--window-requests", type=positive_int,
                   help="openai-batch backend: requests submitted at a time; each window is collected before the "
                        "next is sent (default: 500000)")
    p.add_argument("--provider", help="hf backend: inference provider (default: auto)")
    _add_tagger_options(p)
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("templates", help="list the prompt templates")
    p.set_defaults(func=cmd_templates)

    for name in COMMAND_MODULES:  # each adds its subcommands with add_commands(sub)
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_commands(sub)
    for command in sub.choices.values():  # --debug also after the command: `instag tag x.jsonl --debug`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="on an error, also print the traceback")
    return parser


def input_error_message(exc: BaseException, args=None) -> str | None:
    """One line for an error caused by bad input, or None for any other error (a bug: keep its traceback).

    Bad input: :class:`InputError` and any ``ValueError`` (the package's error for bad data or
    arguments; ``QueryFormatError`` is one), a missing file, or a ``datasets`` generation error.
    """
    from datasets.exceptions import DatasetGenerationError

    from ..tagging.queries import QueryFormatError

    if isinstance(exc, DatasetGenerationError):
        text = _cause(exc)
    elif isinstance(exc, (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        text = " ".join(str(exc).split()) or type(exc).__name__
    else:
        return None
    source = getattr(args, "input", None)
    if isinstance(exc, QueryFormatError) and isinstance(source, str) and source not in text:
        text = f"{source}: {text}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Run one ``instag`` command; bad input ends in one line on stderr and exit status 2 (see the module)."""
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("instag: interrupted; finished requests are in the cache and will not be re-run", file=sys.stderr)
        return 130
    except SystemExit as exc:  # a command's usage error: raise SystemExit("instag: ...")
        if isinstance(exc.code, str):
            print(exc.code if exc.code.startswith("instag:") else f"instag: {exc.code}", file=sys.stderr)
            return 2
        raise
    except Exception as exc:
        message = input_error_message(exc, args)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"instag: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
