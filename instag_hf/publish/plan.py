"""The plan of a publication: every input checked and every choice made before a file is written.

:func:`plan_publication` turns what :func:`~instag_hf.publish.write_publication` was
given (the dataset, its :class:`PublicationInputs`, :class:`PublicationOptions` and card
metadata) into a :class:`PublicationPlan`, or raises a clear error; writing the plan is
:mod:`instag_hf.publish.bundle`'s part.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Union, runtime_checkable

from .card import InstagDatasetCard
from .card_data import (
    DEFAULT_CONFIG,
    DEFAULT_TAGS,
    NormalizationInfo,
    SelectionInfo,
    check_config_name,
    check_repo_id,
)

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict
    from huggingface_hub import CardData

    from ..normalize.mapping import TagMapping
    from ..normalize.report import NormalizationReport
    from ..selection.compare import StrategyComparison
    from ..selection.report import SelectionReport

VOCABULARY_CONFIG = "tag_vocabulary"
MAPPING_CONFIG = "tag_mapping"
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


@runtime_checkable
class Describable(Protocol):
    """What the card's tagging section reads: a :class:`~instag_hf.Tagger` (or anything) with ``describe()``."""

    def describe(self) -> dict: ...


@runtime_checkable
class Reportable(Protocol):
    """A result with ``as_dict()``: a tag-quality report (``TagEvalReport``, ``JudgeResult``, ...)."""

    def as_dict(self) -> dict: ...


#: a subset config: the rows, or the rows and the report of how they were selected (or its dict)
Subset = Union["Dataset", "tuple[Dataset, SelectionReport | Mapping[str, Any] | None]"]


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


@dataclass(frozen=True)
class PublicationOptions:
    """How a publication is written; checked on creation.

    ``vocabulary``: add the ``tag_vocabulary`` config. ``data``/``plots``: write the parquet
    files / the PNG plots (``data=False``: a card without data files). ``repo_id``: the
    ``owner/name`` the card's usage example loads from. ``card_data``: the card's Hub
    metadata (a ``huggingface_hub.DatasetCardData`` or a mapping). ``description``: a
    paragraph under the title. ``tags_column``: tags to measure (default: normalized tags
    when present). ``source_column``: also measure the default config per value of this
    column. ``top``: top tags in the card. ``max_shard_size``: parquet files stay under
    about this size. ``template``: a Jinja file replacing the packaged card template.
    ``default_config``: the tagged dataset's config name. ``overwrite``: replace an
    earlier publication in the folder (only files this package wrote).
    """

    vocabulary: bool = True
    data: bool = True
    plots: bool = True
    repo_id: str | None = None
    card_data: CardData | Mapping[str, Any] | None = None
    description: str = ""
    tags_column: str | None = None
    source_column: str | None = None
    top: int = 20
    max_shard_size: int | str = "500MB"
    template: str | Path | None = None
    default_config: str = DEFAULT_CONFIG
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_config_name(self.default_config)
        if self.repo_id is not None:
            check_repo_id(self.repo_id)
        if isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 0:
            raise ValueError(f"top must be an integer >= 0, got {self.top!r}")
        parse_size(self.max_shard_size)
        if self.template is not None and not Path(self.template).is_file():
            raise FileNotFoundError(f"card template {str(self.template)!r} does not exist")

    @property
    def shard_bytes(self) -> int:
        return parse_size(self.max_shard_size)

    @classmethod
    def split(cls, options: PublicationOptions | None, keywords: Mapping[str, Any]
              ) -> tuple[PublicationOptions, dict[str, Any]]:
        """``options`` with the keywords that name its fields over it, and the other keywords (card metadata)."""
        if options is not None and not isinstance(options, cls):
            raise ValueError(f"options must be a PublicationOptions, not {type(options).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        chosen = {k: v for k, v in keywords.items() if k in names}
        metadata = {k: v for k, v in keywords.items() if k not in names}
        return (cls(**chosen) if options is None else dataclasses.replace(options, **chosen)), metadata


@dataclass(frozen=True)
class PublicationInputs:
    """What a publication holds besides the dataset, each optional.

    ``tagger``: a Tagger or its ``describe()`` dict (the tagging section). ``subsets``:
    ``config name -> Dataset`` or ``-> (Dataset, SelectionReport)``. ``mapping``: a
    TagMapping (the ``tag_mapping`` config; its report the normalization section).
    ``normalization``: a NormalizationReport (or its dict) without a mapping config.
    ``quality``: tag-quality results (``as_dict()`` or a mapping). ``comparison``: what
    :func:`~instag_hf.compare_strategies` returns (a section with its table and plots).
    ``scorer``: a Scorer or its ``describe()`` dict (the scores section, shown only when the
    data has an ``instag_score`` column).
    """

    tagger: Describable | Mapping[str, Any] | None = None
    subsets: Mapping[str, Subset] | None = None
    mapping: TagMapping | None = None
    normalization: NormalizationReport | Mapping[str, Any] | None = None
    quality: Reportable | Mapping[str, Any] | None = None
    comparison: StrategyComparison | None = None
    scorer: Describable | Mapping[str, Any] | None = None


@dataclass
class PublicationPlan:
    """A publication with every input checked: the configs to write, the card's sections and metadata.

    ``pool``: the default config's splits as one dataset (what is measured);
    ``subsets``: ``name -> (rows, report)``; ``selections``: the card's recipe per subset
    with a report; ``card_fields``: the card's own metadata fields (``pretty_name``,
    ``license``, ``tags``, ...); ``extra_metadata``: every other Hub field.
    """

    options: PublicationOptions
    splits: dict[str, Dataset]
    pool: Dataset
    tags_column: str
    subsets: dict[str, tuple[Dataset, Any]]
    mapping: TagMapping | None = None
    tagger: dict | None = None
    normalization: NormalizationInfo | None = None
    selections: dict[str, SelectionInfo] = field(default_factory=dict)
    quality: dict | None = None
    comparison: StrategyComparison | None = None
    card_fields: dict[str, Any] = field(default_factory=dict)
    extra_metadata: dict[str, Any] = field(default_factory=dict)
    scorer: dict | None = None

    @property
    def config_names(self) -> list[str]:
        """Every config, in the card's order: the dataset, the vocabulary, the mapping, the subsets."""
        return [self.options.default_config, *([VOCABULARY_CONFIG] if self.options.vocabulary else []),
                *([MAPPING_CONFIG] if self.mapping is not None else []), *self.subsets]


def card_metadata(card_data: CardData | Mapping[str, Any] | None, metadata: Mapping[str, Any]) -> dict[str, Any]:
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


def quality_measures(quality: Reportable | Mapping[str, Any]) -> dict:
    """Plain dict of tag-quality results: a ``TagEvalReport``/``JudgeResult`` (summaries only, no per-tag
    or per-case lists), a mapping of them (``{"judge": result, "f1": report}``), or a plain mapping."""
    import inspect

    if isinstance(quality, Reportable):
        params = inspect.signature(quality.as_dict).parameters
        brief = {k: False for k in ("per_tag", "cases") if k in params}
        return quality_measures(quality.as_dict(**brief))
    if isinstance(quality, Mapping):
        return {str(k): quality_measures(v) if isinstance(v, (Mapping, Reportable)) else v
                for k, v in quality.items()}
    raise ValueError(f"quality must be a report with as_dict() or a mapping, not {type(quality).__name__}")


def check_splits(dataset: Dataset | DatasetDict, what: str) -> dict[str, Dataset]:
    """``split -> Dataset``: a Dataset is the one split ``train``."""
    from datasets import Dataset, DatasetDict

    if isinstance(dataset, Dataset):
        return {"train": dataset}
    if isinstance(dataset, DatasetDict):
        if not dataset:
            raise ValueError(f"{what} is an empty DatasetDict")
        return dict(dataset)
    raise ValueError(f"{what} must be a datasets.Dataset or DatasetDict, not {type(dataset).__name__}")


def check_subsets(subsets: Mapping[str, Subset] | None, reserved: set[str]) -> dict[str, tuple[Dataset, Any]]:
    """``name -> (rows, report or None)``, names checked against the Hub's rules and the other configs."""
    from datasets import Dataset

    from ..selection.report import SelectionReport

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
            if report is not None and not isinstance(report, (SelectionReport, Mapping)):
                raise ValueError(f"subset {name!r}: the report must be a SelectionReport, not {type(report).__name__}")
        if not isinstance(value, Dataset):
            raise ValueError(f"subset {name!r} must be a datasets.Dataset, not {type(value).__name__}")
        out[name] = (value, report)
    return out


def _card_fields(options: PublicationOptions, metadata: Mapping[str, Any]) -> tuple[dict, dict]:
    """The card's own metadata fields and the other Hub fields, validated by building a card."""
    meta = card_metadata(options.card_data, metadata)
    own = {k: meta.pop(k) for k in ("license", "language", "task_categories", "source_datasets") if k in meta}
    repo_id = options.repo_id
    own["pretty_name"] = meta.pop("pretty_name", None) or (repo_id.split("/")[-1] if repo_id
                                                           else "InsTag-tagged dataset")
    own["tags"] = [*dict.fromkeys([*DEFAULT_TAGS, *meta.pop("tags", [])])]
    InstagDatasetCard(repo_id=repo_id, extra_metadata=meta, **own).card_data  # the metadata is valid
    return own, meta


def _concat(parts: list[Dataset]) -> Dataset:
    if len(parts) == 1:
        return parts[0]
    from datasets import concatenate_datasets

    return concatenate_datasets(parts)


def plan_publication(dataset: Dataset | DatasetDict, inputs: PublicationInputs, options: PublicationOptions,
                     metadata: Mapping[str, Any]) -> PublicationPlan:
    """Check every input against the options and the data; the plan, or a ValueError before any file exists."""
    from ..analysis.tagsets import resolve_tags_column
    from ..normalize.mapping import TagMapping
    from ..selection.compare import StrategyComparison

    own, meta = _card_fields(options, metadata)
    splits = check_splits(dataset, "dataset")
    mapping = inputs.mapping
    if mapping is not None and not isinstance(mapping, TagMapping):
        raise ValueError(f"mapping must be a TagMapping, not {type(mapping).__name__}")
    reserved = {options.default_config} | ({VOCABULARY_CONFIG} if options.vocabulary else set()) | (
        {MAPPING_CONFIG} if mapping is not None else set())
    chosen = check_subsets(inputs.subsets, reserved)
    pool = _concat(list(splits.values()))
    column = resolve_tags_column(pool.column_names, options.tags_column)
    source = options.source_column
    if source is not None and source not in pool.column_names:
        raise ValueError(f"source column {source!r} not found; the dataset has columns {pool.column_names}")
    for name, (subset, _) in chosen.items():
        if column not in subset.column_names:
            raise ValueError(f"subset {name!r} has no {column!r} column (the default config's tags); "
                             f"its columns: {subset.column_names}")
    tagger = inputs.tagger
    tagger_info = tagger.describe() if isinstance(tagger, Describable) else (dict(tagger) if tagger else None)
    normalization = inputs.normalization
    if normalization is None and mapping is not None:
        normalization = mapping.report
    norm_info = None
    if normalization is not None:
        params = mapping.params if mapping is not None else None
        norm_info = NormalizationInfo.from_report(normalization, params or None)
    quality = quality_measures(inputs.quality) if inputs.quality is not None else None
    if inputs.comparison is not None and not isinstance(inputs.comparison, StrategyComparison):
        raise ValueError(f"comparison must be what compare_strategies returns, not {type(inputs.comparison).__name__}")
    selections = {name: SelectionInfo.from_report(name, report)
                  for name, (_, report) in chosen.items() if report is not None}
    scorer = inputs.scorer
    scorer_info = scorer.describe() if isinstance(scorer, Describable) else (dict(scorer) if scorer else None)
    return PublicationPlan(options, splits, pool, column, chosen, mapping, tagger_info, norm_info, selections,
                           quality, inputs.comparison, own, meta, scorer_info)
