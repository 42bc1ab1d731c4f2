"""The dataset card of a published InsTag dataset: a dataclass model rendered by a Jinja template.

:class:`InstagDatasetCard` holds everything the card says (the Hub metadata, the
tagger settings, status counts, metrics, top tags, and the optional normalization
and selection sections); :meth:`InstagDatasetCard.render` turns it into the
``README.md`` of a Hub dataset repo through ``cards/dataset_card.md.j2``. The YAML
metadata is written with PyYAML, never by the template, so it is always valid.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import schema

TEMPLATE_NAME = "dataset_card.md.j2"
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
}

STRATEGY_TITLES = {
    "cfd": "Complexity-first Diverse sampling (Algorithm 1 of the paper)",
    "random": "uniform random sampling (a baseline)",
    "complexity": "most tags first (complexity only)",
    "diversity": "greedy maximum tag coverage (diversity only)",
}

COLUMN_DOCS = {
    schema.TAGS: "`List({tag, explanation})`: de-duplicated union of the tags of every user turn",
    schema.STATUS: "`ok`, `truncated`, `parse_error`, `empty_query` or `backend_error`",
    schema.ERROR: "why a row is not `ok` (empty otherwise)",
    schema.TURN_TAGS: "tags of each user turn, in order",
    schema.TURN_STATUS: "status of each user turn",
    schema.NORM_TAGS: "canonical tags after normalization (see *Tag normalization*)",
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
    def strategy_title(self) -> str:
        return STRATEGY_TITLES.get(self.strategy, self.strategy)

    @property
    def call(self) -> str:
        """The Python call that selects the same rows from the default config."""
        known = ("seed", "ties", "untagged", "quota_column", "quotas", "max_per_tag")
        args = [f"{k}={v!r}" for k, v in self.params.items() if k in known and v is not None]
        return f"instag_hf.sample(ds, {self.requested}, {self.strategy!r}" + "".join(f", {a}" for a in args) + ")"


@dataclass
class PlotInfo:
    """A PNG in the repo (``path`` is relative to the repo root, POSIX style)."""

    key: str
    path: str
    title: str
    section: str


# ----------------------------------------------------------------------------- the card


@dataclass
class InstagDatasetCard:
    """Everything the dataset card of a tagged dataset says; :meth:`render` writes it as Markdown.

    Only ``pretty_name`` is required. ``normalization``, ``selections`` and
    ``quality`` (any mapping of measures, e.g. a quality report's ``as_dict()``) are
    optional sections; ``configs`` empty means a card without data files (a
    report card). ``tagger`` is :meth:`Tagger.describe` (it holds no secret).
    """

    pretty_name: str
    repo_id: str | None = None
    license: str = "other"
    language: list[str] = field(default_factory=lambda: ["en"])
    task_categories: list[str] = field(default_factory=lambda: ["text-generation"])
    tags: list[str] = field(default_factory=lambda: list(DEFAULT_TAGS))
    source_datasets: list[str] = field(default_factory=list)
    description: str = ""
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    configs: list[ConfigInfo] = field(default_factory=list)
    tags_column: str = schema.TAGS
    tagger: dict[str, Any] | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    metrics: list[MetricsRow] = field(default_factory=list)
    top_tags: list[tuple[str, int]] = field(default_factory=list)
    normalization: NormalizationInfo | None = None
    selections: list[SelectionInfo] = field(default_factory=list)
    quality: dict[str, Any] | None = None
    plots: list[PlotInfo] = field(default_factory=list)
    version: str = field(default_factory=package_version)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` on metadata the Hub would reject or misread."""
        if not isinstance(self.pretty_name, str) or not self.pretty_name.strip():
            raise ValueError("pretty_name must be a non-empty string")
        if self.repo_id is not None:
            check_repo_id(self.repo_id)
        if not isinstance(self.license, str) or not LICENSE.match(self.license):
            raise ValueError(f"license must be a Hub license id such as 'apache-2.0', 'cc-by-4.0' or 'other', "
                             f"got {self.license!r}")
        for name in ("language", "task_categories", "tags", "source_datasets"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ValueError(f"{name} must be a list of non-empty strings, got {value!r}")
        names = [c.name for c in self.configs]
        if len(set(names)) != len(names):
            raise ValueError(f"config names must be unique, got {names}")
        if sum(c.default for c in self.configs) > 1:
            raise ValueError("at most one config can be the default")
        if self.rows < 0:
            raise ValueError(f"rows must be >= 0, got {self.rows}")

    # --- derived ---------------------------------------------------------------------
    @property
    def size_category(self) -> str:
        return size_category(self.rows)

    @property
    def status_total(self) -> int:
        return sum(self.statuses.values())

    @property
    def status_rows(self) -> list[tuple[str, int, float]]:
        """``(status, rows, share)``: the contract's statuses first (all of them), then any other."""
        total = self.status_total
        order = list(schema.STATUSES) + sorted(s for s in self.statuses if s not in schema.STATUSES)
        return [(s, self.statuses.get(s, 0), self.statuses.get(s, 0) / total if total else 0.0) for s in order]

    @property
    def parse_failure_rate(self) -> float | None:
        """Share of rows whose answer could not be parsed (None without status counts)."""
        total = self.status_total
        return self.statuses.get(schema.PARSE_ERROR, 0) / total if total else None

    @property
    def usable_rows(self) -> int:
        return sum(v for k, v in self.statuses.items() if k in schema.TAGGED_STATUSES)

    @property
    def tagger_settings(self) -> list[tuple[str, str]]:
        """The tagger as ``(setting, value)`` rows: backend, model, revision, template, generation settings."""
        if not self.tagger:
            return []
        data = dict(self.tagger)
        rows: list[tuple[str, str]] = []
        backend = data.pop("backend", None)
        if isinstance(backend, Mapping):
            backend = dict(backend)
            for key in ("backend", "model", "revision"):
                rows.append((key, _show(backend.pop(key, None))))
            rows += [(f"backend.{k}", v) for k, v in _flatten(backend)]
        elif backend is not None:
            rows.append(("backend", _show(backend)))
        if "template" in data:
            rows.append(("prompt template", _show(data.pop("template"))))
        params = data.pop("params", None)
        if isinstance(params, Mapping):
            rows += [(f"generation: {k}", v) for k, v in _flatten(params)]
        rows += _flatten(data)
        return rows

    @property
    def uses_small_model(self) -> bool:
        """True when the tags come from the embedded 135M model (the card says how little to trust them)."""
        backend = (self.tagger or {}).get("backend")
        model = backend.get("model", "") if isinstance(backend, Mapping) else ""
        return "SmolLM2-135M" in str(model)

    @property
    def top_tag_rows(self) -> list[tuple[int, str, int, float | None]]:
        """``(rank, tag, rows, share of the default config's tagged rows)``."""
        tagged = self.metrics[0].tagged_rows if self.metrics else 0
        return [(i + 1, t, n, n / tagged if tagged else None) for i, (t, n) in enumerate(self.top_tags)]

    @property
    def quality_rows(self) -> list[tuple[str, str]]:
        """Scalar measures of ``quality`` (lists such as per-case records are left to the files they came from)."""
        return _flatten(self.quality, skip_lists=True) if self.quality else []

    def plots_in(self, section: str) -> list[PlotInfo]:
        return [p for p in self.plots if p.section == section]

    @property
    def other_plots(self) -> list[PlotInfo]:
        known = {"diversity", "tags", "normalization", "quality"}
        return [p for p in self.plots if p.section not in known]

    @property
    def default_config(self) -> ConfigInfo | None:
        return next((c for c in self.configs if c.default), self.configs[0] if self.configs else None)

    @property
    def column_docs(self) -> list[tuple[str, str]]:
        return [(c, COLUMN_DOCS[c]) for c in COLUMN_DOCS if c in self.columns]

    @property
    def source_columns(self) -> list[str]:
        return [c for c in self.columns if c not in COLUMN_DOCS]

    @property
    def citations(self) -> list[str]:
        return [INSTAG_BIBTEX, project_bibtex(self.version)]

    # --- output ----------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The YAML header as a dict (valid for ``huggingface_hub.DatasetCardData``)."""
        meta: dict[str, Any] = {
            "pretty_name": self.pretty_name,
            "license": self.license,
            "language": list(self.language),
            "task_categories": list(self.task_categories),
            "size_categories": [self.size_category],
            "tags": list(dict.fromkeys(self.tags)),
        }
        if self.source_datasets:
            meta["source_datasets"] = list(self.source_datasets)
        if self.configs:
            meta["configs"] = [c.metadata() for c in self.configs]
        return meta

    def metadata_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.metadata(), sort_keys=False, allow_unicode=True, width=1000)

    def render(self, template: str | Path | None = None) -> str:
        """The card as Markdown with its YAML header. ``template``: a Jinja file replacing the packaged one."""
        text = render_template(template, card=self)
        return text if text.endswith("\n") else text + "\n"

    def save(self, path: str | Path, template: str | Path | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(template), encoding="utf-8")
        return path


# ----------------------------------------------------------------------------- rendering


def template_path(name: str = TEMPLATE_NAME) -> Path:
    """The packaged template (``instag_hf/cards/``; the repo's top-level ``cards/`` links to it)."""
    path = Path(str(resources.files("instag_hf") / "cards" / name))
    if not path.is_file():
        raise FileNotFoundError(f"card template {name!r} is missing from the instag_hf package ({path})")
    return path


def render_template(template: str | Path | None, **context: Any) -> str:
    import jinja2

    path = Path(template) if template is not None else template_path()
    if not path.is_file():
        raise FileNotFoundError(f"card template {str(path)!r} does not exist")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(path.parent)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(cell=md_cell, pct=pct, num=num, code=inline_code)
    return env.get_template(path.name).render(**context)


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, line breaks or raw HTML."""
    text = num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def inline_code(value: Any) -> str:
    """``value`` as inline code, safe in a table cell."""
    text = str(value).replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if text else "``"


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.{digits}f}%"


def num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.2f}"
    return str(value)


def _number_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _flatten(data: Mapping[str, Any], prefix: str = "", skip_lists: bool = False) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows += _flatten(value, f"{name}.", skip_lists)
        elif skip_lists and isinstance(value, (list, tuple)):
            continue
        else:
            rows.append((name, _show(value)))
    return rows


def metrics_rows(metrics: Sequence[Any]) -> list[MetricsRow]:
    """:class:`MetricsRow` from :class:`~instag_hf.analysis.metrics.DatasetMetrics` objects."""
    return [MetricsRow(m.name, m.rows, m.tagged_rows, m.diversity, m.complexity,
                       _number_or_none(m.coverage)) for m in metrics]
