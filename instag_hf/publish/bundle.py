"""A publication: the folder of files one Hub commit holds.

:func:`write_publication` writes, into a local folder, everything a dataset repo
gets: one parquet file set per config (``data/<config>/<split>-NNNNN-of-NNNNN.parquet``),
the plots (``plots/*.png``) and the card (``README.md``) that lists every config
with its data files and links every plot by a relative path. ``--dry-run`` stops
here; :func:`instag_hf.publish.push_to_hub` uploads the same folder in one commit.

Writing is four steps over a checked :class:`~instag_hf.publish.plan.PublicationPlan`
(:mod:`instag_hf.publish.plan`): :func:`measure`, :func:`write_configs`,
:func:`write_plots` and :func:`build_card`.

A marker file (``.instag-publication.json``, never uploaded) records what was
written, so a folder can be inspected first and uploaded later, and so that
``overwrite=True`` only ever deletes files this module wrote.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .. import schema
from .card import InstagDatasetCard
from .card_data import PLOT_SECTIONS, ConfigInfo, PlotInfo, ScoreInfo, metrics_rows
from .plan import (  # noqa: F401 - card_metadata, quality_measures and parse_size are this module's public API too
    MAPPING_CONFIG,
    VOCABULARY_CONFIG,
    Describable,
    PublicationInputs,
    PublicationOptions,
    PublicationPlan,
    Reportable,
    Subset,
    card_metadata,
    parse_size,
    plan_publication,
    quality_measures,
)

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from ..analysis.metrics import Analysis
    from ..normalize.mapping import TagMapping
    from ..normalize.report import NormalizationReport
    from ..selection.compare import StrategyComparison

logger = logging.getLogger(__name__)

MARKER = ".instag-publication.json"
MARKER_FORMAT = "instag_hf.publication"
DATA_DIR = "data"
PLOTS_DIR = "plots"
CARD_FILE = "README.md"
#: the per-source figures worth a place in the card (the others repeat the config-level ones)
SOURCE_PLOTS = ("diversity_complexity", "recall", "top_tags")


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


# ----------------------------------------------------------------------------- tables


def status_counts(ds) -> dict[str, int]:
    """Rows per ``instag_status`` value, keyed by text (empty without a status column)."""
    return {str(status): int(n) for status, n in schema.status_counts(ds).items()}


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




# ----------------------------------------------------------------------------- the steps


@dataclass
class Measurements:
    """What the card measures: every config's metrics, and the default config's per source value."""

    analysis: Analysis
    by_source: Analysis | None = None

    def metrics(self, name: str):
        """The :class:`~instag_hf.analysis.metrics.DatasetMetrics` of the config ``name``."""
        return next(m for m in self.analysis.datasets if m.name == name)

    @property
    def rows(self) -> list:
        """Every metrics row the card's table shows: the configs, then the source values."""
        return self.analysis.datasets + (self.by_source.datasets if self.by_source is not None else [])


def measure(plan: PublicationPlan) -> Measurements:
    """Metrics of the default config and every subset against the pool (and per source value)."""
    from ..analysis.metrics import analyze

    options, pool = plan.options, plan.pool
    parts = {options.default_config: pool, **{name: subset for name, (subset, _) in plan.subsets.items()}}
    analysis = analyze(parts, tags_column=plan.tags_column, pool=pool, top=options.top)
    by_source = None
    if options.source_column is not None:
        by_source = analyze(pool, source_column=options.source_column, tags_column=plan.tags_column, pool=pool,
                            top=options.top)
        for m in by_source.datasets:
            m.name = f"{options.source_column}={m.name}"
    return Measurements(analysis, by_source)


def write_configs(folder: Path, plan: PublicationPlan, measured: Measurements) -> tuple[list[ConfigInfo], list[str]]:
    """Every config's parquet files (none with ``data=False``): the card's view of the configs, and the files."""
    options = plan.options
    configs: list[ConfigInfo] = []
    files: list[str] = []

    def add(name: str, config_splits: Mapping[str, Dataset], what: str, default: bool = False) -> None:
        info, written = _write_config(folder, name, config_splits, what, default, options.shard_bytes, options.data)
        configs.append(info)
        files.extend(written)

    add(options.default_config, plan.splits, "the tagged dataset: the source columns plus the instag_* columns",
        default=True)
    if options.vocabulary:
        m = measured.metrics(options.default_config)
        vocab = vocabulary_dataset(plan.pool, plan.tags_column, m.tag_counts, m.tagged_rows)
        add(VOCABULARY_CONFIG, {"train": vocab},
            f"one row per tag of `{plan.tags_column}`: rows carrying it, their share of tagged rows"
            + (", an example explanation" if "explanation" in vocab.column_names else ""))
    if plan.mapping is not None:
        add(MAPPING_CONFIG, {"train": plan.mapping.to_dataset()},
            "raw tag -> canonical tag, with its text after each normalization step and the step that changed it")
    for name, (subset, _) in plan.subsets.items():
        what = f"{len(subset):,} selected rows"
        if name in plan.selections:
            what += f" ({plan.selections[name].strategy}, see *Selection*)"
        add(name, {"train": subset}, what)
    return configs, files


def write_plots(folder: Path, plan: PublicationPlan, measured: Measurements) -> list[PlotInfo]:
    """The PNG plots under ``plots/``: the metrics', the normalization stages', per source, the comparison's."""
    from ..reporting.plots import analysis_plots
    from .figures import plot_normalization

    plots_dir = folder / PLOTS_DIR
    written = analysis_plots(measured.analysis, plots_dir)
    if plan.normalization is not None and plan.normalization.stages:
        written["normalization"] = plot_normalization(plan.normalization, plots_dir / "normalization_stages.png")
    if measured.by_source is not None:
        for key, path in analysis_plots(measured.by_source, plots_dir / "by_source").items():
            if key in SOURCE_PLOTS:
                written[f"by_source:{key}"] = path
            else:
                path.unlink()
    if plan.comparison is not None:
        from ..reporting.compare_plots import plot_coverage_curves, plot_strategy_complexity_diversity

        written["strategy_coverage"] = plot_coverage_curves(plan.comparison, plots_dir / "strategy_coverage.png")
        written["strategy_complexity_diversity"] = plot_strategy_complexity_diversity(
            plan.comparison, plots_dir / "strategy_complexity_diversity.png")
    if schema.SCORE in plan.pool.column_names:
        from ..reporting.plots import plot_score_histogram

        written["scores"] = plot_score_histogram(plan.pool[schema.SCORE], plots_dir / "score_distribution.png")
    plots = []
    for key, path in written.items():
        base = key.split(":")[-1]
        section, title = PLOT_SECTIONS.get(base, ("other", base.replace("_", " ").capitalize()))
        if key.startswith("by_source:"):
            title = f"{title}, by {plan.options.source_column}"
        plots.append(PlotInfo(key, path.relative_to(folder).as_posix(), title, section))
    return plots


def build_card(plan: PublicationPlan, measured: Measurements, configs: list[ConfigInfo],
               plots: list[PlotInfo]) -> InstagDatasetCard:
    """The card: the plan's sections and metadata, the measured metrics, the configs and plots written."""
    options, pool = plan.options, plan.pool
    comparison = plan.comparison
    table = None
    if comparison is not None:
        from ..reporting.compare_plots import comparison_markdown

        table = comparison_markdown(comparison).rstrip("\n")
    return InstagDatasetCard(
        repo_id=options.repo_id,
        description=options.description,
        extra_metadata=plan.extra_metadata,
        **plan.card_fields,
        rows=len(pool),
        columns=list(pool.column_names),
        configs=configs if options.data else [],
        tags_column=plan.tags_column,
        tagger=plan.tagger,
        statuses=status_counts(pool),
        metrics=metrics_rows(measured.rows),
        top_tags=list(measured.metrics(options.default_config).top_tags[:options.top]),
        normalization=plan.normalization,
        selections=list(plan.selections.values()),
        quality=plan.quality,
        scores=ScoreInfo.from_dataset(pool, plan.scorer),
        plots=plots,
        comparison=table,
        comparison_n=comparison.n if comparison is not None else 0,
    )


# ----------------------------------------------------------------------------- the whole folder


def write_publication(
    output_dir: str | Path,
    dataset: Dataset | DatasetDict,
    *,
    tagger: Describable | Mapping[str, Any] | None = None,
    subsets: Mapping[str, Subset] | None = None,
    mapping: TagMapping | None = None,
    normalization: NormalizationReport | Mapping[str, Any] | None = None,
    quality: Reportable | Mapping[str, Any] | None = None,
    comparison: StrategyComparison | None = None,
    scorer: Describable | Mapping[str, Any] | None = None,
    options: PublicationOptions | None = None,
    **keywords: Any,
) -> Publication:
    """Write the card, plots and (with ``data=True``) one parquet set per config into ``output_dir``.

    Every input is checked before anything is written (:func:`~instag_hf.publish.plan.plan_publication`);
    then the configs, the plots and the card are written, and a marker records the files.

    Parameters
    ----------
    dataset:
        The tagged ``Dataset`` (or ``DatasetDict``: one split each): the ``default`` config.
    tagger, subsets, mapping, normalization, quality, comparison:
        What the publication holds besides the dataset; see
        :class:`~instag_hf.publish.plan.PublicationInputs`. ``subsets``: ``config name ->
        Dataset`` or ``-> (Dataset, SelectionReport)`` (what ``instag_hf.sample(...,
        return_report=True)`` returns); ``mapping``: a TagMapping (the ``tag_mapping``
        config, its report the normalization section); ``comparison``: what
        :func:`~instag_hf.compare_strategies` returns (a section with its table and plots).
    scorer:
        A Scorer or its ``describe()`` dict: the *Scores* section says how rows were scored
        (the section and its histogram appear only when the data has ``instag_score``).
    options, keywords:
        A :class:`~instag_hf.publish.plan.PublicationOptions`, and/or its fields as keywords
        over it: ``vocabulary``, ``data``, ``plots``, ``repo_id``, ``card_data``,
        ``description``, ``tags_column``, ``source_column``, ``top``, ``max_shard_size``,
        ``template``, ``default_config``, ``overwrite``. Any other keyword is a card
        metadata field (``pretty_name="..."``, ``license="mit"``), merged over
        ``card_data``: ``license`` is a Hub license id (the default ``other`` says "see the
        source data": set the source dataset's license); ``size_categories`` and
        ``configs`` are always computed; ``tags`` are added to the package's own.
    """
    options, metadata = PublicationOptions.split(options, keywords)
    inputs = PublicationInputs(tagger, subsets, mapping, normalization, quality, comparison, scorer)
    plan = plan_publication(dataset, inputs, options, metadata)

    folder = Path(output_dir)
    _prepare_folder(folder, options.overwrite)
    config_names = plan.config_names
    _write_marker(folder, [], False, options.repo_id, config_names)
    measured = measure(plan)
    configs, files = write_configs(folder, plan, measured)
    plots = write_plots(folder, plan, measured) if options.plots else []
    files.extend(p.path for p in plots)
    card = build_card(plan, measured, configs, plots)
    card.save(folder / CARD_FILE, options.template)
    files.append(CARD_FILE)
    _write_marker(folder, files, True, options.repo_id, config_names)
    logger.info("wrote %d files for %s into %s", len(files), options.repo_id or "a dataset card", folder)
    return Publication(folder, files, card, options.repo_id, config_names)


def write_dataset_card(output_dir: str | Path, dataset: Dataset | DatasetDict,
                       tagger: Describable | Mapping[str, Any] | None = None, *,
                       normalization: TagMapping | NormalizationReport | Mapping[str, Any] | None = None,
                       selections: Mapping[str, Subset] | None = None,
                       quality: Reportable | Mapping[str, Any] | None = None, plots: bool = True,
                       overwrite: bool = False, **card_options: Any) -> Publication:
    """The card (``README.md``) and its plots for a tagged dataset, without data files.

    ``tagger``: a Tagger or its ``describe()`` dict; ``normalization``: a
    NormalizationReport, or a TagMapping (its report); ``selections``: ``name ->
    (subset, SelectionReport)`` or ``name -> subset``; ``quality``: tag-quality measures
    (``as_dict()`` or a mapping). Other keywords as for
    :func:`write_publication` (``repo_id``, ``pretty_name``, ``license``, ...).
    """
    from ..normalize.mapping import TagMapping

    mapping = None
    if isinstance(normalization, TagMapping):
        mapping, normalization = normalization, None
    return write_publication(output_dir, dataset, tagger=tagger, subsets=selections, mapping=mapping,
                             normalization=normalization, quality=quality, data=False, plots=plots,
                             overwrite=overwrite, **card_options)
