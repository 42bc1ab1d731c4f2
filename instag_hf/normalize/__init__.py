"""Tag normalization (InsTag paper, section 2.2): raw open-set tags -> canonical tags.

``mapping = TagNormalizer(preset="paper").fit(ds)`` then ``mapping.map(ds)`` (or
``ds.map(mapping, batched=True)``) adds ``instag_norm_tags``. Each step is also a
class of its own. Heavy libraries (FAISS, scikit-learn, mlxtend,
sentence-transformers) load only when a step runs.
"""

from __future__ import annotations

from .association import AssociationAggregator
from .corpus import TagCorpus
from .embeddings import DEFAULT_MODEL, EmbeddingCache, SentenceTransformerEmbedder
from .frequency import FrequencyFilter
from .mapping import TagMapping
from .normalizer import PRESETS, TagNormalizer
from .report import NormalizationReport, StageReport
from .rules import RuleAggregator
from .semantic import SemanticAggregator

__all__ = [
    "TagNormalizer", "TagMapping", "NormalizationReport", "StageReport", "FrequencyFilter", "RuleAggregator",
    "SemanticAggregator", "AssociationAggregator", "SentenceTransformerEmbedder", "EmbeddingCache", "TagCorpus",
    "DEFAULT_MODEL", "PRESETS",
]
