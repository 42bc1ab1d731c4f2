"""Tag normalization (InsTag paper, section 2.2): raw open-set tags -> canonical tags.

``mapping = TagNormalizer(preset="paper").fit(ds)`` then ``mapping.map(ds)`` (or
``ds.map(mapping, batched=True)``) adds ``instag_norm_tags``. Each step is also a
class of its own. Heavy libraries (FAISS, scikit-learn, mlxtend,
sentence-transformers) load only when a step runs.
"""

from __future__ import annotations

from .association import AssociationAggregator
from ..embeddings import DEFAULT_MODEL, EmbeddingCache, SentenceTransformerEmbedder
from .frequency import FrequencyFilter
from .mapping import TagMapping
from .normalizer import PRESETS, TagNormalizer
from .report import NormalizationReport, StageReport
from .rules import RuleAggregator
from .semantic import SemanticAggregator

__all__ = [
    "TagNormalizer", "TagMapping", "NormalizationReport", "StageReport", "FrequencyFilter", "RuleAggregator",
    "SemanticAggregator", "AssociationAggregator", "SentenceTransformerEmbedder", "EmbeddingCache",
    "DEFAULT_MODEL", "PRESETS",
]


def __getattr__(name: str):
    if name == "TagCorpus":  # the normalization steps now read the one tag-set type of the package
        import warnings

        from ..analysis.tagsets import TagSets

        warnings.warn("instag_hf.normalize.TagCorpus is now instag_hf.TagSets", DeprecationWarning, stacklevel=2)
        return TagSets
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
