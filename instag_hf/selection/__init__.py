"""Selection: subsets of a tagged dataset (complexity-first diverse sampling, MIG over a label
graph, baselines, quotas), the report that compares a subset with its pool, and strategies
compared side by side."""

from .compare import StrategyComparison, StrategyResult, compare_strategies
from .label_graph import LabelGraph
from .options import SelectionOptions
from .report import SelectionReport, selection_report
from .sampling import sample, select_indices

__all__ = ["sample", "select_indices", "selection_report", "SelectionReport", "SelectionOptions", "LabelGraph",
           "compare_strategies", "StrategyComparison", "StrategyResult"]
