"""Per-sample tag sets as a sparse 0/1 matrix, the common currency of the normalization steps.

Rows are samples, columns are tags. A step maps each column to a new column (or to
nothing); :meth:`TagCorpus.remap` applies that with one sparse product, so sample
counts stay exact (two merged tags in one sample count once) at any scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema

ARROW_BATCH_ROWS = 100_000


@dataclass
class TagCorpus:
    """``vocab[j]`` is the text of column ``j``; ``matrix`` is samples x tags (CSR, int8 0/1)."""

    vocab: list[str]
    matrix: Any  # scipy.sparse.csr_matrix

    @property
    def n_samples(self) -> int:
        return self.matrix.shape[0]

    @property
    def counts(self) -> np.ndarray:
        """Samples holding each tag."""
        return np.asarray(self.matrix.sum(axis=0)).ravel().astype(np.int64)

    def remap(self, target: np.ndarray, vocab: Sequence[str]) -> "TagCorpus":
        """Column ``j`` becomes column ``target[j]`` of the new vocabulary (``-1``: dropped)."""
        from scipy import sparse

        target = np.asarray(target, dtype=np.int64)
        keep = np.flatnonzero(target >= 0)
        assign = sparse.csr_matrix(
            (np.ones(len(keep), dtype=np.int8), (keep, target[keep])), shape=(len(target), len(vocab))
        )
        merged = (self.matrix @ assign).tocsr()
        merged.data[:] = 1
        merged.eliminate_zeros()
        return TagCorpus(list(vocab), merged.astype(np.int8))

    @classmethod
    def from_codes(cls, row_lengths: np.ndarray, codes: np.ndarray, vocab: list[str]) -> "TagCorpus":
        from scipy import sparse

        rows = np.repeat(np.arange(len(row_lengths), dtype=np.int64), row_lengths)
        matrix = sparse.csr_matrix(
            (np.ones(len(codes), dtype=np.int8), (rows, codes)), shape=(len(row_lengths), len(vocab))
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1
        return cls(vocab, matrix)


def _tag_strings(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Per-row lengths and the flat tag strings of a ``list<struct<tag,...>>`` or ``list<string>`` column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(column)
    if pa.types.is_struct(flat.type):
        flat = pc.struct_field(flat, "tag")
    elif not (pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type) or pa.types.is_null(flat.type)):
        raise ValueError(f"tag column must hold lists of {{'tag', 'explanation'}} items or strings, not {column.type}")
    return lengths, flat.cast(pa.string())


class _Encoder:
    """Interns tag strings into integer codes, batch by batch."""

    def __init__(self) -> None:
        self.vocab: list[str] = []
        self._index: dict[str, int] = {}
        self.lengths: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []

    def add(self, lengths: np.ndarray, flat: pa.Array) -> None:
        valid = pc.is_valid(flat)
        if pc.sum(pc.invert(valid)).as_py():  # null tag strings: drop them, shorten their rows
            rows = np.repeat(np.arange(len(lengths)), lengths)
            mask = valid.to_numpy(zero_copy_only=False)
            lengths = np.bincount(rows[mask], minlength=len(lengths))
            flat = flat.filter(valid)
        encoded = pc.dictionary_encode(flat)
        local = encoded.dictionary.to_pylist()
        remap = np.empty(len(local), dtype=np.int64)
        for i, text in enumerate(local):
            code = self._index.get(text)
            if code is None:
                code = self._index[text] = len(self.vocab)
                self.vocab.append(text)
            remap[i] = code
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        self.lengths.append(np.asarray(lengths, dtype=np.int64))
        self.codes.append(remap[indices] if len(indices) else np.empty(0, dtype=np.int64))

    def corpus(self) -> TagCorpus:
        lengths = np.concatenate(self.lengths) if self.lengths else np.empty(0, dtype=np.int64)
        codes = np.concatenate(self.codes) if self.codes else np.empty(0, dtype=np.int64)
        return TagCorpus.from_codes(lengths, codes, self.vocab)


def read_dataset(
    ds, tags_column: str = schema.TAGS, status_column: str | None = schema.STATUS, progress: bool = False
) -> tuple[TagCorpus, int]:
    """A :class:`TagCorpus` of a ``Dataset`` and the number of rows skipped for their status.

    Only rows whose ``status_column`` value is in :data:`schema.TAGGED_STATUSES` count
    (when the column exists): a failed row is missing data, not a sample without tags.
    """
    if tags_column not in ds.column_names:
        raise ValueError(
            f"column {tags_column!r} not found (columns: {ds.column_names}); tag the dataset first "
            f"or pass tags_column="
        )
    columns = [tags_column] + ([status_column] if status_column and status_column in ds.column_names else [])
    encoder, skipped = _Encoder(), 0
    bar = _bar(len(ds), "Reading tags", "row", progress)
    try:
        for table in ds.select_columns(columns).with_format("arrow").iter(batch_size=ARROW_BATCH_ROWS):
            rows = table.num_rows
            if len(columns) == 2:
                usable = pc.fill_null(
                    pc.is_in(table.column(status_column), value_set=pa.array(sorted(schema.TAGGED_STATUSES))), False
                )
                table = table.filter(usable)
                skipped += rows - table.num_rows
            encoder.add(*_tag_strings(table.column(tags_column)))
            bar.update(rows)
    finally:
        bar.close()
    return encoder.corpus(), skipped


def read_iterable(samples: Iterable[Iterable[Any]]) -> TagCorpus:
    """A :class:`TagCorpus` of tag lists (strings or ``{"tag": ...}`` items), one list per sample."""
    encoder = _Encoder()
    lengths: list[int] = []
    flat: list[str] = []
    for sample in samples:
        if isinstance(sample, (str, bytes)) or isinstance(sample, dict):
            raise ValueError("each sample must be a list of tags (strings or {'tag': ...} items), "
                             f"got {type(sample).__name__}")
        names = [t["tag"] if isinstance(t, dict) else t for t in (sample or [])]
        names = [n for n in names if isinstance(n, str)]
        lengths.append(len(names))
        flat.extend(names)
    encoder.add(np.asarray(lengths, dtype=np.int64), pa.array(flat, type=pa.string()))
    return encoder.corpus()


def _bar(total: int, desc: str, unit: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False)
