"""The options every selection entry point shares, defined and checked once (:class:`SelectionOptions`).

``select_indices``, ``sample`` and ``compare_strategies`` take an ``options=`` object
or the same settings as keywords; :meth:`SelectionOptions.build` turns either into one
checked object, so a setting is spelled, defaulted and validated in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .. import schema
from .checks import check_choice, check_count
from .label_graph import LabelGraph
from .mig import PHI_A, PHI_B, PROP_WEIGHT, MigParams
from .params import QUOTA_MODES, TIES, UNTAGGED

#: the options that only ``mig`` reads
MIG_ONLY = ("label_graph", "scores", "prop_weight", "phi_a", "phi_b", "norm")
#: keyword spellings of a field under another name (``sample(..., score_column="quality")``)
ALIASES = {"score_column": "scores"}


@dataclass(frozen=True)
class SelectionOptions:
    """How rows are selected, whatever the strategy; checked on creation (a clear ``ValueError``).

    Attributes
    ----------
    seed:
        Seeds ``random`` and ``ties="shuffle"`` (``None``: fresh entropy, not reproducible).
    ties:
        Order among rows that tie (equal tag counts; equal gains for ``diversity`` and ``mig``)
        and of untagged rows: ``"index"`` (original order, the default) or
        ``"shuffle"`` (a permutation drawn from ``seed``). ``random`` ignores it.
    untagged:
        ``"last"``: rows without usable tags fill the subset after all tagged rows
        (zero-tag rows, then failed rows); ``"never"``: they are never selected.
    quota_column:
        A column name (or one label per row) whose values get quotas.
    quotas:
        ``"proportional"`` (default with a ``quota_column``: each value's share of
        the pool, largest-remainder rounding), ``"equal"`` (the same count per value,
        what a small value cannot fill goes to the others), or a mapping
        ``value -> max rows`` (values not named get none; it must add up to >= n).
    max_per_tag:
        At most this many selected rows carry any one tag.
    tags_column, status_column:
        See :meth:`~instag_hf.analysis.tagsets.TagSets.from_dataset` (default: normalized tags when present).
    label_graph:
        ``mig`` only: an :class:`~instag_hf.LabelGraph` holding every tag of the data; ``None``
        builds one from the data's tags with the normalization step's default embedder.
    scores:
        ``mig`` only: one non-negative quality weight per row, or (for a Dataset) the name of
        the column holding them (keyword ``score_column``), e.g. Deita scores; default: the
        ``instag_score`` column when the Dataset has one without nulls (see ``instag score``), else 1.
    prop_weight, phi_a, phi_b:
        ``mig`` only: the weight of the graph's edges in propagation (default 1.0; 0 turns
        propagation off) and ``phi(x) = (x + phi_a) ** phi_b`` (defaults 1e-6 and 0.8).
    norm:
        ``mig`` only: True (default, the paper's) puts ``s_i / |T_i|`` on each tag of a row; False puts
        the full score ``s_i`` on each (the official command line's ``--norm False``).
    """

    seed: int | None = 0
    ties: str = "index"
    untagged: str = "last"
    quota_column: str | Sequence | None = None
    quotas: str | Mapping[str, int] | None = None
    max_per_tag: int | None = None
    tags_column: str | None = None
    status_column: str | None = schema.STATUS
    label_graph: LabelGraph | None = None
    scores: Sequence[float] | np.ndarray | str | None = None
    prop_weight: float | None = None
    phi_a: float | None = None
    phi_b: float | None = None
    norm: bool | None = None

    def __post_init__(self) -> None:
        if self.seed is not None:
            object.__setattr__(self, "seed", check_count("seed", self.seed, 0))
        check_choice("ties", self.ties, TIES)
        check_choice("untagged", self.untagged, UNTAGGED)
        if self.max_per_tag is not None:
            object.__setattr__(self, "max_per_tag", check_count("max_per_tag", self.max_per_tag, 1))
        if self.quotas is not None:
            if self.quota_column is None:
                raise ValueError("quotas need a quota_column (the column whose values they are for)")
            if not isinstance(self.quotas, Mapping) and self.quotas not in QUOTA_MODES:
                raise ValueError(f"quotas must be one of {list(QUOTA_MODES)} or a mapping value -> rows, "
                                 f"got {self.quotas!r}")
        for name in ("tags_column", "status_column"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a column name, got {type(value).__name__}")
        if self.mig_only():
            self.mig_params()  # MigParams checks the graph and the numbers

    @classmethod
    def build(cls, strategies: str | Sequence[str], options: SelectionOptions | None = None,
              keywords: Mapping[str, Any] | None = None, *, caller: str = "select") -> SelectionOptions:
        """``options`` (default: the defaults) with ``keywords`` over it, checked for ``strategies``.

        Keywords are field names or their :data:`ALIASES`; an unknown one is a TypeError, as
        for any function. MIG-only options are refused unless ``mig`` is among ``strategies``
        (one name, or the list a comparison runs), before anything else about them is checked.
        """
        if options is not None and not isinstance(options, cls):
            raise ValueError(f"options must be a SelectionOptions, not {type(options).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for key, value in (keywords or {}).items():
            name = ALIASES.get(key, key)
            if name not in fields:
                raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")
            if name in values:
                raise TypeError(f"{caller}() got both {spelled[name]!r} and {key!r}; they name one option")
            values[name], spelled[name] = value, key
        names = [spelled.get(n, n) for n in MIG_ONLY
                 if values.get(n, getattr(options, n, None)) is not None]
        chosen = [strategies] if isinstance(strategies, str) else list(strategies)
        if names and "mig" not in chosen:
            if isinstance(strategies, str):
                raise ValueError(f"{', '.join(names)} apply only to strategy='mig', not {strategies!r}")
            raise ValueError(f"{', '.join(names)} apply only to 'mig', which is not among the strategies {chosen}")
        return cls(**values) if options is None else dataclasses.replace(options, **values)

    def mig_only(self) -> list[str]:
        """The MIG-only options that are set."""
        return [name for name in MIG_ONLY if getattr(self, name) is not None]

    def mig_params(self) -> MigParams:
        """MIG's settings from these options (scores are read with the data, by the pool)."""
        return MigParams(self.label_graph, None, PROP_WEIGHT if self.prop_weight is None else self.prop_weight,
                         PHI_A if self.phi_a is None else self.phi_a, PHI_B if self.phi_b is None else self.phi_b,
                         norm=True if self.norm is None else self.norm)

    def describe(self) -> dict:
        """The recipe a report records (MIG's own settings are added by the run that used them)."""
        column = self.quota_column if isinstance(self.quota_column, (str, type(None))) else "<labels>"
        return {"seed": self.seed, "ties": self.ties, "untagged": self.untagged, "quota_column": column,
                "quotas": self.quotas, "max_per_tag": self.max_per_tag}
