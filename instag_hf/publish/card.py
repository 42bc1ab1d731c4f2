"""The dataset card of a published InsTag dataset: the view that renders the card data.

:class:`InstagDatasetCard` holds everything the card says: the Hub metadata (as a
``huggingface_hub.DatasetCardData``, :attr:`InstagDatasetCard.card_data`), the tagger
settings, status counts, metrics, top tags, and the optional normalization, selection
and quality sections. :meth:`InstagDatasetCard.to_hub_card` renders it with
``huggingface_hub.DatasetCard.from_template`` through ``cards/dataset_card.md.j2``, so
the YAML header is huggingface_hub's own and always valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .. import schema
from .card_data import (
    COLUMN_DOCS,
    DEFAULT_TAGS,
    INSTAG_BIBTEX,
    LICENSE,
    ConfigInfo,
    MetricsRow,
    NormalizationInfo,
    PlotInfo,
    ScoreInfo,
    SelectionInfo,
    check_repo_id,
    package_version,
    project_bibtex,
    size_category,
)
from .filters import TEMPLATE_FUNCTIONS, _flatten, _show

TEMPLATE_NAME = "dataset_card.md.j2"

#: metadata fields the card sets itself (from its own attributes), never taken from ``extra_metadata``
OWN_METADATA = ("pretty_name", "license", "language", "task_categories", "size_categories", "tags",
                "source_datasets", "configs")


# ----------------------------------------------------------------------------- the card


@dataclass
class InstagDatasetCard:
    """Everything the dataset card of a tagged dataset says; :meth:`render` writes it as Markdown.

    Only ``pretty_name`` is required. ``normalization``, ``selections`` and
    ``quality`` (any mapping of measures, e.g. a quality report's ``as_dict()``) are
    optional sections; ``configs`` empty means a card without data files (a
    report card). ``tagger`` is :meth:`Tagger.describe` (it holds no secret). ``scores``
    (:class:`~instag_hf.publish.card_data.ScoreInfo`) is the *Scores* section, left out when
    the data has no score columns.
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
    #: the scores section (None: the data has no score columns, the card says nothing of scores)
    scores: ScoreInfo | None = None
    plots: list[PlotInfo] = field(default_factory=list)
    version: str = field(default_factory=package_version)
    extra_metadata: dict[str, Any] = field(default_factory=dict)
    #: the strategies-compared table (Markdown) and the subset size it compares at
    comparison: str | None = None
    comparison_n: int = 0

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
    def uses_retrieval(self) -> bool:
        """True when the tags were copied from the nearest queries of a tagged bank (no language model)."""
        backend = (self.tagger or {}).get("backend")
        return isinstance(backend, Mapping) and backend.get("backend") == "retrieval"

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
        known = {"diversity", "tags", "normalization", "quality", "selection", "scores"}
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
    @property
    def card_data(self):
        """The YAML header as a ``huggingface_hub.DatasetCardData``: the card's own fields, then ``extra_metadata``."""
        from huggingface_hub import DatasetCardData

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
        meta.update((k, v) for k, v in self.extra_metadata.items() if k not in OWN_METADATA)
        return DatasetCardData(**meta)

    def metadata(self) -> dict[str, Any]:
        """The YAML header as a dict."""
        return self.card_data.to_dict()

    def metadata_yaml(self) -> str:
        """The YAML header's text (ends with a newline)."""
        return self.card_data.to_yaml() + "\n"

    def to_hub_card(self, template: str | Path | None = None):
        """A ``huggingface_hub.DatasetCard`` rendered by ``DatasetCard.from_template``.

        ``template``: a Jinja file replacing the packaged one. It is rendered by
        huggingface_hub (Jinja's default environment), with ``card`` (this object),
        ``card_data`` (the YAML header) and the functions ``cell``, ``code``, ``num``
        and ``pct`` (see :mod:`instag_hf.publish.filters`).
        """
        from huggingface_hub import DatasetCard

        path = Path(template) if template is not None else template_path()
        if not path.is_file():
            raise FileNotFoundError(f"card template {str(path)!r} does not exist")
        return DatasetCard.from_template(self.card_data, template_path=str(path), card=self, **TEMPLATE_FUNCTIONS)

    def render(self, template: str | Path | None = None) -> str:
        """The card as Markdown with its YAML header. ``template``: a Jinja file replacing the packaged one."""
        text = str(self.to_hub_card(template))
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
