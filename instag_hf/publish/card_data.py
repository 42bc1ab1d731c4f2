"""What a card says, as data: the Hub metadata (a ``huggingface_hub.DatasetCardData``) and
one small dataclass per section (configs, metrics, normalization, selections, plots).

Nothing here renders: :mod:`instag_hf.publish.card` turns these into Markdown.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .. import schema
from .filters import _flatten, _number_or_none

DEFAULT_TAGS = ("instag", "intention-tags", "sft", "data-selection")
DEFAULT_CONFIG = "default"

#: config names become folder names under ``data/`` and keys of the card's YAML
CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: split names the ``datasets`` YAML accepts (no dashes)
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")

#: the Hub's ``size_categories`` buckets: (exclusive upper bound, label)
SIZE_CATEGORIES = (
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"), (10**12, "100B<n<1T"),
)

#: where each plot goes in the card (keys of :data:`instag_hf.reporting.plots.PLOT_FILES` plus ours)
PLOT_SECTIONS = {
    "diversity_complexity": ("diversity", "Diversity against complexity"),
    "tag_counts": ("diversity", "Distribution of tags per sample"),
    "recall": ("diversity", "Tag recall (the share of row A's tags that column B has)"),
    "top_tags": ("tags", "Most frequent tags"),
    "long_tail": ("tags", "Tag rank against frequency"),
    "cooccurrence": ("tags", "Co-occurrence of the most frequent tags"),
    "normalization": ("normalization", "Tags left after each normalization step"),
    "strategy_coverage": ("selection", "Coverage of the pool's tags against subset size, per strategy"),
    "strategy_complexity_diversity": ("selection", "Complexity against diversity of each strategy's subset"),
    "scores": ("scores", "Distribution of `instag_score` over the scored rows"),
}

STRATEGY_TITLES = {
    "cfd": "Complexity-first Diverse sampling (Algorithm 1 of the paper)",
    "random": "uniform random sampling (a baseline)",
    "complexity": "most tags first (complexity only)",
    "diversity": "greedy maximum tag coverage (diversity only)",
    "mig": "MIG: information gain over the tag graph (Chen et al., 2025)",
}

COLUMN_DOCS = {
    schema.TAGS: "`List({tag, explanation})`: de-duplicated union of the tags of every user turn",
    schema.STATUS: "`ok`, `truncated`, `answer_truncated`, `parse_error`, `empty_query` or `backend_error`",
    schema.ERROR: "why a row is not `ok` (empty otherwise)",
    schema.TURN_TAGS: "tags of each user turn, in order",
    schema.TURN_STATUS: "status of each user turn",
    schema.NORM_TAGS: "canonical tags after normalization (see *Tag normalization*)",
    schema.QUALITY: "Deita quality score of the answers, 1 to 6, averaged over turns (null when not scored)",
    schema.COMPLEXITY: "Deita complexity score of the queries, 1 to 6, averaged over turns (null when not scored)",
    schema.SCORE: "quality times complexity per turn, averaged over turns: MIG's row weight (see *Scores*)",
    schema.SCORE_STATUS: "`ok`, `truncated`, `no_answer`, `empty_query`, `no_logprobs` or `backend_error`",
    schema.SCORE_ERROR: "why a row has no score (empty otherwise)",
}

INSTAG_BIBTEX = """@inproceedings{lu2024instag,
  title     = {{\\#InsTag}: Instruction Tagging for Analyzing Supervised Fine-tuning of Large Language Models},
  author    = {Lu, Keming and Yuan, Hongyi and Yuan, Zheng and Lin, Runji and Lin, Junyang and
               Tan, Chuanqi and Zhou, Chang and Zhou, Jingren},
  booktitle = {The Twelfth International Conference on Learning Representations (ICLR)},
  year      = {2024},
  url       = {https://arxiv.org/abs/2308.07074}
}"""


def project_bibtex(version: str, year: int | None = None) -> str:
    """BibTeX for this package (the tool that made the tags)."""
    year = year or datetime.date.today().year
    return (f"@software{{instag_hf,\n"
            f"  title   = {{instag\\_hf: open-set intention tags (InsTag) for Hugging Face datasets}},\n"
            f"  version = {{{version}}},\n"
            f"  year    = {{{year}}},\n"
            f"  note    = {{Python package}}\n"
            f"}}")


def package_version() -> str:
    """The installed instag_hf version (read at call time: no import cycle with ``instag_hf``)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("instag_hf")
    except importlib.metadata.PackageNotFoundError:  # a source checkout that is not installed
        from ..version import __version__

        return __version__


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` label for a number of rows."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    for bound, label in SIZE_CATEGORIES:
        if rows < bound:
            return label
    return "n>1T"


def check_config_name(name: str) -> str:
    if not isinstance(name, str) or not CONFIG_NAME.match(name):
        raise ValueError(f"config name {name!r} is not valid: use letters, digits, '_' and '-' (at most 64, "
                         "starting with a letter or digit), e.g. 'selected_cfd_6000'")
    return name


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` as huggingface_hub validates it, with the owner required (``owner/name``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}: {exc}") from None
    if "/" not in repo_id:
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r} (no owner)")
    return repo_id


# ----------------------------------------------------------------------------- parts


@dataclass
class ConfigInfo:
    """One config of the Hub repo: its splits, rows per split and the data files (globs in the repo)."""

    name: str
    description: str
    rows: dict[str, int]
    data_files: dict[str, str]
    default: bool = False

    def __post_init__(self) -> None:
        check_config_name(self.name)
        for split in self.rows:
            if not SPLIT_NAME.match(split):
                raise ValueError(f"split name {split!r} of config {self.name!r} is not valid (letters, digits, '_')")
        if set(self.data_files) != set(self.rows):
            raise ValueError(f"config {self.name!r}: data_files splits {sorted(self.data_files)} differ from "
                             f"its splits {sorted(self.rows)}")

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def metadata(self) -> dict:
        entry: dict[str, Any] = {"config_name": self.name,
                                 "data_files": [{"split": s, "path": p} for s, p in self.data_files.items()]}
        if self.default:
            entry["default"] = True
        return entry


@dataclass
class MetricsRow:
    """Diversity and complexity of one config (``coverage``: share of the default config's tags)."""

    name: str
    rows: int
    tagged_rows: int
    diversity: int
    complexity: float
    coverage: float | None = None


@dataclass
class StageInfo:
    name: str
    title: str
    enabled: bool
    tags_before: int
    tags_after: int


@dataclass
class NormalizationInfo:
    """The normalization section: settings and tags before/after each step."""

    samples: int
    skipped_rows: int
    raw_tags: int
    final_tags: int
    stages: list[StageInfo]
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_report(cls, report: Any, params: Mapping[str, Any] | None = None) -> NormalizationInfo:
        """From a :class:`~instag_hf.normalize.NormalizationReport` (or its ``as_dict()``)."""
        data = report.as_dict() if hasattr(report, "as_dict") else dict(report)
        stages = [StageInfo(s["name"], s.get("title", s["name"]), bool(s.get("enabled", True)),
                            int(s["tags_before"]), int(s["tags_after"])) for s in data.get("stages", [])]
        return cls(samples=int(data.get("samples", 0)), skipped_rows=int(data.get("skipped_rows", 0)),
                   raw_tags=int(data.get("raw_tags", 0)), final_tags=int(data.get("final_tags", 0)),
                   stages=stages, params=dict(params if params is not None else data.get("params") or {}))

    @property
    def settings(self) -> list[tuple[str, str]]:
        return _flatten(self.params)


@dataclass
class SelectionInfo:
    """The recipe and outcome of one selected subset (a config of the repo)."""

    config: str
    strategy: str
    requested: int
    selected: int
    pool_rows: int
    pool_diversity: int
    pool_complexity: float
    subset_diversity: int
    subset_complexity: float
    coverage: float | None
    js_divergence: float | None = None
    untagged_selected: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_report(cls, config: str, report: Any) -> SelectionInfo:
        """From a :class:`~instag_hf.selection.report.SelectionReport` (or its ``as_dict()``)."""
        d = report.as_dict() if hasattr(report, "as_dict") else dict(report)
        return cls(config=config, strategy=str(d.get("strategy") or "unknown"), requested=int(d["requested"]),
                   selected=int(d["selected"]), pool_rows=int(d["pool_rows"]),
                   pool_diversity=int(d["pool_diversity"]), pool_complexity=float(d["pool_complexity"]),
                   subset_diversity=int(d["subset_diversity"]), subset_complexity=float(d["subset_complexity"]),
                   coverage=_number_or_none(d.get("coverage")), js_divergence=_number_or_none(d.get("js_divergence")),
                   untagged_selected=int(d.get("untagged_selected", 0)), params=dict(d.get("params") or {}))

    @property
    def recipe(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in _flatten(self.params) if v != "-"]

    @property
    def score_column(self) -> str | None:
        """The column MIG weighed rows by (None: every row weighed 1, or not MIG)."""
        mig = self.params.get("mig")
        return mig.get("score_column") if isinstance(mig, Mapping) else None

    @property
    def strategy_title(self) -> str:
        return STRATEGY_TITLES.get(self.strategy, self.strategy)

    @property
    def call(self) -> str:
        """The Python call that selects the same rows from the default config."""
        known = ("seed", "ties", "untagged", "quota_column", "quotas", "max_per_tag")
        args = [f"{k}={v!r}" for k, v in self.params.items() if k in known and v is not None]
        if self.score_column:
            args.append(f"score_column={self.score_column!r}")
        mig = self.params.get("mig")
        if isinstance(mig, Mapping) and mig.get("norm") is False:
            args.append("norm=False")
        return f"instag_hf.sample(ds, {self.requested}, {self.strategy!r}" + "".join(f", {a}" for a in args) + ")"


@dataclass
class PlotInfo:
    """A PNG in the repo (``path`` is relative to the repo root, POSIX style)."""

    key: str
    path: str
    title: str
    section: str


@dataclass
class ScoreInfo:
    """The scores section: how rows were scored (``scorer``: ``Scorer.describe()``) and their distribution."""

    rows: int
    scored: int
    statuses: dict[str, int]
    mean: float | None
    quantiles: dict[str, float]
    scorer: dict[str, Any] | None = None

    @classmethod
    def from_dataset(cls, data: Any, scorer: Mapping[str, Any] | None = None) -> ScoreInfo | None:
        """From a dataset's score columns; None when it has no ``instag_score`` column."""
        import numpy as np

        if schema.SCORE not in data.column_names:
            return None
        values = np.array([v for v in data[schema.SCORE] if v is not None], dtype=float)
        statuses: dict[str, int] = {}
        if schema.SCORE_STATUS in data.column_names:
            for status in data[schema.SCORE_STATUS]:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
        points = {"min": 0.0, "p25": 0.25, "median": 0.5, "p75": 0.75, "max": 1.0}
        quantiles = {k: float(np.quantile(values, q)) for k, q in points.items()} if values.size else {}
        return cls(len(data), int(values.size), statuses, float(values.mean()) if values.size else None,
                   quantiles, dict(scorer) if scorer else None)

    @property
    def settings(self) -> list[tuple[str, str]]:
        """The scorer's settings, flattened (``complexity.template``, ``quality.backend.model``, ...)."""
        return _flatten(self.scorer) if self.scorer else []

    @property
    def stand_in(self) -> bool:
        return bool((self.scorer or {}).get("stand_in"))


def metrics_rows(metrics: Sequence[Any]) -> list[MetricsRow]:
    """:class:`MetricsRow` from :class:`~instag_hf.analysis.metrics.DatasetMetrics` objects."""
    return [MetricsRow(m.name, m.rows, m.tagged_rows, m.diversity, m.complexity,
                       _number_or_none(m.coverage)) for m in metrics]
