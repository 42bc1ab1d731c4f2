"""Selection: subsets of a tagged dataset (complexity-first diverse sampling, baselines,
quotas) and the report that compares a subset with its pool."""

from .report import SelectionReport, selection_report
from .sampling import sample, select_indices

__all__ = ["sample", "select_indices", "selection_report", "SelectionReport"]
