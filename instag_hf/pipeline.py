"""The whole InsTag pipeline on a few datasets: tag, normalize, analyze, select, card.

``instag demo`` runs it on the bundled sample with the embedded default. The output
folder holds the tagged pool (``save_to_disk`` + JSONL), the tag mapping and its
stage report, the analysis report with plots, the selected subset and its report,
and (in ``hub/``) the card, plots and parquet configs exactly as ``instag push`` would upload them.

The demo does not score rows: Deita's two prompts on the embedded SmolLM2 take 1 to 3 s a
row on CPU, minutes for the sample, and a 135M model is no Deita scorer. To run MIG with
scores, pass ``scorer=instag_hf.Scorer(backend=..., model=...)`` to :func:`run_pipeline`
(or score the data first, ``ds.map(instag_hf.score, batched=True)``): the pool gets
``instag_score``, ``mig`` weighs rows by it, the comparison adds ``mig-unscored`` (every
score 1) beside it, and the card gains its *Scores* section.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

from . import schema
from .strict_json import write_json

logger = logging.getLogger(__name__)

#: the demo pool is tiny: keep every tag seen once, merge pairs seen together 3+ times
DEMO_NORMALIZER = {"preset": "paper", "alpha": 1, "min_support": 3}


def as_messages(dataset, source: str):
    """A dataset in chat ``messages`` layout plus a ``source`` column (tag columns kept)."""
    from .tagging.queries import detect_format

    fmt = detect_format(dataset.column_names)
    kept = [c for c in dataset.column_names if c in schema.TAG_FEATURES or c == "category"]

    def convert(row):
        if fmt.kind == "messages":
            messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        else:
            answer = row.get("output") or row.get("response") or ""
            messages = [{"role": "user", "content": fmt.extract(row)[0]}, {"role": "assistant", "content": answer}]
        return {"messages": messages, "source": source}

    drop = [c for c in dataset.column_names if c not in kept]
    return dataset.map(convert, remove_columns=drop, desc=f"Collecting {source}")


def run_pipeline(datasets: Mapping[str, object], output: str | Path, tagger, *, select: int = 50,
                 strategy: str = "cfd", seed: int = 0, normalizer=None, scorer=None) -> dict[str, Path]:
    """Run every step and write its results under ``output``; returns what was written where.

    ``scorer``: an :class:`~instag_hf.Scorer` that scores the pool (None: no scores, unless
    the datasets have them); with scores the comparison shows MIG with and without them.
    """
    from datasets import concatenate_datasets

    from .analysis.metrics import analyze
    from .normalize import TagNormalizer
    from .publish import write_publication
    from .reporting.report import render_markdown, write_report
    from .reporting.compare_plots import write_comparison
    from .selection.compare import MIG_UNSCORED, compare_strategies
    from .selection.params import COMPARED
    from .selection.sampling import sample

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    # the request cache makes a rerun cheap; skipping datasets' own cache keeps the run's counters true
    parts = [as_messages(tagger.map(ds, desc=f"Tagging {name}", load_from_cache_file=False), name)
             for name, ds in datasets.items()]
    pool = concatenate_datasets(parts)
    if scorer is not None:
        pool = scorer.map(pool, desc="Scoring", load_from_cache_file=False)

    normalizer = normalizer or TagNormalizer(**DEMO_NORMALIZER)
    mapping = normalizer.fit(pool)
    pool = mapping.map(pool)
    written = {"tagged": out / "tagged", "tagged_jsonl": out / "tagged.jsonl", "mapping": out / "tag_mapping.json",
               "normalization": out / "normalization.md", "report": out / "report", "selected": out / "selected",
               "selected_jsonl": out / "selected.jsonl", "selection": out / "selection.md", "card": out / "hub",
               "summary": out / "summary.json"}
    pool.save_to_disk(str(written["tagged"]))
    pool.to_json(str(written["tagged_jsonl"]), lines=True, force_ascii=False)
    mapping.save(written["mapping"])
    if mapping.report is not None:
        written["normalization"].write_text(mapping.report.to_markdown())
    else:
        written.pop("normalization")

    analysis = analyze(pool, source_column="source")
    write_report(analysis, written["report"])

    subset, selection = sample(pool, min(select, len(pool)), strategy=strategy, seed=seed, return_report=True)
    subset.save_to_disk(str(written["selected"]))
    subset.to_json(str(written["selected_jsonl"]), lines=True, force_ascii=False)
    written["selection"].write_text(render_markdown(selection))
    scored = schema.SCORE in pool.column_names
    strategies = (*COMPARED, MIG_UNSCORED) if scored else COMPARED
    comparison = compare_strategies(pool, min(select, len(pool)), strategies, seed=seed)
    written["comparison"] = out / "comparison"
    write_comparison(comparison, written["comparison"])

    write_publication(written["card"], pool, tagger=tagger, mapping=mapping, overwrite=True,
                      subsets={f"selected_{strategy}_{len(subset)}": (subset, selection)}, comparison=comparison,
                      scorer=scorer, pretty_name="instag_hf demo: the bundled sample, tagged")
    summary = {"tagger": tagger.describe(), "stats": tagger.stats.as_dict(), "backend_stats": tagger.configured_backend.stats(),
               "rows": len(pool), "selected": len(subset), "analysis": analysis.as_dict()}
    if scorer is not None:
        summary["scorer"] = {"settings": scorer.describe(), "stats": scorer.stats.as_dict()}
    write_json(written["summary"], summary, default=str)
    return written
