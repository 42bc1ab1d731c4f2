"""Tag quality and distillation (InsTag paper, section 2.3; docs/architecture.md).

- :func:`evaluate_tags` / :func:`tag_f1`: exact and fuzzy precision, recall and F1
  of a tagger against reference tags (micro, macro, per tag).
- :class:`LLMJudge`: LLM-judged precision and consistency on a seeded sample.
- :func:`distill_dataset`: teacher tags as SFT conversations (Vicuna v1.1, ChatML).
- :class:`LocalTagModel`: a fast closed-vocabulary tagger, served by the ``local`` backend.
- :func:`score_tagger`: a tagger's F1, tags per query and speed on the bundled reference set.

Heavy libraries (sentence-transformers, scipy) load only when used.
"""

from __future__ import annotations

from .distill import DistillReport, distill_dataset, finetune_command, save_distill
from .f1 import PRF, MatchScores, TagEvalReport, TagScore, evaluate_tags, tag_f1
from .judge import LLMJudge, make_judge_backend
from .judge_prompts import JUDGE_TEMPLATES, JudgeTemplate, get_judge_template
from .judge_stats import JudgeCase, JudgeResult, JudgeSummary, wilson_interval
from .local_model import LocalTagModel
from .matching import fuzzy_pairs, normalize_tag
from .reference import score_tagger
from .verdicts import parse_verdict

__all__ = [
    "evaluate_tags", "tag_f1", "TagEvalReport", "MatchScores", "TagScore", "PRF", "normalize_tag", "fuzzy_pairs",
    "LLMJudge", "JudgeResult", "JudgeCase", "JudgeSummary", "JudgeTemplate", "JUDGE_TEMPLATES",
    "get_judge_template", "parse_verdict", "wilson_interval", "make_judge_backend",
    "distill_dataset", "save_distill", "finetune_command", "DistillReport",
    "LocalTagModel", "score_tagger",
]
