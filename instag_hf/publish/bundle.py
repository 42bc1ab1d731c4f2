"""A publication: the folder of files one Hub commit holds.

:func:`write_publication` writes, into a local folder, everything a dataset repo
gets: one parquet file set per config (``data/<config>/<split>-NNNNN-of-NNNNN.parquet``),
the plots (``plots/*.png``) and the card (``README.md``) that lists every config
with its data files and links every plot by a relative path. ``--dry-run`` stops
here; :func:`instag_hf.publish.push_to_hub` uploads the same folder in one commit.

A marker file (``.instag-publication.json``, never uploaded) records what was
written, so a folder can be inspected first and uploaded later, and so that
``overwrite=True`` only ever deletes files this module wrote.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import schema
from .card import InstagDatasetCard
from .card_data import (
    DEFAULT_CONFIG,
    DEFAULT_TAGS,
    PLOT_SECTIONS,
    ConfigInfo,
    NormalizationInfo,
    PlotInfo,
    SelectionInfo,
    check_config_name,
    check_repo_id,
    metrics_rows,
)

logger = logging.getLogger(__name__)

MARKER = ".instag-publication.json"
MARKER_FORMAT = "instag_hf.publication"
DATA_DIR = "data"
PLOTS_DIR = "plots"
CARD_FILE = "README.md"
VOCABULARY_CONFIG = "tag_vocabulary"
MAPPING_CONFIG = "tag_mapping"
#: the per-source figures worth a place in the card (the others repeat the config-level ones)
SOURCE_PLOTS = ("diversity_complexity", "recall", "top_tags")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


@dataclass
class Publication:
    """A folder ready to upload: ``files`` are POSIX paths relative to ``folder`` (the card last)."""

    folder: Path
    files: list[str]
    card: InstagDatasetCard | None = None
    repo_id: str | None = None
    configs: list[str] | None = None

    def paths(self) -> list[Path]:
        return [self.folder / f for f in self.files]

    @classmethod
    def load(cls, folder: str | Path) -> Publication:
        """A folder written by :func:`write_publication` (checks that every listed file is there)."""
        folder = Path(folder)
        marker = folder / MARKER
        if not marker.is_file():
            raise ValueError(f"{folder} is not a publication folder (no {MARKER}); write one with "
                             "write_publication() or `instag push --dry-run DIR`")
        record = json.loads(marker.read_text(encoding="utf-8"))
        if record.get("format") != MARKER_FORMAT:
            raise ValueError(f"{marker} is not an instag_hf publication record")
        if not record.get("complete"):
            raise ValueError(f"{folder} holds an unfinished publication (writing it failed); write it again")
        files = list(record["files"])
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise ValueError(f"{folder} lacks files its record lists: {missing[:5]}")
        return cls(folder, files, None, record.get("repo_id"), list(record.get("configs") or []))


def parse_size(value: int | str) -> int:
    """``500MB``, ``1GiB`` or a number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '500MB', got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).upper() not in _UNITS:
            raise ValueError(f"expected a size such as '500MB' or '1GiB', got {value!r}")
        size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size < 1:
        raise ValueError(f"size must be positive, got {value!r}")
    return size


# ----------------------------------------------------------------------------- inputs


def _splits(dataset: Any, what: str) -> dict[str, Any]:
    from datasets import Dataset, DatasetDict

    if isinstance(dataset, Dataset):
        return {"train": dataset}
    if isinstance(dataset, DatasetDict):
        if not dataset:
            raise ValueError(f"{what} is an empty DatasetDict")
        return dict(dataset)
    raise ValueError(f"{what} must be a datasets.Dataset or DatasetDict, not {type(dataset).__name__}")


def _subsets(subsets: Mapping[str, Any] | None, reserved: set[str]) -> dict[str, tuple[Any, Any]]:
    from datasets import Dataset

    out: dict[str, tuple[Any, Any]] = {}
    if subsets is None:
        return out
    if not isinstance(subsets, Mapping):
        raise ValueError("subsets must be a mapping config name -> Dataset or (Dataset, SelectionReport)")
    for name, value in subsets.items():
        check_config_name(name)
        if name in reserved:
            raise ValueError(f"subset name {name!r} is taken by another config ({sorted(reserved)})")
        report = None
        if isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError(f"subset {name!r}: expected (Dataset, SelectionReport), got a {len(value)}-tuple")
            value, report = value
            if report is not None and not (hasattr(report, "as_dict") or isinstance(report, Mapping)):
                raise ValueError(f"subset {name!r}: the report must be a SelectionReport, not {type(report).__name__}")
        if not isinstance(value, Dataset):
            raise ValueError(f"subset {name!r} must be a datasets.Dataset, not {type(value).__name__}")
        out[name] = (value, report)
    return out


def _concat(parts: Sequence[Any]):
    if len(parts) == 1:
        return parts[0]
    from datasets import concatenate_datasets

    return concatenate_datasets(list(parts))


def status_counts(ds) -> dict[str, int]:
    """Rows per ``instag_status`` value (empty without a status column)."""
    import pyarrow.compute as pc

    if schema.STATUS not in ds.column_names or len(ds) == 0:
        return {}
    column = ds.with_format("arrow")[schema.STATUS]
    return {str(item["values"]): int(item["counts"]) for item in pc.value_counts(column).to_pylist()}


def vocabulary_dataset(ds, tags_column: str, tag_counts: Mapping[str, int], tagged_rows: int):
    """One row per tag: ``tag``, ``rows`` carrying it, ``share`` of tagged rows (+ an ``explanation`` for raw tags)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import Dataset, Features, Value

    tags = list(tag_counts)
    columns: dict[str, list] = {
        "tag": tags,
        "rows": [int(tag_counts[t]) for t in tags],
        "share": [tag_counts[t] / tagged_rows if tagged_rows else 0.0 for t in tags],
    }
    features = {"tag": Value("string"), "rows": Value("int64"), "share": Value("float64")}
    column = ds.with_format("arrow")[tags_column]
    flat = pc.list_flatten(column)
    if pa.types.is_struct(flat.type) and flat.type.get_field_index("explanation") >= 0:
        table = pa.table({"tag": pc.struct_field(flat, "tag"), "explanation": pc.struct_field(flat, "explanation")})
        first = table.group_by("tag", use_threads=False).aggregate([("explanation", "first")])
        explain = dict(zip(first["tag"].to_pylist(), first["explanation_first"].to_pylist()))
        columns["explanation"] = [explain.get(t) or "" for t in tags]
        features["explanation"] = Value("string")
    return Dataset.from_dict(columns, features=Features(features))


def quality_measures(quality: Any) -> dict:
    """Plain dict of tag-quality results: a ``TagEvalReport``/``JudgeResult`` (summaries only, no per-tag
    or per-case lists), a mapping of them (``{"judge": result, "f1": report}``), or a plain mapping."""
    import inspect

    if hasattr(quality, "as_dict"):
        params = inspect.signature(quality.as_dict).parameters
        brief = {k: False for k in ("per_tag", "cases") if k in params}
        return quality_measures(quality.as_dict(**brief))
    if isinstance(quality, Mapping):
        return {str(k): quality_measures(v) if (isinstance(v, Mapping) or hasattr(v, "as_dict")) else v
                for k, v in quality.items()}
    raise ValueError(f"quality must be a report with as_dict() or a mapping, not {type(quality).__name__}")


# ----------------------------------------------------------------------------- output folder


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise ValueError(f"{folder} is not empty; pick a new folder or pass overwrite=True (--overwrite)")
        if not (folder / MARKER).is_file():
            raise ValueError(f"{folder} is not empty and was not written by instag_hf; refusing to overwrite it")
        for name in (DATA_DIR, PLOTS_DIR):
            shutil.rmtree(folder / name, ignore_errors=True)
        for name in (CARD_FILE, MARKER):
            (folder / name).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)


def _write_marker(folder: Path, files: list[str], complete: bool, repo_id: str | None,
                  configs: list[str]) -> None:
    record = {"format": MARKER_FORMAT, "version": 1, "complete": complete, "repo_id": repo_id,
              "configs": configs, "files": files}
    (folder / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")


def _write_config(folder: Path, name: str, splits: Mapping[str, Any], description: str, default: bool,
                  shard_bytes: int, data: bool) -> tuple[ConfigInfo, list[str]]:
    files: list[str] = []
    data_files: dict[str, str] = {}
    for split, ds in splits.items():
        base = f"{DATA_DIR}/{name}/{split}"
        data_files[split] = f"{base}-*.parquet"
        if not data:
            continue
        shards = max(1, math.ceil(ds.data.nbytes * (len(ds) / max(len(ds.data), 1)) / shard_bytes)) if len(ds) else 1
        shards = min(shards, max(len(ds), 1))
        for i in range(shards):
            rel = f"{base}-{i:05d}-of-{shards:05d}.parquet"
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            part = ds.shard(shards, i, contiguous=True) if shards > 1 else ds
            part.to_parquet(str(path))
            files.append(rel)
    rows = {split: len(ds) for split, ds in splits.items()}
    return ConfigInfo(name, description, rows, data_files, default=default), files


# ----------------------------------------------------------------------------- the whole folder


def _comparison_table(comparison: Any) -> str | None:
    if comparison is None:
        return None
    from ..reporting.compare_plots import comparison_markdown

    return comparison_markdown(comparison).rstrip("\n")


def card_metadata(card_data: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """One dict of Hub metadata from a ``DatasetCardData`` (or mapping) and keyword fields.

    Fields the card computes (``size_categories``, ``configs``) are dropped; list
    fields given as one string become one-item lists; the result is validated by
    building the card before anything is written.
    """
    from huggingface_hub import CardData

    if card_data is None:
        base: dict[str, Any] = {}
    elif isinstance(card_data, CardData):
        base = card_data.to_dict()
    elif isinstance(card_data, Mapping):
        base = dict(card_data)
    else:
        raise ValueError(f"card_data must be a huggingface_hub.DatasetCardData or a mapping, "
                         f"not {type(card_data).__name__}")
    base.update({k: v for k, v in metadata.items()})
    for computed in ("size_categories", "configs"):
        base.pop(computed, None)
    for name in ("language", "task_categories", "tags", "source_datasets"):
        if isinstance(base.get(name), str):
            base[name] = [base[name]]
        elif base.get(name) is not None:
            base[name] = list(base[name])
    return {k: v for k, v in base.items() if v is not None}


def write_publication(
    output_dir: str | Path,
    dataset: Any,
    *,
    tagger: Any = None,
    subsets: Mapping[str, Any] | None = None,
    mapping: Any = None,
    normalization: Any = None,
    quality: Any = None,
    comparison: Any = None,
    vocabulary: bool = True,
    data: bool = True,
    plots: bool = True,
    repo_id: str | None = None,
    card_data: Any = None,
    description: str = "",
    tags_column: str | None = None,
    source_column: str | None = None,
    top: int = 20,
    max_shard_size: int | str = "500MB",
    template: str | Path | None = None,
    default_config: str = DEFAULT_CONFIG,
    overwrite: bool = False,
    **metadata: Any,
) -> Publication:
    """Write the card, plots and (with ``data=True``) one parquet set per config into ``output_dir``.

    Parameters
    ----------
    dataset:
        The tagged ``Dataset`` (or ``DatasetDict``: one split each): the ``default`` config.
    tagger:
        A :class:`~instag_hf.Tagger` or its ``describe()`` dict: the card's tagging section.
    subsets:
        ``config name -> Dataset`` or ``-> (Dataset, SelectionReport)`` (what
        ``instag_hf.sample(..., return_report=True)`` returns): one config each, and
        with a report, the card's selection recipe.
    mapping:
        A :class:`~instag_hf.normalize.TagMapping`: the ``tag_mapping`` config, and its
        report the normalization section.
    normalization:
        A :class:`~instag_hf.normalize.NormalizationReport` (or its dict) for the
        normalization section without a mapping config.
    quality:
        Tag-quality measures for an optional card section: an object with
        ``as_dict()`` or a mapping (nested mappings are flattened).
    comparison:
        A :class:`~instag_hf.selection.compare.StrategyComparison`
        (:func:`~instag_hf.compare_strategies`): a card section with its table and its
        two plots (coverage against subset size, complexity against diversity).
    vocabulary:
        Add the ``tag_vocabulary`` config (tag, rows, share, an example explanation).
    data, plots:
        Write the parquet files / the PNG plots. ``data=False`` gives a card without
        data files (what ``instag demo`` may want).
    repo_id:
        The ``owner/name`` the card's usage example loads from.
    card_data:
        The Hub metadata of the card: a ``huggingface_hub.DatasetCardData`` or a
        mapping (``pretty_name``, ``license``, ``language``, ``task_categories``,
        ``tags``, ``source_datasets``, or any other field the Hub knows). ``license``
        is a Hub license id; the default ``other`` says "see the source data": set the
        source dataset's license. ``size_categories`` and ``configs`` are always
        computed; ``tags`` are added to the package's own.
    description:
        A paragraph under the card's title.
    metadata:
        Metadata fields as keywords (``pretty_name="..."``, ``license="mit"``):
        merged over ``card_data``.
    tags_column:
        Tags to measure (default: ``instag_norm_tags`` when present, else ``instag_tags``).
    source_column:
        Also measure the default config per value of this column (e.g. which source
        dataset a row came from): rows in the metrics table, and the diversity,
        recall and top-tags plots by value (``plots/by_source/``).
    top:
        Top tags listed in the card.
    max_shard_size:
        Parquet files are split to stay under about this size (``"500MB"``).
    template:
        A Jinja file replacing the packaged card template.
    overwrite:
        Replace an earlier publication in ``output_dir`` (only files this function wrote).
    """
    from ..analysis.metrics import analyze
    from ..analysis.tagsets import resolve_tags_column

    # --- validate everything before writing anything ---------------------------------
    meta = card_metadata(card_data, metadata)
    own = {k: meta.pop(k) for k in ("license", "language", "task_categories", "source_datasets") if k in meta}
    own["pretty_name"] = meta.pop("pretty_name", None) or (repo_id.split("/")[-1] if repo_id else "InsTag-tagged dataset")
    own["tags"] = [*dict.fromkeys([*DEFAULT_TAGS, *meta.pop("tags", [])])]
    InstagDatasetCard(repo_id=repo_id, extra_metadata=meta, **own).card_data  # the metadata is valid
    default_config = check_config_name(default_config)
    splits = _splits(dataset, "dataset")
    if repo_id is not None:
        check_repo_id(repo_id)
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise ValueError(f"top must be an integer >= 0, got {top!r}")
    shard_bytes = parse_size(max_shard_size)
    if mapping is not None and not hasattr(mapping, "to_dataset"):
        raise ValueError(f"mapping must be a TagMapping, not {type(mapping).__name__}")
    reserved = {default_config} | ({VOCABULARY_CONFIG} if vocabulary else set()) | (
        {MAPPING_CONFIG} if mapping is not None else set())
    chosen = _subsets(subsets, reserved)
    pool = _concat(list(splits.values()))
    column = resolve_tags_column(pool.column_names, tags_column)
    if source_column is not None and source_column not in pool.column_names:
        raise ValueError(f"source column {source_column!r} not found; the dataset has columns {pool.column_names}")
    for name, (subset, _) in chosen.items():
        if column not in subset.column_names:
            raise ValueError(f"subset {name!r} has no {column!r} column (the default config's tags); "
                             f"its columns: {subset.column_names}")
    tagger_info = tagger.describe() if hasattr(tagger, "describe") else (dict(tagger) if tagger else None)
    if normalization is None and mapping is not None:
        normalization = getattr(mapping, "report", None)
    norm_info = None
    if normalization is not None:
        params = getattr(mapping, "params", None) if mapping is not None else None
        norm_info = NormalizationInfo.from_report(normalization, params or None)
    quality_info = quality_measures(quality) if quality is not None else None
    if comparison is not None and not hasattr(comparison, "results"):
        raise ValueError(f"comparison must be what compare_strategies returns, not {type(comparison).__name__}")
    if template is not None and not Path(template).is_file():
        raise FileNotFoundError(f"card template {str(template)!r} does not exist")

    folder = Path(output_dir)
    _prepare_folder(folder, overwrite)
    config_names = [default_config, *([VOCABULARY_CONFIG] if vocabulary else []),
                    *([MAPPING_CONFIG] if mapping is not None else []), *chosen]
    _write_marker(folder, [], False, repo_id, config_names)

    # --- metrics and the data files ----------------------------------------------------
    parts = {default_config: pool, **{name: subset for name, (subset, _) in chosen.items()}}
    analysis = analyze(parts, tags_column=column, pool=pool, top=top)
    by_source = None
    if source_column is not None:
        by_source = analyze(pool, source_column=source_column, tags_column=column, pool=pool, top=top)
        for m in by_source.datasets:
            m.name = f"{source_column}={m.name}"
    by_name = {m.name: m for m in analysis.datasets}
    files: list[str] = []
    configs: list[ConfigInfo] = []

    def add(name: str, config_splits: Mapping[str, Any], what: str, default: bool = False) -> None:
        info, written = _write_config(folder, name, config_splits, what, default, shard_bytes, data)
        configs.append(info)
        files.extend(written)

    add(default_config, splits, "the tagged dataset: the source columns plus the instag_* columns", default=True)
    if vocabulary:
        m = by_name[default_config]
        vocab = vocabulary_dataset(pool, column, m.tag_counts, m.tagged_rows)
        add(VOCABULARY_CONFIG, {"train": vocab},
            f"one row per tag of `{column}`: rows carrying it, their share of tagged rows"
            + (", an example explanation" if "explanation" in vocab.column_names else ""))
    if mapping is not None:
        add(MAPPING_CONFIG, {"train": mapping.to_dataset()},
            "raw tag -> canonical tag, with its text after each normalization step and the step that changed it")
    selections: list[SelectionInfo] = []
    for name, (subset, report) in chosen.items():
        what = f"{len(subset):,} selected rows"
        if report is not None:
            info = SelectionInfo.from_report(name, report)
            selections.append(info)
            what += f" ({info.strategy}, see *Selection*)"
        add(name, {"train": subset}, what)

    # --- plots ---------------------------------------------------------------------------
    plot_infos: list[PlotInfo] = []
    if plots:
        from ..reporting.plots import analysis_plots
        from .figures import plot_normalization

        written = analysis_plots(analysis, folder / PLOTS_DIR)
        if norm_info is not None and norm_info.stages:
            written["normalization"] = plot_normalization(norm_info, folder / PLOTS_DIR / "normalization_stages.png")
        if by_source is not None:
            for key, path in analysis_plots(by_source, folder / PLOTS_DIR / "by_source").items():
                if key in SOURCE_PLOTS:
                    written[f"by_source:{key}"] = path
                else:
                    path.unlink()
        if comparison is not None:
            from ..reporting.compare_plots import plot_coverage_curves, plot_strategy_complexity_diversity

            written["strategy_coverage"] = plot_coverage_curves(comparison, folder / PLOTS_DIR / "strategy_coverage.png")
            written["strategy_complexity_diversity"] = plot_strategy_complexity_diversity(
                comparison, folder / PLOTS_DIR / "strategy_complexity_diversity.png")
        for key, path in written.items():
            rel = path.relative_to(folder).as_posix()
            base = key.split(":")[-1]
            section, title = PLOT_SECTIONS.get(base, ("other", base.replace("_", " ").capitalize()))
            if key.startswith("by_source:"):
                title = f"{title}, by {source_column}"
            plot_infos.append(PlotInfo(key, rel, title, section))
            files.append(rel)

    # --- the card ------------------------------------------------------------------------
    card = InstagDatasetCard(
        repo_id=repo_id,
        description=description,
        extra_metadata=meta,
        **own,
        rows=len(pool),
        columns=list(pool.column_names),
        configs=configs if data else [],
        tags_column=column,
        tagger=tagger_info,
        statuses=status_counts(pool),
        metrics=metrics_rows(analysis.datasets + (by_source.datasets if by_source is not None else [])),
        top_tags=list(by_name[default_config].top_tags[:top]),
        normalization=norm_info,
        selections=selections,
        quality=quality_info,
        plots=plot_infos,
        comparison=_comparison_table(comparison),
        comparison_n=comparison.n if comparison is not None else 0,
    )
    card.save(folder / CARD_FILE, template)
    files.append(CARD_FILE)
    _write_marker(folder, files, True, repo_id, config_names)
    logger.info("wrote %d files for %s into %s", len(files), repo_id or "a dataset card", folder)
    return Publication(folder, files, card, repo_id, config_names)


def write_dataset_card(output_dir: str | Path, dataset: Any, tagger: Any = None, *, normalization: Any = None,
                       selections: Mapping[str, Any] | None = None, quality: Any = None, plots: bool = True,
                       overwrite: bool = False, **card_options: Any) -> Publication:
    """The card (``README.md``) and its plots for a tagged dataset, without data files.

    ``tagger``: a Tagger or its ``describe()`` dict; ``normalization``: a
    NormalizationReport, or a TagMapping (its report); ``selections``: ``name ->
    (subset, SelectionReport)`` or ``name -> subset``; ``quality``: tag-quality measures
    (``as_dict()`` or a mapping). Other keywords as for
    :func:`write_publication` (``repo_id``, ``pretty_name``, ``license``, ...).
    """
    mapping = None
    if normalization is not None and hasattr(normalization, "to_dataset"):
        mapping, normalization = normalization, None
    return write_publication(output_dir, dataset, tagger=tagger, subsets=selections, mapping=mapping,
                             normalization=normalization, quality=quality, data=False, plots=plots,
                             overwrite=overwrite,
                             **card_options)
