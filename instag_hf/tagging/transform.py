"""``RequestTransform``: the scaffolding shared by :class:`~instag_hf.tagging.tagger.Tagger` and
:class:`~instag_hf.scoring.scorer.Scorer`.

A ``Dataset.map`` transform whose answers come from a backend through the request cache. It
keeps its configuration, pickles as configuration plus resolved identity (so the ``datasets``
fingerprint follows the backend really used and the request cache's failures), finds where a
dataset's queries are, tells one row from a batch and declares its output columns to ``map``.

A subclass fills in:

- ``FEATURES``, ``STATS``, ``DESC``: its output columns, its counters (a
  :class:`RequestStats` with a ``statuses`` Counter), its ``map``
  progress label; ``HINT``: what to call instead with something that is no dataset row;
- ``_OWN_OPTIONS``: its own constructor keywords (any other one goes to the backend);
- :meth:`_identity`: what decides its answers (pickled; the cache key's namespace);
- ``configured_backend`` and :meth:`_bind_device`: its backend(s), resolved lazily;
- :meth:`_transform`: its per-batch work (rows read from a batch, one output record each);
- :meth:`_items` and :meth:`_settle_items`: what a whole dataset asks, for a backend that asks
  all at once (:meth:`_settle` reads the dataset in windows); every request goes through :meth:`_asked`;
- :meth:`_count_served`: optionally, counting rows ``map`` served without calling it.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Mapping, Sequence

from .. import schema
from .cache import RequestCache
from .queries import QueryFormat, detect_format


@dataclass
class RequestStats:
    """Counters every transform collects as it runs (in this process); a subclass adds its own
    and ``statuses`` (a ``Counter`` of row statuses), last."""

    rows: int = 0
    turns: int = 0
    requests: int = 0
    cache_hits: int = 0

    def as_dict(self) -> dict:
        return {**asdict(self), "statuses": dict(self.statuses)}

    def _status_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.statuses.items())) or "none"


class RequestTransform:
    """Base of the ``Dataset.map`` transforms answered by a backend through the request cache."""

    FEATURES: ClassVar[Any]
    STATS: ClassVar[type]
    DESC: ClassVar[str]
    HINT: ClassVar[str]
    _OWN_OPTIONS: ClassVar[frozenset]

    def __init__(self, config: dict):
        self._config = config
        self._init_runtime()

    @staticmethod
    def _check_batch_size(batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def _init_runtime(self) -> None:
        self._nonce = os.urandom(8).hex()
        self._formats: dict[tuple, QueryFormat] = {}
        self._settled: dict[str, dict] = {}  # answers of a whole dataset the request cache does not hold
        self._phase = None  # "settling" a whole dataset, or "rereading" it in its map (see _settle)
        cfg = self._config
        self.cache = RequestCache(cfg["cache_dir"]) if cfg["use_cache"] else None
        self.stats = self.STATS()

    # Pickled as configuration plus the resolved identity (no model is loaded for it): the
    # ``datasets`` fingerprint changes with the backend really used (``backend="auto"`` reads
    # the environment), and num_proc workers stay cheap to start. The request cache's failure
    # epoch is part of it too: after a run in which requests failed, the same command is not
    # served ``datasets``' cached map output but re-maps, answering what succeeded from the
    # request cache and asking again exactly what failed.
    def __getstate__(self):
        try:
            identity = self._identity()
        except (RuntimeError, ValueError, ImportError) as exc:  # no backend can run here: map will say why
            identity = {"unresolved": f"{type(exc).__name__}: {exc}"}
        return {"config": self._config, "identity": identity, "failures": self._failure_epoch()}

    def _failure_epoch(self) -> int | str:
        """How many requests have failed in this transform's request cache (it only grows); without
        a request cache, this object's own token, so no other transform's map output is reused."""
        return self._nonce if self.cache is None else self.cache.failure_epoch()

    def __setstate__(self, state):
        self._config = state["config"]
        self._init_runtime()

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._config.items() if v is not None}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def _identity(self) -> dict:
        """What decides this transform's answers besides its inputs (pickled with it)."""
        raise NotImplementedError

    # --- backends ----------------------------------------------------------------------
    def _backend_options(self) -> dict:
        """The configuration's keywords that go to the backend's constructor."""
        return {k: v for k, v in self._config.items() if k not in self._OWN_OPTIONS}

    def _backend_defaults(self, **extra: Any) -> dict:
        """Defaults for a backend: the progress setting (for one that waits, the Batch API),
        ``extra``, and the request cache's folder (where such a backend keeps its journal)."""
        defaults = {"progress": self._config["progress"], **extra}
        if self.cache is not None:
            defaults["cache_dir"] = str(self.cache.directory)
        return defaults

    def _bind_device(self, rank: int) -> None:
        """Pin the backend(s) to GPU ``rank`` (a ``map(num_proc=N, with_rank=True)`` worker)."""
        raise NotImplementedError

    # --- the map transform -------------------------------------------------------------
    @property
    def features(self):
        """The output columns, for ``ds.map(..., features=ds.features | transform.features)``."""
        return self.FEATURES

    def _format(self, columns: Sequence[str]) -> QueryFormat:
        key = tuple(columns)
        if key not in self._formats:
            cfg = self._config
            self._formats[key] = detect_format(columns, cfg["format"], cfg["query_column"])
        return self._formats[key]

    def _transform(self, batch: Mapping[str, Any], fmt: QueryFormat, single: bool) -> list[dict]:
        """One output record per row of ``batch`` (``single``: ``batch`` is one row)."""
        raise NotImplementedError

    def __call__(self, batch: Mapping[str, Any], rank: int | None = None) -> dict:
        """The ``map`` transform, for one row or (better) a batch of rows."""
        if not isinstance(batch, Mapping):
            raise TypeError(f"a {type(self).__name__} is called with a dataset row or batch (a mapping of "
                            f"columns), got {type(batch).__name__}; {self.HINT}")
        if rank is not None:
            self._bind_device(rank)
        fmt = self._format(list(batch))
        single = _is_single_row(batch, fmt)
        rows = self._transform(batch, fmt, single)
        return rows[0] if single else {name: [r[name] for r in rows] for name in self.FEATURES}

    def _items(self, batch: Mapping[str, Any], fmt: QueryFormat) -> list:
        """What a batch of rows asks about (user turns, turn-answer pairs), flat."""
        raise NotImplementedError

    def _settle_items(self, items: list) -> None:
        """Ask everything ``items`` need (answers, and answers asked again), through :meth:`_asked`."""
        raise NotImplementedError

    def _asked(self, keys, ask) -> dict[str, dict]:
        """Records of ``keys``: those settled for this dataset, the rest from ``ask(rest)``, which
        returns ``(records, cache hits)``; every request of a transform goes through here.

        While settling, what the request cache will not hold (failures; everything without a
        cache) is kept for the map. In the map of a settled dataset the cache's hits were
        counted when settling and are not counted again."""
        held = {k: self._settled[k] for k in keys if k in self._settled}
        rest = [k for k in keys if k not in held]
        if not rest:
            return held
        found, cached = ask(rest)
        if self._phase != "rereading":
            self.stats.cache_hits += cached
        if self._phase == "settling":
            self._settled.update(found if self.cache is None else {k: r for k, r in found.items() if r.get("error")})
        return {**held, **found}

    def _settle(self, dataset) -> dict[str, dict]:
        """Ask every request mapping ``dataset`` makes before the map (a backend that asks a
        whole dataset at once: the Batch API); returns the records the map takes from memory.

        Rows are read in order and asked a window of at most the backend's ``window_requests``
        items at a time, each window answered (and cached) before the next is sent. With a
        request cache only the records it does not hold (failures) are kept, since the map
        reads the rest back from it: memory grows with the window, not the dataset. A
        ``submit_only`` backend submits every window, then one :class:`BatchPending` names them all.
        """
        from .backends.openai_batch import BatchPending

        fmt = self._format(dataset.column_names)
        window = self.configured_backend.window_requests or sys.maxsize
        pending: list[BatchPending] = []

        def ask(items: list) -> None:
            try:
                self._settle_items(items)
            except BatchPending as exc:
                pending.append(exc)

        self._settled, self._phase = {}, "settling"
        try:
            items: list = []
            for batch in dataset.iter(batch_size=1000):
                items.extend(self._items(batch, fmt))
                while len(items) >= window:
                    ask(items[:window])
                    del items[:window]
            if items:
                ask(items)
        finally:
            self._phase = None
        if pending:
            raise BatchPending.merge(pending)
        return self._settled

    def _count_served(self, out, rows_before: int, map_kwargs: Mapping[str, Any]) -> None:
        """After ``map``: count what it served without calling this process (by default nothing)."""

    def map(self, dataset, **map_kwargs):
        """``dataset.map(self, batched=True)`` with the output features declared and a progress label."""
        from datasets import Dataset, IterableDataset

        map_kwargs.setdefault("batched", True)
        if isinstance(dataset, Dataset):
            map_kwargs.setdefault("desc", self.DESC)
        if isinstance(dataset, (Dataset, IterableDataset)) and dataset.features is not None:
            kept = {k: v for k, v in dataset.features.items() if k not in self.FEATURES}
            map_kwargs.setdefault("features", schema.Features({**kept, **self.FEATURES}))
        rows_before = self.stats.rows
        if isinstance(dataset, Dataset) and self.configured_backend.whole_dataset:
            try:  # the Batch API: ask every request first (window by window), then map from the answers
                self._settled = self._settle(dataset)
                self._phase = "rereading"
                out = dataset.map(self, **map_kwargs)
            finally:
                self._settled, self._phase = {}, None
        else:
            out = dataset.map(self, **map_kwargs)
        self._count_served(out, rows_before, map_kwargs)
        return out


def _has_words(text: str) -> bool:
    """Whether ``text`` holds a letter or a digit (a turn of emoji or zero-width characters holds none)."""
    return any(unicodedata.category(c)[0] in "LN" for c in text)


def _is_single_row(batch: Mapping[str, Any], fmt: QueryFormat) -> bool:
    """``map`` without ``batched=True`` passes one row; tell it from a batch by its type
    (``datasets`` passes a ``LazyRow`` or a ``LazyBatch``), else by its main column."""
    known = schema.passed_one_row(batch)
    if known is not None:
        return known
    value = batch.get(fmt.column or "instruction")
    if fmt.kind in ("sharegpt", "messages"):
        if isinstance(value, Mapping):  # one row of a struct-of-lists column
            return True
        if not value:  # an empty conversation, or an empty batch: a batch has every column a list
            return not all(isinstance(v, (list, tuple)) and len(v) == len(value or ()) for v in batch.values())
        role = "from" if fmt.kind == "sharegpt" else "role"
        return isinstance(value[0], Mapping) and isinstance(value[0].get(role), str)
    return not isinstance(value, (list, tuple))
