"""Diversity and complexity of a tagged dataset (instag-facts.md, section 3)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterable

from . import schema


def _tag_names(value) -> list[str]:
    """Tag titles from an ``instag_tags`` cell (items) or an ``instag_norm_tags`` cell (strings)."""
    return [v["tag"] if isinstance(v, dict) else v for v in value or []]


@dataclass
class TagSummary:
    """What a tagging run produced.

    ``complexity`` and the tag counts use only rows whose status is usable
    (``ok`` or ``truncated``): a failed row is missing data, not a row with zero tags.
    """

    rows: int
    tagged_rows: int
    statuses: dict[str, int]
    diversity: int
    complexity: float
    top_tags: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok_rate(self) -> float:
        return self.tagged_rows / self.rows if self.rows else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "ok_rate": self.ok_rate}

    def to_text(self) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        top = ", ".join(f"{t} ({n})" for t, n in self.top_tags[:10])
        return (
            f"rows: {self.rows}  tagged: {self.tagged_rows} ({self.ok_rate:.1%})  statuses: {statuses}\n"
            f"diversity (unique tags): {self.diversity}  complexity (tags per tagged sample): {self.complexity:.2f}\n"
            f"top tags: {top or '-'}"
        )


def summarize(tags: Iterable, statuses: Iterable[str], top: int = 20) -> TagSummary:
    """Summary of parallel ``tags`` and ``statuses`` columns."""
    counts: Counter = Counter()
    status_counts: Counter = Counter()
    rows = tagged = total = 0
    for value, status in zip(tags, statuses):
        rows += 1
        status_counts[status] += 1
        if status not in schema.TAGGED_STATUSES:
            continue
        names = set(_tag_names(value))
        tagged += 1
        total += len(names)
        counts.update(names)
    return TagSummary(
        rows=rows,
        tagged_rows=tagged,
        statuses=dict(status_counts),
        diversity=len(counts),
        complexity=total / tagged if tagged else 0.0,
        top_tags=counts.most_common(top),
    )


def summarize_dataset(ds, tags_column: str = schema.TAGS, top: int = 20) -> TagSummary:
    """:func:`summarize` over a tagged ``Dataset``."""
    return summarize(ds[tags_column], ds[schema.STATUS], top=top)
