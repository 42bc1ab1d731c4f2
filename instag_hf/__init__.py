"""instag_hf: InsTag open-set intention tagging for Hugging Face ``datasets``.

``ds.map(instag_hf.tag, batched=True)`` tags every user query of an SFT dataset.
"""

from __future__ import annotations

import logging
import os

from . import schema
from .redact import RedactingFilter
from .analysis.metrics import (
    Analysis,
    DatasetMetrics,
    analyze,
    complexity,
    coverage,
    dataset_metrics,
    diversity,
    recall_matrix,
    tag_recall,
    top_tags,
)
from .analysis.tagsets import TagSets
from .normalize import TagMapping, TagNormalizer
from .publish import InstagDatasetCard, push_to_hub, write_dataset_card
from .quality import LLMJudge, LocalTagModel, distill_dataset, evaluate_tags, tag_f1
from .reporting.report import render_html, render_markdown, write_report
from .samples import load_reference, load_sample
from .scoring import Scorer
from .selection import (
    LabelGraph,
    SelectionReport,
    StrategyComparison,
    compare_strategies,
    sample,
    select_indices,
    selection_report,
)
from .tagging.parsing import ParseResult, parse_tags
from .tagging.prompts import TEMPLATES, Prompt, Template, get_template
from .tagging.queries import QueryFormatError, detect_format
from .tagging.tagger import Tagger, TagStats, TurnResult
from .version import __version__


def _verbosity(value: str) -> int:
    """A logging level from ``INSTAG_HF_VERBOSITY``: a name (``info``, ``DEBUG``) or a number (``20``);
    INFO when unset or unreadable."""
    value = value.strip()
    if value.lstrip("-").isdigit():
        return int(value)
    level = logging.getLevelName(value.upper()) if value else logging.INFO
    return level if isinstance(level, int) else logging.INFO


_logger = logging.getLogger(__name__)
if not _logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("[instag_hf] %(message)s"))
    _handler.addFilter(RedactingFilter())
    _logger.addHandler(_handler)
    _logger.setLevel(_verbosity(os.environ.get("INSTAG_HF_VERBOSITY", "")))
    _logger.propagate = False

#: A ready tagger with the automatically chosen backend: ``ds.map(instag_hf.tag, batched=True)``.
tag = Tagger()
#: A ready scorer (Deita's prompts; the embedded stand-in model on a CPU): ``ds.map(instag_hf.score, batched=True)``.
score = Scorer()

__all__ = [
    "Tagger", "TagStats", "TurnResult", "tag", "parse_tags", "ParseResult", "Template", "Prompt",
    "TEMPLATES", "get_template", "detect_format", "QueryFormatError", "load_sample", "load_reference", "schema",
]
__all__ += [
    "TagSets", "analyze", "Analysis", "DatasetMetrics", "dataset_metrics", "diversity", "complexity", "coverage",
    "tag_recall", "recall_matrix", "top_tags", "write_report", "render_markdown", "render_html", "sample",
    "select_indices", "selection_report",
    "SelectionReport",
]
__all__ += ["LabelGraph", "compare_strategies", "StrategyComparison"]
__all__ += ["TagNormalizer", "TagMapping"]
__all__ += ["push_to_hub", "InstagDatasetCard", "write_dataset_card"]
__all__ += ["evaluate_tags", "tag_f1", "LLMJudge", "distill_dataset", "LocalTagModel"]
__all__ += ["Scorer", "score"]
