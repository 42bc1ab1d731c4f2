"""``TagNormalizer``: the paper's four normalization steps as one fit/transform object."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Iterable, Iterator

import numpy as np

from .. import schema
from ..analysis.tagsets import TagSets
from .association import AssociationAggregator
from .base import StepResult, drop_empty, largest_groups
from ..embeddings import Embedder, describe
from .frequency import PAPER_SAMPLES, FrequencyFilter
from .mapping import TagMapping
from .report import NormalizationReport, StageReport
from .rules import RuleAggregator
from .semantic import SemanticAggregator

logger = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, Any]] = {
    # the paper's settings, as absolute counts
    "paper": {"alpha": 20, "eps": 0.05, "min_samples": 2, "min_support": 40, "min_confidence": 0.99},
    # alpha as the paper's fraction (20 of 306,044 samples): how much noise there is grows with the
    # corpus; min_support stays 40 samples: how much evidence a rule needs does not
    "scaled": {"alpha": 20 / PAPER_SAMPLES, "eps": 0.05, "min_samples": 2, "min_support": 40,
               "min_confidence": 0.99},
}
STEPS = ("frequency", "rules", "semantic", "association")


class TagNormalizer:
    """Turns raw open-set tags into canonical tags: frequency filtering, rule, semantic and association aggregation.

    ``fit(ds)`` returns a :class:`TagMapping`; ``transform(ds)`` (or ``mapping.map(ds)``)
    adds ``instag_norm_tags``. The steps run in the paper's order, each on the output
    of the one before, and each can be switched off.

    Parameters
    ----------
    preset:
        ``"paper"`` (alpha 20, eps 0.05, min_samples 2, min_support 40 as counts,
        min_confidence 0.99) or ``"scaled"``, for corpora much smaller or larger than the
        paper's: alpha becomes its fraction of the paper's 306,044 samples (rare-tag noise
        grows with the corpus) while min_support stays 40 samples (the evidence a rule
        needs does not; a fraction of a small corpus would accept rules seen once). Any
        parameter given explicitly overrides the preset.
    frequency, rules, semantic, association:
        Run this step (default: all).
    alpha:
        Frequency filter: drop raw tags held by fewer samples (``int``) or by a smaller
        fraction of the tagged samples (``float`` in (0, 1)).
    lowercase, strip_special, keep_chars, keep_leading, lemmatize, rule_label:
        Rule aggregation, see :class:`RuleAggregator`.
    eps, min_samples, embedder, index, approximate_above, nprobe, embedding_cache_dir, device:
        Semantic aggregation, see :class:`SemanticAggregator`. ``eps`` is a cosine
        distance: 0.05 merges tags whose embeddings have similarity >= 0.95.
    min_support, min_confidence, max_len:
        Association aggregation, see :class:`AssociationAggregator`; ``min_support``
        is a count (``int``) or a fraction (``float``).
    tags_column, status_column:
        Where tags are read. Rows whose status is not ``ok``/``truncated`` are not counted.
    unknown:
        How the fitted mapping treats tags it never saw (see :class:`TagMapping`).
    progress:
        Show a progress bar for each step.
    """

    def __init__(self, preset: str | None = "paper", *, frequency: bool = True, rules: bool = True,
                 semantic: bool = True, association: bool = True, alpha: int | float | None = None,
                 lowercase: bool = True, strip_special: bool = True, keep_chars: str = "+#", keep_leading: str = ".",
                 lemmatize: bool = True,
                 rule_label: str = "lemma", eps: float | None = None, min_samples: int | None = None,
                 embedder: str | Embedder | None = None, index: str = "auto", approximate_above: int = 50_000,
                 nprobe: int = 16, embedding_cache_dir: str | os.PathLike | None = None,
                 use_embedding_cache: bool = True, device: str | None = None, min_support: int | float | None = None,
                 min_confidence: float | None = None, max_len: int | None = 2, tags_column: str = schema.TAGS,
                 status_column: str | None = schema.STATUS, unknown: str = "drop", progress: bool = True):
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)} or None, got {preset!r}")
        base = PRESETS[preset or "paper"]
        given = {"alpha": alpha, "eps": eps, "min_samples": min_samples, "min_support": min_support,
                 "min_confidence": min_confidence}
        values = {k: base[k] if v is None else v for k, v in given.items()}
        if unknown not in ("drop", "keep", "rules"):
            raise ValueError(f"unknown must be 'drop', 'keep' or 'rules', got {unknown!r}")
        self.preset = preset
        self.enabled = {"frequency": bool(frequency), "rules": bool(rules), "semantic": bool(semantic),
                        "association": bool(association)}
        self.frequency_filter = FrequencyFilter(values["alpha"])
        self.rule_aggregator = RuleAggregator(lowercase=lowercase, strip_special=strip_special,
                                              keep_chars=keep_chars, keep_leading=keep_leading, lemmatize=lemmatize,
                                              label=rule_label)
        self.semantic_aggregator = SemanticAggregator(
            eps=values["eps"], min_samples=values["min_samples"], embedder=embedder, index=index,
            approximate_above=approximate_above, nprobe=nprobe, embedding_cache_dir=embedding_cache_dir,
            use_cache=use_embedding_cache, device=device)
        self.association_aggregator = AssociationAggregator(values["min_support"], values["min_confidence"], max_len)
        self.tags_column, self.status_column, self.unknown, self.progress = tags_column, status_column, unknown, progress
        self.mapping_: TagMapping | None = None

    @property
    def steps(self) -> list:
        return [self.frequency_filter, self.rule_aggregator, self.semantic_aggregator, self.association_aggregator]

    def get_params(self) -> dict[str, Any]:
        """The settings, as recorded in the mapping and its report."""
        sem, assoc = self.semantic_aggregator, self.association_aggregator
        return {
            "preset": self.preset, "steps": dict(self.enabled), "alpha": self.frequency_filter.alpha,
            "rules": self.rule_aggregator.get_params(),
            "eps": sem.eps, "min_samples": sem.min_samples, "embedder": describe(sem.embedder), "index": sem.index,
            "approximate_above": sem.approximate_above, "nprobe": sem.nprobe,
            "min_support": assoc.min_support, "min_confidence": assoc.min_confidence, "max_len": assoc.max_len,
            "tags_column": self.tags_column, "status_column": self.status_column,
        }

    def __repr__(self) -> str:
        off = [k for k, v in self.enabled.items() if not v]
        return (f"TagNormalizer(preset={self.preset!r}, alpha={self.frequency_filter.alpha!r}, "
                f"eps={self.semantic_aggregator.eps}, min_support={self.association_aggregator.min_support!r}"
                + (f", off={off}" if off else "") + ")")

    # --- fit -------------------------------------------------------------------------
    def read(self, data) -> tuple[TagSets, int]:
        """The per-sample tag sets of a ``Dataset`` or an iterable of tag lists, and the rows skipped.

        Rows count by :class:`~instag_hf.analysis.tagsets.TagSets`' one rule: a failed row is
        skipped (it is missing data), a usable row without tags is a sample.
        """
        from datasets import Dataset

        if isinstance(data, TagSets):
            ts = data
        elif isinstance(data, Dataset):
            if self.tags_column not in data.column_names:
                raise ValueError(f"column {self.tags_column!r} not found (columns: {data.column_names}); tag the "
                                 "dataset first or pass tags_column=")
            status = self.status_column if self.status_column in data.column_names else None
            ts = TagSets.from_dataset(data, self.tags_column, status)
        elif isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
            raise ValueError("fit expects a Dataset with an instag_tags column or an iterable of tag lists, "
                             f"got {type(data).__name__}")
        else:
            ts = TagSets.from_lists(list(data))
        return ts, len(ts) - ts.n_usable

    def fit(self, data) -> TagMapping:
        """Learn the mapping from a tagged ``Dataset`` (or tag lists); returns it and keeps it as ``mapping_``."""
        for _ in self.iter_fit(data):
            pass
        assert self.mapping_ is not None
        return self.mapping_

    def iter_fit(self, data) -> Iterator[tuple[StageReport, TagSets]]:
        """:meth:`fit`, one step at a time: yields each step's report and output corpus as it finishes.

        For inspecting or measuring the steps; ``mapping_`` is set when the iteration ends.
        """
        from tqdm.auto import tqdm

        self.mapping_ = None
        corpus, skipped = self.read(data)
        raw_vocab, raw_counts = corpus.vocab, corpus.counts
        logger.info("normalizing %s raw tags of %s tagged samples", f"{len(raw_vocab):,}", f"{corpus.n_usable:,}")
        # position of every raw tag in the current vocabulary (-1: dropped), and its text after each step
        position = np.arange(len(raw_vocab), dtype=np.int64)
        after: dict[str, np.ndarray] = {}
        vocabs: dict[str, list[str]] = {}
        stages: list[StageReport] = []
        bar = tqdm(total=len(STEPS), desc="Tag normalization", unit="step", disable=not self.progress)
        try:
            for step in self.steps:
                bar.set_postfix_str(step.title)
                before = corpus
                t0 = time.perf_counter()
                if self.enabled[step.name] and len(before.vocab):
                    result = step.fit(before, progress=self.progress)
                else:
                    result = StepResult.identity(before.vocab)
                result, blank = drop_empty(result)  # no step may leave an empty tag, whatever it is
                changed = self.enabled[step.name] or blank
                corpus = before.remap(result.target, result.vocab) if changed else before
                seconds = time.perf_counter() - t0
                if len(result.target):
                    position = np.where(position >= 0, result.target[np.maximum(position, 0)], -1)
                else:  # an earlier step left no tag
                    position = np.full_like(position, -1)
                after[step.name] = position.copy()
                vocabs[step.name] = corpus.vocab
                stages.append(self._stage_report(step, before, corpus, result, seconds))
                if stages[-1].stats.get("warning"):
                    logger.warning("%s", stages[-1].stats["warning"])
                bar.update(1)
                logger.debug("%s: %d -> %d tags in %.1fs", step.title, len(before.vocab), len(corpus.vocab), seconds)
                yield stages[-1], corpus
        finally:
            bar.close()
        mapping = self._mapping(raw_vocab, raw_counts, corpus, after, vocabs)
        mapping.report = NormalizationReport(
            samples=corpus.n_usable, skipped_rows=skipped, raw_tags=len(raw_vocab), final_tags=len(corpus.vocab),
            stages=stages, params=self.get_params(),
            warnings=[s.stats["warning"] for s in stages if s.stats.get("warning")])
        self.mapping_ = mapping

    def _stage_report(self, step, before: TagSets, after: TagSets, result: StepResult,
                      seconds: float) -> StageReport:
        enabled = self.enabled[step.name]
        counts = before.counts
        merges: list = []
        dropped = np.flatnonzero(result.target < 0)
        dropped = dropped[np.lexsort((dropped, -counts[dropped]))][:10]
        examples: list = [(before.vocab[j], None) for j in dropped]  # dropped first: the frequency filter's only
        if enabled and step.name != "frequency":
            merges = largest_groups(result.target, before.vocab, result.vocab, counts)
            changed = [j for j in np.argsort(-counts, kind="stable")
                       if result.target[j] >= 0 and result.vocab[result.target[j]] != before.vocab[j]]
            examples += [(before.vocab[j], result.vocab[result.target[j]]) for j in changed[:10 - len(examples)]]
        stats = result.stats if enabled else {k: v for k, v in result.stats.items() if k == "dropped_empty_tags"}
        return StageReport(name=step.name, title=step.title, enabled=enabled, tags_before=len(before.vocab),
                           tags_after=len(after.vocab), seconds=seconds, merges=merges, examples=examples,
                           stats=_plain(stats))

    def _mapping(self, raw_vocab: list[str], raw_counts: np.ndarray, final: TagSets,
                 after: dict[str, np.ndarray], vocabs: dict[str, list[str]]) -> TagMapping:
        # the text of each raw tag after a step: the step's output vocabulary, indexed by position
        texts: dict[str, list[str | None]] = {}
        for name in STEPS:
            vocab, pos = vocabs[name], after[name]
            texts[name] = [vocab[p] if p >= 0 else None for p in pos.tolist()]
        stage = []
        for i, raw in enumerate(raw_vocab):
            if texts["association"][i] is None:  # the frequency filter, or nothing left after the rules
                stage.append("dropped")
                continue
            last = "unchanged"
            previous = raw
            for name in ("rules", "semantic", "association"):
                if texts[name][i] != previous:
                    last = name
                previous = texts[name][i]
            stage.append(last)
        columns = {
            "raw_tag": list(raw_vocab), "count": raw_counts.tolist(), "rule_tag": texts["rules"],
            "semantic_tag": texts["semantic"], "canonical_tag": texts["association"], "stage": stage,
        }
        counts = final.counts.tolist()
        return TagMapping(columns, canonical_counts=dict(zip(final.vocab, counts)), params=self.get_params(),
                          unknown=self.unknown, tags_column=self.tags_column)

    def transform(self, dataset, **map_kwargs):
        """Add ``instag_norm_tags`` with the fitted mapping (``mapping_.map``)."""
        if self.mapping_ is None:
            raise ValueError("this TagNormalizer is not fitted yet: call fit(ds) first")
        return self.mapping_.map(dataset, **map_kwargs)

    def fit_transform(self, dataset, **map_kwargs):
        self.fit(dataset)
        return self.transform(dataset, **map_kwargs)


def _plain(value: Any) -> Any:
    """JSON-ready copies of step statistics (numpy scalars become Python numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
