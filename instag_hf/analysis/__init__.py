"""Analysis: tag sets of a tagged dataset, and the InsTag metrics over them (diversity,
complexity, coverage, tag recall between datasets)."""

from .metrics import (
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
from ..strict_json import write_json
from .tagsets import TagSets

__all__ = ["TagSets", "Analysis", "DatasetMetrics", "analyze", "complexity", "coverage", "dataset_metrics",
           "diversity", "recall_matrix", "tag_recall", "top_tags", "write_json"]
