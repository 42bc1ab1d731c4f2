"""Data views of a tagged dataset for browsing it tag by tag (the Space's explorer), without Gradio.

:class:`Explorer` reads a tags column once into :class:`~instag_hf.analysis.tagsets.TagSets` and answers:
the tag table (rows and share per tag), the rows carrying some tags (all of them or any of them, paged,
with their query text, tags and status) and the tags co-occurring with them. :func:`compare_datasets`
sets two tagged datasets side by side (coverage, tags only one side has, tag recall, diversity and
complexity). Bad input raises :class:`ExploreError`, a ``ValueError`` whose message is meant for people.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from .. import schema
from ..analysis.metrics import DatasetMetrics, dataset_metrics, recall_matrix
from ..analysis.tagsets import TAG_COLUMNS, TagSets
from ..strict_json import finite
from ..tagging.queries import QueryFormatError, detect_format

#: the names of the two tag views: normalized (canonical) tags and the tagger's raw tags
VIEWS = {"normalized": schema.NORM_TAGS, "raw": schema.TAGS}
MODES = ("all", "any")


class ExploreError(ValueError):
    """A dataset, tag or option the explorer cannot show; the message says why and what to do."""


def tag_views(columns: Sequence[str]) -> list[str]:
    """The views (``normalized``, ``raw``) whose column the dataset has, normalized first."""
    return [view for view, column in VIEWS.items() if column in columns]


def _check(ds) -> None:
    if not hasattr(ds, "column_names"):
        raise ExploreError(f"expected a datasets.Dataset, got {type(ds).__name__}")
    if not any(c in ds.column_names for c in TAG_COLUMNS):
        raise ExploreError(
            f"this dataset has no tags column ({schema.NORM_TAGS!r} or {schema.TAGS!r}); its columns are "
            f"{list(ds.column_names)}. Tag it first (`instag tag`, or upload the file to have it tagged)")
    if len(ds) == 0:
        raise ExploreError("the dataset is empty: it has no rows to show")


def _column(ds, view: str | None) -> str:
    view = (view or "auto").strip().lower()
    if view == "auto":
        return next(c for c in TAG_COLUMNS if c in ds.column_names)
    if view not in VIEWS:
        raise ExploreError(f"tag view {view!r} is not one of auto, {', '.join(VIEWS)}")
    if VIEWS[view] not in ds.column_names:
        have = ", ".join(tag_views(ds.column_names))
        raise ExploreError(f"this dataset has no {view} tags ({VIEWS[view]!r}); it has: {have}")
    return VIEWS[view]


@dataclass
class RowsPage:
    """One page of the rows carrying the chosen tags, and the tags found most often beside them.

    ``rows``: ``{"row", "query", "tags", "status"}`` per row (``row`` is the index in the dataset);
    ``cooccurring``: ``{"tag", "rows", "share"}``, share of the matching rows that also carry the tag.
    """

    tags: list[str]
    mode: str
    total: int
    page: int
    pages: int
    page_size: int
    rows: list[dict] = field(default_factory=list)
    cooccurring: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return finite(asdict(self))


class Explorer:
    """The tags of one dataset, read once, to browse by tag.

    ``view``: ``normalized``, ``raw`` or ``auto`` (normalized tags when the dataset has them).
    Rows whose status is not usable (see :mod:`instag_hf.analysis.tagsets`) carry no tags here.
    """

    def __init__(self, ds, view: str | None = None):
        _check(ds)
        self.ds = ds
        self.column = _column(ds, view)
        self.view = next(v for v, c in VIEWS.items() if c == self.column)
        self.views = tag_views(ds.column_names)
        self.tagsets = TagSets.from_dataset(ds, self.column)
        self.counts = self.tagsets.tag_counts()
        self._index = {t: i for i, t in enumerate(self.tagsets.vocab.tolist())}
        try:
            self._format = detect_format(ds.column_names)
        except QueryFormatError:
            self._format = None

    @property
    def usable_rows(self) -> int:
        return self.tagsets.n_usable

    def metrics(self, name: str = "dataset", top: int = 20) -> DatasetMetrics:
        return dataset_metrics(self.tagsets, name, top=top, pairs=0)

    def tag_table(self, search: str = "", sort: str = "rows", limit: int | None = None) -> list[dict]:
        """``{"tag", "rows", "share"}`` per tag (share of usable rows); ``search`` keeps tags containing it
        (case-insensitive); ``sort`` is ``rows`` (most first, ties by tag) or ``tag`` (alphabetical)."""
        if sort not in ("rows", "tag"):
            raise ExploreError(f"sort must be 'rows' or 'tag', got {sort!r}")
        present = np.flatnonzero(self.counts)
        tags = self.tagsets.vocab[present].astype(str)
        counts = self.counts[present]
        needle = (search or "").strip().lower()
        if needle:
            keep = np.char.find(np.char.lower(tags.astype(str)), needle) >= 0
            tags, counts = tags[keep], counts[keep]
        order = np.lexsort((tags, -counts)) if sort == "rows" else np.argsort(tags, kind="stable")
        if limit is not None:
            order = order[:limit]
        usable = self.usable_rows or 1
        return [{"tag": str(tags[i]), "rows": int(counts[i]), "share": float(counts[i]) / usable} for i in order]

    def _ids(self, tags: Sequence[str]) -> np.ndarray:
        if isinstance(tags, str):
            tags = [tags]
        wanted = list(dict.fromkeys(t.strip() for t in tags if isinstance(t, str) and t.strip()))
        if not wanted:
            raise ExploreError("choose at least one tag")
        ids = []
        for tag in wanted:
            i = self._index.get(tag)
            if i is None or not self.counts[i]:
                known = [t for t in self._index if self.counts[self._index[t]]]
                close = difflib.get_close_matches(tag, known, n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
                    "; search the tag table for the tags it has"
                raise ExploreError(f"tag {tag!r} is not in this dataset's {self.view} tags{hint}")
            ids.append(i)
        return np.asarray(ids, dtype=np.int64)

    def matching_rows(self, tags: Sequence[str], mode: str = "all") -> np.ndarray:
        """Indices of the rows carrying every tag (``mode="all"``) or at least one (``"any"``)."""
        if mode not in MODES:
            raise ExploreError(f"mode must be 'all' or 'any', got {mode!r}")
        ids = self._ids(tags)
        ts = self.tagsets
        hits = np.bincount(ts.row_ids[np.isin(ts.ids, ids)], minlength=len(ts))
        return np.flatnonzero(hits == len(ids) if mode == "all" else hits > 0)

    def cooccurring(self, rows: np.ndarray, exclude: Sequence[str] = (), k: int = 10) -> list[dict]:
        """The ``k`` tags most often on ``rows`` besides ``exclude``, as ``{"tag", "rows", "share"}``."""
        if not len(rows) or k <= 0:
            return []
        sub = self.tagsets.take(rows)
        counts = sub.tag_counts()
        for tag in exclude:
            if tag in self._index:
                counts[self._index[tag]] = 0
        present = np.flatnonzero(counts)
        tags = self.tagsets.vocab[present].astype(str)
        order = np.lexsort((tags, -counts[present]))[:k]
        return [{"tag": str(tags[i]), "rows": int(counts[present[i]]), "share": float(counts[present[i]]) / len(rows)}
                for i in order]

    def query_text(self, row: int) -> str:
        """The user turns of one row, joined by blank lines ("" when the dataset's query layout is unknown)."""
        return self._query(self.ds[int(row)])

    def _query(self, record: dict) -> str:
        if self._format is None:
            return ""
        return "\n\n".join(t for t in self._format.extract(record) if t)

    def rows_for_tags(self, tags: Sequence[str], mode: str = "all", page: int = 1, page_size: int = 20,
                      cooccurring: int = 10) -> RowsPage:
        """One page (``page`` counts from 1) of the rows carrying ``tags``, with co-occurring tags."""
        if not 1 <= int(page_size) <= 500:
            raise ExploreError(f"page size must be between 1 and 500, got {page_size}")
        wanted = [tags] if isinstance(tags, str) else list(tags)
        rows = self.matching_rows(wanted, mode)
        pages = max(1, math.ceil(len(rows) / page_size))
        page = min(max(1, int(page)), pages)
        shown = rows[(page - 1) * page_size:page * page_size]
        out = []
        for row in shown.tolist():
            record = self.ds[row]
            out.append({"row": row, "query": self._query(record), "tags": self.tagsets.tags_of(row),
                        "status": record.get(schema.STATUS) or ""})
        clean = [t.strip() for t in wanted if isinstance(t, str) and t.strip()]
        return RowsPage(tags=list(dict.fromkeys(clean)), mode=mode, total=int(len(rows)), page=page, pages=pages,
                        page_size=int(page_size), rows=out, cooccurring=self.cooccurring(rows, clean, cooccurring))


@dataclass
class Comparison:
    """Two tagged datasets side by side.

    ``coverage[name]``: the share of the other dataset's tags this one has; ``only[name]``: the tags only
    this one has, as ``{"tag", "rows"}`` (most rows first); ``recall[i][j]``: recall of dataset ``i``'s
    tags by dataset ``j`` (the paper's Figure 2b); ``metrics``: diversity, complexity, rows of each.
    """

    names: list[str]
    view: str
    coverage: dict[str, float | None]
    shared: int
    only: dict[str, list[dict]]
    recall: list[list[float | None]]
    metrics: list[DatasetMetrics]

    def as_dict(self) -> dict:
        return finite({"names": self.names, "view": self.view, "coverage": self.coverage, "shared": self.shared,
                       "only": self.only, "recall": self.recall,
                       "metrics": [m.as_dict() for m in self.metrics]})


def compare_datasets(a, b, names: Sequence[str] = ("A", "B"), view: str | None = None, top: int = 20) -> Comparison:
    """Compare two tagged datasets (or configs) on the same tag view.

    ``view`` ``auto`` uses normalized tags when both have them, else raw tags.
    """
    names = [str(n) for n in names]
    if len(names) != 2 or names[0] == names[1]:
        raise ExploreError(f"give two different names, got {names}")
    for ds in (a, b):
        _check(ds)
    if (view or "auto") == "auto":
        both = [v for v in VIEWS if VIEWS[v] in a.column_names and VIEWS[v] in b.column_names]
        if not both:
            raise ExploreError(f"the two datasets share no tag view: {names[0]} has {tag_views(a.column_names)}, "
                               f"{names[1]} has {tag_views(b.column_names)}")
        view = both[0]
    explorers = [Explorer(a, view), Explorer(b, view)]
    metrics = [e.metrics(n, top=top) for e, n in zip(explorers, names)]
    sets = [m.tags for m in metrics]
    recall = recall_matrix(sets)
    only = {}
    for i, m in enumerate(metrics):
        other = sets[1 - i]
        only[m.name] = [{"tag": t, "rows": n} for t, n in m.tag_counts.items() if t not in other]
    coverage: dict[str, Any] = {}
    for i, name in enumerate(names):
        other = sets[1 - i]
        coverage[name] = len(sets[i] & other) / len(other) if other else None
    return Comparison(names=names, view=explorers[0].view, coverage=coverage, shared=len(sets[0] & sets[1]),
                      only=only, recall=[[None if math.isnan(x) else float(x) for x in r] for r in recall],
                      metrics=metrics)
