"""``instag push`` and ``instag space``: publish a tagged dataset (card, configs, plots) and the Gradio Space.

The token is never taken on the command line (it would land in shell history and
process lists): it comes from ``HF_TOKEN``, ``hf auth login``, or the variable named
by ``--token-env``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import schema
from .main import non_negative_int

SUMMARY_FILE = "summary.json"  # written by `instag tag` / `instag demo`
MAPPING_FILE = "mapping.json"  # written by `instag normalize`
SELECTION_FILE = "selection.json"  # written by `instag sample`


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{option} takes NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None


def _tagger_info(args, source: Path) -> dict | None:
    """``--tagger-info`` (a summary.json or a describe() dict), else the summary.json next to the input."""
    if args.tagger_info:
        path = Path(args.tagger_info)
    else:
        path = next((p for p in (source / SUMMARY_FILE, source.parent / SUMMARY_FILE) if p.is_file()), None)
        if path is None:
            return None
    data = _read_json(path)
    info = data.get("tagger", data)
    if not isinstance(info, dict) or "backend" not in info:
        raise ValueError(f"{path} holds no tagger settings (expected Tagger.describe() or an `instag tag` summary)")
    print(f"tagger settings from {path}")
    return info


def _mapping(args, source: Path):
    from ..normalize import TagMapping

    if args.mapping:
        path = Path(args.mapping)
    else:
        path = next((p for p in (source / MAPPING_FILE, source.parent / MAPPING_FILE) if p.is_file()), None)
        if path is None:
            return None
    print(f"tag mapping from {path}")
    return TagMapping.load(path)


def _subsets(args, ds) -> dict:
    from ..selection.params import STRATEGIES
    from ..selection.sampling import sample
    from .main import load_input

    subsets: dict = {}
    for name, location in _pairs(args.subset, "--subset").items():
        path = Path(location)
        subset = load_input(location, args.split)
        report_path = next((p for p in (path / SELECTION_FILE, path.parent / SELECTION_FILE) if p.is_file()), None)
        report = _read_json(report_path) if report_path is not None else None
        subsets[name] = (subset, report) if report is not None else subset
    for item in args.select or []:
        strategy, sep, n = item.partition(":")
        if not sep or strategy not in STRATEGIES or not n.isdigit():
            raise ValueError(f"--select takes STRATEGY:N with STRATEGY in {list(STRATEGIES)}, got {item!r}")
        name = f"selected_{strategy}_{n}"
        subsets[name] = sample(ds, int(n), strategy, seed=args.seed, tags_column=args.tags_column,
                               return_report=True)
    return subsets


def _exit_code(exc: Exception) -> int:
    """Print a publishing error and give its exit code: 2 for no token or bad input, 1 for a failed upload."""
    from ..publish import MissingTokenError, PublishError

    if isinstance(exc, MissingTokenError):
        code = 2
    elif isinstance(exc, PublishError):
        code = 1
    elif isinstance(exc, (ValueError, FileNotFoundError)):
        code = 2
    else:
        raise exc
    print(f"instag: {exc}", file=sys.stderr)
    return code


def cmd_push(args) -> int:
    from ..publish import push_to_hub, upload_publication
    from ..publish.bundle import MARKER
    from .main import load_input

    source = Path(args.input)
    try:
        if (source / MARKER).is_file():  # a folder written by --dry-run: upload it as it is
            if args.dry_run:
                raise ValueError(f"{source} is already a rendered publication; --dry-run needs the dataset")
            result = upload_publication(source, args.repo_id, token_env=args.token_env, private=args.private,
                                        revision=args.revision, create_pr=args.create_pr,
                                        commit_message=args.commit_message)
        else:
            ds = load_input(args.input, args.split)
            options = dict(
                tagger=_tagger_info(args, source), mapping=_mapping(args, source), subsets=_subsets(args, ds),
                vocabulary=not args.no_vocabulary, plots=not args.no_plots, pretty_name=args.pretty_name,
                license=args.license, language=args.language or ["en"],
                task_categories=args.task_category or ["text-generation"], tags=args.tag or [],
                source_datasets=args.source_dataset or [], description=args.description or "",
                tags_column=args.tags_column, source_column=args.source_column, top=args.top,
                max_shard_size=args.max_shard_size, template=args.card_template,
            )
            result = push_to_hub(args.repo_id, ds, token_env=args.token_env, private=args.private,
                                 revision=args.revision, create_pr=args.create_pr, commit_message=args.commit_message,
                                 dry_run=args.dry_run, local_dir=args.local_dir, overwrite=args.overwrite, **options)
    except Exception as exc:
        return _exit_code(exc)
    print(result.summary())
    if result.dry_run:
        print(f"Check {result.folder}/README.md, then upload the same files with "
              f"`instag push {result.folder} {args.repo_id}`")
    return 0


def cmd_space(args) -> int:
    from ..publish import push_space

    try:
        result = push_space(args.repo_id, app_dir=args.app_dir, dataset=args.dataset,
                            variables=_pairs(args.var, "--var"), token_env=args.token_env, private=args.private,
                            hardware=args.hardware, title=args.title, include_package=not args.no_package,
                            dry_run=args.dry_run, overwrite=args.overwrite, commit_message=args.commit_message)
    except Exception as exc:
        return _exit_code(exc)
    print(result.summary())
    if result.variables:
        shown = ", ".join(f"{k}={v}" for k, v in result.variables.items())
        print(("Space variables to set: " if result.dry_run else "Space variables set: ") + shown)
    return 0


def _add_hub_options(p: argparse.ArgumentParser):
    g = p.add_argument_group("hub")
    g.add_argument("--token-env", help="NAME of the environment variable holding the token "
                                       "(default: HF_TOKEN or the `hf auth login` token); never pass the token itself")
    g.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    g.add_argument("--commit-message")
    g.add_argument("--dry-run", metavar="DIR", help="write every file into DIR instead of uploading")
    g.add_argument("--overwrite", action="store_true", help="replace an earlier --dry-run/--local-dir folder")
    return g


def add_commands(subparsers) -> None:
    """Add ``push`` and ``space`` to the ``instag`` command line."""
    p = subparsers.add_parser(
        "push", help="publish a tagged dataset with its configs, card and plots to the Hub (one commit)",
        description="Upload a tagged dataset (config `default`), its tag vocabulary, tag mapping and selected "
                    "subsets as configs of one Hub dataset repo, with a generated dataset card and its plots, in "
                    "one commit. INPUT may also be a folder written by --dry-run: it is uploaded as it is.")
    p.add_argument("input", help="tagged dataset (save_to_disk folder, data file, hub id) or a --dry-run folder")
    p.add_argument("repo_id", help="owner/name of the dataset repo")
    p.add_argument("--split", default="train", help="split to read from a hub id (default: train)")
    g = p.add_argument_group("configs")
    g.add_argument("--subset", action="append", metavar="NAME=PATH",
                   help="add a selected subset as config NAME (its selection.json, if next to it, gives the recipe)")
    g.add_argument("--select", action="append", metavar="STRATEGY:N",
                   help="select N rows now (cfd, random, complexity, diversity) as config selected_STRATEGY_N")
    g.add_argument("--seed", type=int, default=0, help="seed for --select (default: 0)")
    g.add_argument("--mapping", help=f"TagMapping JSON for the tag_mapping config (default: {MAPPING_FILE} next "
                                     "to INPUT, if any)")
    g.add_argument("--no-vocabulary", action="store_true", help="leave out the tag_vocabulary config")
    g.add_argument("--tags-column", help=f"tags to measure (default: {schema.NORM_TAGS} if present, "
                                         f"else {schema.TAGS})")
    g.add_argument("--source-column", help="also measure the data per value of this column (e.g. source)")
    g.add_argument("--max-shard-size", default="500MB", help="largest parquet file (default: 500MB)")
    g.add_argument("--local-dir", help="write the files here before uploading (kept; default: a temporary folder)")
    g = p.add_argument_group("card")
    g.add_argument("--tagger-info", help=f"JSON with the tagger settings: an `instag tag` {SUMMARY_FILE} or "
                                         f"Tagger.describe() (default: {SUMMARY_FILE} next to INPUT, if any)")
    g.add_argument("--pretty-name")
    g.add_argument("--license", default="other", help="Hub license id of the data (default: other)")
    g.add_argument("--language", action="append", help="language code (repeat; default: en)")
    g.add_argument("--task-category", action="append", help="Hub task category (repeat; default: text-generation)")
    g.add_argument("--tag", action="append", help="extra Hub tag (repeat)")
    g.add_argument("--source-dataset", action="append", help="hub id of a source dataset (repeat)")
    g.add_argument("--description", help="a paragraph at the top of the card")
    g.add_argument("--top", type=non_negative_int, default=20, help="top tags listed (default: 20)")
    g.add_argument("--no-plots", action="store_true")
    g.add_argument("--card-template", help="a Jinja template to use instead of cards/dataset_card.md.j2")
    g = _add_hub_options(p)
    g.add_argument("--revision", help="branch to commit to")
    g.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to the branch")
    p.set_defaults(func=cmd_push)

    p = subparsers.add_parser(
        "space", help="create or update the Gradio Space (spaces/ plus this package)",
        description="Upload the Gradio app (spaces/app.py, README.md, requirements.txt) and a copy of the "
                    "instag_hf package to a Hub Space in one commit, and set its variables.")
    p.add_argument("repo_id", help="owner/name of the Space")
    p.add_argument("--app-dir", help="the Space folder (default: ./spaces or the checkout's spaces/)")
    p.add_argument("--dataset", help="hub id of a tagged dataset the Space shows on start (INSTAG_DATASET)")
    p.add_argument("--var", action="append", metavar="KEY=VALUE",
                   help="public Space variable, e.g. INSTAG_BACKEND=openai, INSTAG_API_MODEL=... (repeat); "
                        "set API keys as Space secrets in the Space settings")
    p.add_argument("--title", help="Space title (default: the README's)")
    p.add_argument("--hardware", help="Space hardware when creating it, e.g. cpu-basic, t4-small")
    p.add_argument("--no-package", action="store_true",
                   help="do not upload instag_hf itself (requirements.txt must then install it)")
    _add_hub_options(p)
    p.set_defaults(func=cmd_space)
