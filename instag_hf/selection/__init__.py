"""Selection: subsets of a tagged dataset (complexity-first diverse sampling, baselines,
quotas) and the report that compares a subset with its pool."""

from .sampling import SelectionReport, sample, select_indices, selection_report

__all__ = ["sample", "select_indices", "selection_report", "SelectionReport"]
