"""Per-sample tag sets as integer ids in a CSR layout, read straight from Arrow columns.

Metrics, selection and normalization work on :class:`TagSets`, never on Python lists
of dicts: the tags of a column are flattened and dictionary-encoded by pyarrow, and
every later step is numpy over ``offsets`` (row boundaries) and ``ids`` (tag ids).

One rule decides which rows count everywhere: a row is *usable* when its status is
``ok`` or ``truncated`` (or there is no status column); null and empty tag strings are
dropped and a tag counts once per row. A failed row is missing data, not a row with
zero tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema

#: the columns a tags column is looked up in when none is named: normalized tags first
TAG_COLUMNS = (schema.NORM_TAGS, schema.TAGS)


def resolve_tags_column(columns: Sequence[str], tags_column: str | None = None) -> str:
    """The tags column to read: ``tags_column`` if given, else ``instag_norm_tags``, else ``instag_tags``."""
    if tags_column is not None:
        if tags_column not in columns:
            raise ValueError(f"tags column {tags_column!r} not found; the dataset has columns {list(columns)}")
        return tags_column
    for name in TAG_COLUMNS:
        if name in columns:
            return name
    raise ValueError(
        f"no tags column: expected {schema.NORM_TAGS!r} or {schema.TAGS!r} among {list(columns)}; "
        "tag the dataset first (`instag tag` or `ds.map(instag_hf.tag, batched=True)`) or pass tags_column="
    )


@dataclass(frozen=True, eq=False)
class TagSets:
    """The de-duplicated tag set of every row.

    Attributes
    ----------
    offsets:
        ``int64`` array of ``n_rows + 1`` row boundaries into ``ids``.
    ids:
        ``int32`` tag ids, unique and ascending within each row.
    vocab:
        Object array of tag strings; ``vocab[i]`` is the tag with id ``i``. It may hold
        tags that no row carries after :meth:`take`.
    usable:
        ``bool`` per row: the row's status is ``ok`` or ``truncated`` (every row when
        there is no status column). Rows that are not usable have no tags here, so a
        failed row is missing data rather than a row with zero tags.
    """

    offsets: np.ndarray
    ids: np.ndarray
    vocab: np.ndarray
    usable: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __repr__(self) -> str:
        return (f"TagSets(rows={len(self)}, usable={int(self.usable.sum())}, tags={int(self.ids.size)}, "
                f"vocab={len(self.vocab)})")

    @property
    def lengths(self) -> np.ndarray:
        """Tags per row (0 for rows that are not usable)."""
        return np.diff(self.offsets)

    @property
    def row_ids(self) -> np.ndarray:
        """The row of every entry of ``ids``."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def tags_of(self, row: int) -> list[str]:
        return self.vocab[self.ids[self.offsets[row]:self.offsets[row + 1]]].tolist()

    def tag_counts(self) -> np.ndarray:
        """Rows carrying each tag id (``len(vocab)`` entries)."""
        return np.bincount(self.ids, minlength=len(self.vocab))

    @property
    def counts(self) -> np.ndarray:
        """Rows carrying each tag id, as ``int64`` (the normalization steps' view of :meth:`tag_counts`)."""
        return self.tag_counts().astype(np.int64)

    @property
    def n_usable(self) -> int:
        """Rows that count as samples: fractions such as a frequency threshold are of this number."""
        return int(self.usable.sum())

    @property
    def matrix(self):
        """Rows x tags as a ``scipy.sparse.csr_matrix`` of ``int8`` ones, sharing ``offsets`` and ``ids``."""
        from scipy import sparse

        return sparse.csr_matrix((np.ones(self.ids.size, dtype=np.int8), self.ids, self.offsets),
                                 shape=(len(self), len(self.vocab)))

    def remap(self, target: np.ndarray, vocab: Sequence[str]) -> TagSets:
        """Tag id ``j`` becomes id ``target[j]`` of ``vocab`` (``-1``: dropped); merged tags count once per row."""
        target = np.asarray(target, dtype=np.int64)
        if target.shape != (len(self.vocab),):
            raise ValueError(f"target has {target.size} entries for a vocabulary of {len(self.vocab)}")
        codes = target[self.ids]
        keep = codes >= 0
        rows = np.repeat(np.arange(len(self), dtype=_row_dtype(len(self))), self.lengths)[keep]
        return TagSets._from_pairs(rows, codes[keep], np.asarray(list(vocab), dtype=object), self.usable)

    def tag_set(self) -> frozenset[str]:
        """The distinct tags the rows carry."""
        return frozenset(self.vocab[np.flatnonzero(self.tag_counts())].tolist())

    def to_lists(self) -> list[list[str]]:
        flat = self.vocab[self.ids].tolist()
        bounds = self.offsets.tolist()
        return [flat[bounds[i]:bounds[i + 1]] for i in range(len(self))]

    def take(self, rows: Sequence[int] | np.ndarray) -> TagSets:
        """The rows at ``rows`` (in that order), sharing this vocabulary."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        return TagSets(offsets, self.ids[gather], self.vocab, self.usable[rows])

    @classmethod
    def concat(cls, parts: Sequence[TagSets]) -> TagSets:
        """The rows of all ``parts`` one after another, over the union of their vocabularies."""
        if not parts:
            return cls.from_lists([])
        vocab = np.unique(np.concatenate([np.asarray(p.vocab, dtype=object) for p in parts]).astype(str))
        vocab = vocab.astype(object)
        ids = np.concatenate([np.searchsorted(vocab, p.vocab.astype(str))[p.ids] for p in parts])
        lengths = np.concatenate([p.lengths for p in parts])
        rows = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
        return cls._from_pairs(rows, ids.astype(np.int64), vocab, np.concatenate([p.usable for p in parts]))

    @classmethod
    def from_dataset(cls, ds, tags_column: str | None = None, status_column: str | None = schema.STATUS) -> TagSets:
        """Read a ``datasets.Dataset``.

        ``tags_column``: see :func:`resolve_tags_column`; ``instag_tags`` items
        (``{"tag", "explanation"}``) and ``instag_norm_tags`` strings are both understood.
        ``status_column``: rows whose status is not in ``schema.TAGGED_STATUSES`` are not
        usable; with ``None``, or when the default ``instag_status`` is absent, every row is usable.
        """
        column = resolve_tags_column(ds.column_names, tags_column)
        if status_column not in (None, schema.STATUS) and status_column not in ds.column_names:
            raise ValueError(f"status column {status_column!r} not found; the dataset has columns {ds.column_names}")
        table = ds.with_format("arrow")
        status = table[status_column] if status_column and status_column in ds.column_names else None
        return cls.from_arrow(table[column], status)

    @classmethod
    def from_arrow(cls, tags: pa.Array | pa.ChunkedArray, status: pa.Array | pa.ChunkedArray | None = None) -> TagSets:
        """From a list column (of tag strings or of ``{"tag", ...}`` structs) and an optional status column.

        Null and empty tags are dropped, duplicates within a row counted once.
        """
        chunks = tags.chunks if isinstance(tags, pa.ChunkedArray) else [tags]
        n = sum(len(c) for c in chunks)
        if status is not None:
            if len(status) != n:
                raise ValueError(f"status column has {len(status)} rows, tags column {n}")
            usable = pc.is_in(status, value_set=pa.array(sorted(schema.TAGGED_STATUSES))).fill_null(False)
            usable = np.asarray(usable.to_numpy(zero_copy_only=False), dtype=bool)
        else:
            usable = np.ones(n, dtype=bool)
        lengths, flats = [], []
        for chunk in chunks:
            length, flat = _flatten(chunk)
            lengths.append(length)
            flats.append(flat)
        lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        flat = pa.concat_arrays(flats) if flats else pa.array([], pa.string())
        keep = flat.is_valid()
        if len(flat):
            keep = pc.and_(keep, pc.greater(pc.binary_length(flat), 0)).fill_null(False)
        keep = np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)
        keep &= np.repeat(usable, lengths)
        rows = np.repeat(np.arange(n, dtype=_row_dtype(n)), lengths)  # 4 bytes per entry below 2**31 rows
        if not keep.all():
            flat = flat.filter(pa.array(keep))
            rows = rows[keep]
        del keep
        encoded = flat.dictionary_encode()
        del flat
        vocab = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        return cls._from_pairs(rows, codes, vocab, usable)

    @classmethod
    def from_lists(cls, rows: Iterable[Iterable[Any] | None], usable: Sequence[bool] | None = None) -> TagSets:
        """From Python rows of tag strings or ``{"tag": ...}`` dicts (``None`` is an empty row)."""
        names = [_row_names(row) for row in rows]
        status = None
        if usable is not None:
            if len(usable) != len(names):
                raise ValueError(f"usable has {len(usable)} entries for {len(names)} rows")
            status = pa.array([schema.OK if u else schema.PARSE_ERROR for u in usable])
        return cls.from_arrow(pa.array(names, type=pa.list_(pa.string())), status)

    @classmethod
    def _from_pairs(cls, rows: np.ndarray, codes: np.ndarray, vocab: np.ndarray, usable: np.ndarray) -> TagSets:
        """Rows from (row, tag id) pairs in any order, duplicates counted once; one int64 key per pair at a time."""
        n, size = len(usable), max(len(vocab), 1)
        key = rows.astype(np.int64)
        key *= size
        key += codes
        key.sort()  # in place
        if key.size:
            first = np.empty(key.size, dtype=bool)
            first[0] = True
            np.not_equal(key[1:], key[:-1], out=first[1:])
            if not first.all():
                key = key[first]
            del first
        ids = np.empty(key.size, dtype=np.int32)
        np.remainder(key, size, out=ids, casting="unsafe")
        key //= size  # now the row of every pair
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(key, minlength=n), out=offsets[1:])
        return cls(offsets, ids, vocab, usable)


def _row_dtype(n: int):
    """The narrowest integer type for row numbers below ``n`` (int32 up to 2**31 rows)."""
    return np.int32 if n < 2 ** 31 else np.int64


def _row_names(row) -> list | None:
    """The tag strings of one Python row; a bare string or dict is a mistake, not a row."""
    if row is None:
        return None
    if isinstance(row, (str, bytes, dict)) or not isinstance(row, Iterable):
        raise ValueError(f"each row must be a list of tags (strings or {{'tag': ...}} items), got {type(row).__name__}")
    names = [t.get("tag") if isinstance(t, dict) else t for t in row]
    bad = next((t for t in names if t is not None and not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"tags must be strings, got {type(bad).__name__} ({bad!r})")
    return names


def _flatten(chunk: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Row lengths and the flat tag strings of one list chunk."""
    typ = chunk.type
    if not (pa.types.is_list(typ) or pa.types.is_large_list(typ)):
        raise ValueError(f"a tags column must hold lists of tags, not {typ}")
    lengths = pc.list_value_length(chunk).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(chunk)
    value = typ.value_type
    if pa.types.is_struct(value):
        if value.get_field_index("tag") < 0:
            raise ValueError(f"tag items must have a 'tag' field; got {value}")
        flat = pc.struct_field(flat, "tag")
        value = flat.type
    if pa.types.is_large_string(value):
        flat = flat.cast(pa.string())
    elif not pa.types.is_string(value):
        if pa.types.is_null(value):
            flat = flat.cast(pa.string())
        else:
            raise ValueError(f"tags must be strings or {{'tag', 'explanation'}} items, not {value}")
    return lengths, flat


# --- pair counts in bounded memory: the sparse product X.T @ X in row chunks ----------------------
# Each chunk of rows becomes a small CSR matrix, multiplied with itself, cut to its strict upper
# triangle and added to a running total: memory grows with the distinct co-occurring pairs (plus one
# chunk), never with rows x tags. Association aggregation and the analysis' top pairs use it.

#: tag entries (row-tag pairs) per chunk: about 50 MB of working arrays per chunk
CHUNK_ENTRIES = 2_000_000


def pair_counts(offsets: np.ndarray, ids: np.ndarray, columns: np.ndarray, n_tags: int,
                chunk_entries: int = CHUNK_ENTRIES):
    """Rows holding both tags of every co-occurring pair among ``columns``.

    ``offsets``/``ids``: a CSR layout of tag sets (ids unique within a row); ``columns``:
    the ascending tag ids to count (others are ignored); ``n_tags``: the size of the id
    space. Returns ``(a, b, both)``: positions into ``columns`` with ``a < b`` and the
    number of rows holding both, one entry per pair that occurs at least once.
    """
    from scipy import sparse

    columns = np.asarray(columns, dtype=np.int64)
    k = len(columns)
    lookup = np.full(max(n_tags, 1), -1, dtype=np.int32)
    lookup[columns] = np.arange(k, dtype=np.int32)
    total = sparse.csr_matrix((k, k), dtype=np.int64)
    n_rows = len(offsets) - 1
    start = 0
    while start < n_rows:
        # rows [start, stop) hold about chunk_entries tags (at least one row)
        stop = int(np.searchsorted(offsets, offsets[start] + chunk_entries, side="right")) - 1
        stop = min(max(stop, start + 1), n_rows)
        total = total + _chunk_pairs(offsets[start:stop + 1], ids, lookup, k, sparse)
        start = stop
    upper = total.tocoo()
    return (upper.row.astype(np.int32), upper.col.astype(np.int32), upper.data.astype(np.int64))


def _chunk_pairs(bounds: np.ndarray, ids: np.ndarray, lookup: np.ndarray, k: int, sparse):
    """The strict upper triangle of ``X.T @ X`` for the rows between ``bounds[0]`` and ``bounds[-1]``."""
    local = lookup[ids[bounds[0]:bounds[-1]]]
    keep = local >= 0
    kept = np.zeros(len(local) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept[1:])
    rel = bounds - bounds[0]
    lengths = kept[rel[1:]] - kept[rel[:-1]]
    rows = lengths >= 2  # a row with fewer than two counted tags holds no pair
    if not rows.any():
        return sparse.csr_matrix((k, k), dtype=np.int64)
    entry_rows = np.repeat(rows, lengths)
    indices = local[keep][entry_rows]
    lengths = lengths[rows]
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    x = sparse.csr_matrix((np.ones(len(indices), dtype=np.int32), indices, indptr), shape=(len(lengths), k))
    product = (x.T.tocsr() @ x).tocoo()
    upper = product.row < product.col
    return sparse.csr_matrix((product.data[upper].astype(np.int64), (product.row[upper], product.col[upper])),
                             shape=(k, k))

def to_tagsets(data, tags_column: str | None = None, status_column: str | None = schema.STATUS) -> TagSets:
    """A :class:`TagSets` from a ``Dataset``, a ``TagSets``, or Python rows of tags."""
    if isinstance(data, TagSets):
        return data
    from datasets import Dataset, DatasetDict

    if isinstance(data, Dataset):
        return TagSets.from_dataset(data, tags_column, status_column)
    if isinstance(data, DatasetDict):
        raise ValueError(f"got a DatasetDict with splits {list(data)}; pass one split, e.g. ds['train']")
    if isinstance(data, (list, tuple)):
        return TagSets.from_lists(data)
    raise ValueError(f"expected a datasets.Dataset, a TagSets or a list of tag lists, not {type(data).__name__}")


def group_codes(data, column: str | Sequence | np.ndarray) -> tuple[np.ndarray, list]:
    """Integer group codes per row and the group labels, from a column name or one label per row."""
    if isinstance(column, str):
        if not hasattr(data, "column_names"):
            raise ValueError(f"a column name ({column!r}) needs a Dataset; pass one label per row instead")
        if column not in data.column_names:
            raise ValueError(f"column {column!r} not found; the dataset has columns {data.column_names}")
        values = data.with_format("arrow")[column]
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    else:
        values = pa.array(list(column))
    if len(values) != len(data):
        raise ValueError(f"got {len(values)} group labels for {len(data)} rows")
    encoded = values.dictionary_encode(null_encoding="encode")
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()
