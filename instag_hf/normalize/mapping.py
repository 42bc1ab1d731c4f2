"""``TagMapping``: raw tag -> canonical tag, as fitted by :class:`TagNormalizer`, applied with ``Dataset.map``.

It is plain data (lists and dicts) when pickled, so a ``datasets`` fingerprint of
``ds.map(mapping)`` is stable across processes and runs, and it saves to JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable

from .. import schema
from ..strict_json import write_json
from .base import is_empty
from .report import NormalizationReport

logger = logging.getLogger(__name__)
_WARNED: set = set()  # mappings already warned about in this process (a mapping is rebuilt on every unpickle)

FORMAT = "instag_hf.TagMapping"
VERSION = 1
COLUMNS = ("raw_tag", "count", "rule_tag", "semantic_tag", "canonical_tag", "stage")
UNKNOWN = ("drop", "keep", "rules")
#: ``stage`` of a raw tag: the last step that changed it, "dropped" (by the frequency filter, or nothing left
#: after the rules) or "unchanged"
STAGES = ("dropped", "rules", "semantic", "association", "unchanged")


#: ``Dataset.map`` options the Arrow path of :meth:`TagMapping.map` takes; any other falls back to rows
_ARROW_MAP_OPTIONS = frozenset({"batched", "batch_size", "num_proc", "desc", "load_from_cache_file",
                                "cache_file_name", "keep_in_memory", "writer_batch_size", "new_fingerprint"})


class TagMapping:
    """Raw tag -> canonical tag. ``ds.map(mapping, batched=True)`` adds ``instag_norm_tags``.

    Parameters
    ----------
    columns:
        Parallel lists, one entry per raw tag seen in fit: ``raw_tag``, ``count`` (tagged
        samples holding it), ``rule_tag`` / ``semantic_tag`` / ``canonical_tag`` (its text
        after rule aggregation, after semantic aggregation, and at the end; ``None`` for a
        tag dropped by the frequency filter or with nothing left after the rules, such as "...") and
        ``stage`` (see :data:`STAGES`). No raw tag maps to an empty tag.
    canonical_counts:
        Tagged samples holding each canonical tag after normalization.
    unknown:
        What a tag never seen in fit becomes: ``"drop"`` (default; it was never counted,
        like a rare tag), ``"keep"`` (as is), or ``"rules"`` (the canonical tag of its rule
        group when a fitted tag shares its rule key, else dropped).
    tags_column:
        The input column: ``instag_tags`` items or a list of strings.
    """

    def __init__(self, columns: Mapping[str, list], canonical_counts: Mapping[str, int] | None = None,
                 params: Mapping[str, Any] | None = None, report: NormalizationReport | Mapping | None = None,
                 unknown: str = "drop", tags_column: str = schema.TAGS):
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"mapping columns {missing} are missing (expected {list(COLUMNS)})")
        sizes = {len(columns[c]) for c in COLUMNS}
        if len(sizes) != 1:
            raise ValueError(f"mapping columns differ in length: { {c: len(columns[c]) for c in COLUMNS} }")
        if unknown not in UNKNOWN:
            raise ValueError(f"unknown must be one of {UNKNOWN}, got {unknown!r}")
        self.columns = {c: list(columns[c]) for c in COLUMNS}
        self.canonical_counts = {t: n for t, n in dict(canonical_counts or {}).items() if not is_empty(t)}
        self.params = dict(params or {})
        if isinstance(report, Mapping):
            report = NormalizationReport.from_dict(dict(report))
        self.report: NormalizationReport | None = report
        self.unknown, self.tags_column = unknown, tags_column
        self._init_lookup()

    def _init_lookup(self) -> None:
        c = self.columns
        blank = [r for r, t in zip(c["raw_tag"], c["canonical_tag"]) if t is not None and is_empty(t)]
        if blank and (len(blank), blank[0]) not in _WARNED:  # from an instag_hf that could map tags to ""
            _WARNED.add((len(blank), blank[0]))
            logger.warning("this tag mapping maps %d raw tag(s) to an empty tag (e.g. %r); they are dropped: "
                           "fit the mapping again to place them", len(blank), blank[0])
        self._seen = {r: (None if is_empty(t) else t) for r, t in zip(c["raw_tag"], c["canonical_tag"])}
        self._by_rule_key: dict[str, str] | None = None
        self._digest: str | None = None

    # --- plain data ------------------------------------------------------------------
    def __getstate__(self) -> dict:
        return self.as_dict()

    def __setstate__(self, state: dict) -> None:
        self.__init__(**self._init_kwargs(state))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TagMapping) and self.as_dict() == other.as_dict()

    def as_dict(self) -> dict:
        return {
            "format": FORMAT, "version": VERSION, "unknown": self.unknown, "tags_column": self.tags_column,
            "params": self.params, "columns": self.columns, "canonical_counts": self.canonical_counts,
            "report": self.report.as_dict() if self.report is not None else None,
        }

    @staticmethod
    def _init_kwargs(data: Mapping) -> dict:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a saved TagMapping (format {data.get('format')!r}, expected {FORMAT!r})")
        if data.get("version", VERSION) > VERSION:
            raise ValueError(f"TagMapping file version {data['version']} is newer than this instag_hf ({VERSION})")
        return {k: data.get(k) for k in ("columns", "canonical_counts", "params", "report")} | {
            "unknown": data.get("unknown", "drop"), "tags_column": data.get("tags_column", schema.TAGS)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "TagMapping":
        return cls(**cls._init_kwargs(data))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the mapping (and its report) as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, self.as_dict(), indent=None, newline=False)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TagMapping":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dataset(self):
        """One row per raw tag (columns of :data:`COLUMNS`), e.g. for a ``mapping`` config on the Hub."""
        from datasets import Dataset, Features, Value

        features = Features({c: Value("int64") if c == "count" else Value("string") for c in COLUMNS})
        return Dataset.from_dict(self.columns, features=features)

    # --- lookup ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.columns["raw_tag"])

    def __contains__(self, raw: object) -> bool:
        return raw in self._seen

    def __getitem__(self, raw: str) -> str | None:
        """The canonical tag of a raw tag seen in fit (``None`` if it was dropped)."""
        if raw not in self._seen:
            raise KeyError(raw)
        return self._seen[raw]

    def get(self, raw: str, default: str | None = None) -> str | None:
        return self._seen.get(raw, default)

    @property
    def vocabulary(self) -> list[str]:
        """Canonical tags, held by the most samples first."""
        return sorted(self.canonical_counts, key=lambda t: (-self.canonical_counts[t], t))

    def as_mapping(self) -> dict[str, str]:
        """``{raw: canonical}`` for every raw tag that was kept."""
        return {r: c for r, c in self._seen.items() if c is not None}

    def __repr__(self) -> str:
        kept = sum(c is not None for c in self.columns["canonical_tag"])
        return (f"TagMapping({len(self):,} raw tags, {kept:,} kept -> {len(self.canonical_counts):,} canonical, "
                f"unknown={self.unknown!r})")

    def _rule_fallback(self, raw: str) -> str | None:
        rules = self.params.get("rules") if self.params.get("steps", {}).get("rules", True) else None
        if not rules:
            return None
        from .rules import RuleAggregator

        aggregator = RuleAggregator(**rules)
        if self._by_rule_key is None:
            self._by_rule_key = {}
            for raw_tag, rule_tag, canonical in zip(self.columns["raw_tag"], self.columns["rule_tag"],
                                                    self.columns["canonical_tag"]):
                if not is_empty(canonical):
                    for key in aggregator.keys(raw_tag) + (aggregator.keys(rule_tag) if rule_tag else ()):
                        if not is_empty(key):
                            self._by_rule_key.setdefault(key, canonical)
        return next((self._by_rule_key[k] for k in aggregator.keys(raw) if k in self._by_rule_key), None)

    def canonical(self, raw: str) -> str | None:
        """The canonical tag of any raw tag, following ``unknown`` for one not seen in fit; never an empty tag."""
        if raw in self._seen:
            return self._seen[raw]
        if is_empty(raw):
            return None
        if self.unknown == "keep":
            return raw
        if self.unknown == "rules":
            return self._rule_fallback(raw)
        return None

    def apply(self, tags: Iterable[Any] | None) -> list[str]:
        """Canonical tags of one sample's tags (items or strings), de-duplicated, first occurrence first."""
        out: dict[str, None] = {}
        for item in tags or ():
            raw = item.get("tag") if isinstance(item, Mapping) else item
            if isinstance(raw, str):
                canonical = self.canonical(raw)
                if canonical is not None:
                    out.setdefault(canonical, None)
        return list(out)

    # --- datasets --------------------------------------------------------------------
    @property
    def features(self):
        """The output column, for ``ds.map(..., features=ds.features | mapping.features)``."""
        from datasets import Features, List, Value

        return Features({schema.NORM_TAGS: List(Value("string"))})

    def __call__(self, batch: Mapping[str, Any]) -> dict:
        """The ``map`` transform, for a batch (better) or one row."""
        if self.tags_column not in batch:
            raise ValueError(f"column {self.tags_column!r} not found (columns: {list(batch)}); "
                             "set TagMapping.tags_column")
        value = batch[self.tags_column]
        one_row = schema.passed_one_row(batch)
        if one_row is None:
            one_row = value is None or (isinstance(value, list) and (
                not value or not isinstance(value[0], (list, type(None)))))
        if one_row:
            return {schema.NORM_TAGS: self.apply(value)}
        return {schema.NORM_TAGS: [self.apply(tags) for tags in value]}

    def map(self, dataset, **map_kwargs):
        """``dataset.map(self, batched=True)`` with the output feature declared and a progress label.

        ``datasets`` infers a new column's type from the first batch; a first batch in
        which no sample has a tag would make it a null column, so the type is declared.
        A ``Dataset`` whose tags are a list of ``{"tag": ...}`` items or of strings is
        mapped on its Arrow batches (:meth:`arrow_batch`) into a dataset of the new column
        alone, joined to the others without rewriting them: the same rows, without decoding
        every tag item (explanations included) into Python objects or copying the columns.
        """
        from datasets import Dataset, IterableDataset

        map_kwargs.setdefault("batched", True)
        if isinstance(dataset, Dataset):
            map_kwargs.setdefault("desc", "Normalizing tags")
        if self._arrow_ready(dataset, map_kwargs):
            return self._map_arrow(dataset, map_kwargs)
        if isinstance(dataset, (Dataset, IterableDataset)) and dataset.features is not None:
            kept = {k: v for k, v in dataset.features.items() if k != schema.NORM_TAGS}
            map_kwargs.setdefault("features", schema.Features({**kept, **self.features}))
        return dataset.map(self, **map_kwargs)

    def _map_arrow(self, dataset, map_kwargs: dict):
        from datasets import concatenate_datasets

        fmt = dataset.format
        map_kwargs.setdefault("new_fingerprint", self._map_fingerprint(dataset))
        column = dataset.with_format("arrow").map(self.arrow_batch, remove_columns=dataset.column_names,
                                                  features=self.features, **map_kwargs)
        others = dataset.remove_columns([schema.NORM_TAGS]) if schema.NORM_TAGS in dataset.column_names else dataset
        out = concatenate_datasets([others.with_format(None), column.with_format(None)], axis=1)
        return out.with_format(fmt["type"], output_all_columns=fmt["output_all_columns"], **fmt["format_kwargs"])

    def _arrow_ready(self, dataset, map_kwargs: Mapping[str, Any]) -> bool:
        """Whether :meth:`arrow_batch` can map ``dataset`` with these ``map`` options."""
        import pyarrow as pa
        from datasets import Dataset

        if not isinstance(dataset, Dataset) or dataset._indices is not None:  # a selection: rows path
            return False
        shown = dataset.format["columns"]
        if shown is not None and set(shown) != set(dataset.column_names):  # a format showing some columns
            return False
        if not map_kwargs.get("batched") or set(map_kwargs) - _ARROW_MAP_OPTIONS:
            return False
        if self.tags_column not in dataset.column_names:
            return False
        kind = dataset.data.schema.field(self.tags_column).type
        if not pa.types.is_list(kind):
            return False
        item = kind.value_type
        return pa.types.is_string(item) or (pa.types.is_struct(item) and item.get_field_index("tag") >= 0
                                            and pa.types.is_string(item.field("tag").type))

    def _map_fingerprint(self, dataset) -> str:
        """The fingerprint of the Arrow path's new column: the input's and this mapping's content
        (hashed once per object: ``datasets`` would pickle a mapping of millions of raw tags on
        every call) and policy."""
        from datasets.fingerprint import Hasher

        if self._digest is None:
            self._digest = self._content_digest()
        return Hasher.hash((dataset._fingerprint, "TagMapping.arrow_batch", VERSION, self._digest, self.unknown,
                            self.tags_column))

    def _content_digest(self, chunk: int = 65536) -> str:
        """sha256 of everything but the policy (``unknown``, ``tags_column``), fed column by column in
        chunks (each value length-prefixed), so no text of the whole mapping is ever held."""
        h = hashlib.sha256(f"{FORMAT}@{VERSION}".encode())
        for name in COLUMNS:
            values = self.columns[name]
            h.update(f"\x02{name}:{len(values)}".encode())
            for start in range(0, len(values), chunk):
                part = values[start:start + chunk]
                h.update("".join("N" if v is None else f"{len(str(v))}:{v}" for v in part).encode("utf-8", "surrogatepass"))
        rest = {"params": self.params, "canonical_counts": self.canonical_counts,
                "report": self.report.as_dict() if self.report is not None else None}
        h.update(json.dumps(rest, sort_keys=True, default=str).encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def arrow_batch(self, table):
        """A table of the ``instag_norm_tags`` column of an Arrow batch (a list of tag items or of
        strings per row): what :meth:`apply` gives each row, computed on the batch's distinct raw tags."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        column = table.column(self.tags_column).combine_chunks()
        n = len(column)
        values = pc.list_flatten(column)
        rows = np.asarray(pc.list_parent_indices(column), dtype=np.int64)
        raw = pc.struct_field(values, "tag") if pa.types.is_struct(values.type) else values
        encoded = pc.dictionary_encode(raw)
        codes = np.asarray(encoded.indices.fill_null(-1), dtype=np.int64)
        canonical_of: dict[str, int] = {}
        names: list[str] = []
        code_to_canonical = np.full(len(encoded.dictionary) + 1, -1, dtype=np.int64)  # last slot: a null tag
        for code, text in enumerate(encoded.dictionary.to_pylist()):
            canonical = self.canonical(text)
            if canonical is not None:
                code_to_canonical[code] = canonical_of.setdefault(canonical, len(names))
                if code_to_canonical[code] == len(names):
                    names.append(canonical)
        ids = code_to_canonical[codes]
        keep = ids >= 0
        rows, ids = rows[keep], ids[keep]
        _, first = np.unique(rows * max(len(names), 1) + ids, return_index=True)  # a row's first occurrence
        first.sort()  # back to entry order: rows ascending, first occurrence first
        rows, ids = rows[first], ids[first]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
        tags = pa.array(names, type=pa.string()).take(pa.array(ids))
        return pa.table({schema.NORM_TAGS: pa.ListArray.from_arrays(pa.array(offsets), tags)})
