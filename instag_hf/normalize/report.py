"""What each normalization step did: tags before and after, the largest merges, examples."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def _lists(value: Any) -> Any:
    """Tuples become lists, as they would through JSON, so a report equals its reloaded self."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


@dataclass
class StageReport:
    """One step: ``merges`` are ``(new tag, [old tags])``, largest first; ``examples`` are ``(old, new)``."""

    name: str
    title: str
    enabled: bool
    tags_before: int
    tags_after: int
    seconds: float = 0.0
    merges: list[tuple[str, list[str]]] = field(default_factory=list)
    examples: list[tuple[str, str | None]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return _lists(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "StageReport":
        data = dict(data)
        data["merges"] = [(t, list(m)) for t, m in data.get("merges", [])]
        data["examples"] = [tuple(e) for e in data.get("examples", [])]
        return cls(**data)


@dataclass
class NormalizationReport:
    """The per-stage record of one :meth:`TagNormalizer.fit`; ``warnings``: what looks wrong (e.g. an alpha
    that drops nearly every tag), also logged."""

    samples: int
    skipped_rows: int
    raw_tags: int
    final_tags: int
    stages: list[StageReport]
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def dropped_tags(self) -> int:
        """Raw tags mapped to no canonical tag: below the frequency filter's alpha, or nothing left after the rules."""
        return sum(int(s.stats.get("dropped_tags", 0)) + int(s.stats.get("dropped_empty_tags", 0))
                   for s in self.stages)

    def __getitem__(self, name: str) -> StageReport:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r}; stages: {[s.name for s in self.stages]}")

    def as_dict(self) -> dict:
        return _lists({**asdict(self), "stages": [s.as_dict() for s in self.stages]})

    @classmethod
    def from_dict(cls, data: dict) -> "NormalizationReport":
        data = dict(data)
        data["stages"] = [StageReport.from_dict(s) for s in data.get("stages", [])]
        return cls(**data)

    def to_markdown(self, merges: int = 10, examples: int = 10) -> str:
        lines = [
            "# Tag normalization report",
            "",
            f"{self.samples:,} tagged samples ({self.skipped_rows:,} rows skipped for their status); "
            f"{self.raw_tags:,} raw tags -> {self.final_tags:,} canonical tags ({self.dropped_tags:,} raw tags "
            "dropped).",
            "",
            *(line for w in self.warnings for line in (f"> **Warning:** {_cell(w)}", "")),
            "| step | enabled | tags before | tags after | seconds |",
            "|---|---|---:|---:|---:|",
        ]
        for s in self.stages:
            lines.append(f"| {s.title} | {'yes' if s.enabled else 'no'} | {s.tags_before:,} | {s.tags_after:,} "
                         f"| {s.seconds:.2f} |")
        for s in self.stages:
            if not s.enabled:
                continue
            lines += ["", f"## {s.title}", ""]
            shown = {k: v for k, v in s.stats.items() if not isinstance(v, (list, dict)) and k != "warning"}
            if shown:
                lines.append(", ".join(f"{k}: {_format(v)}" for k, v in shown.items()))
            if s.merges:
                lines += ["", "| canonical | members |", "|---|---|"]
                for target, members in s.merges[:merges]:
                    more = f" (+{len(members) - 12} more)" if len(members) > 12 else ""
                    lines.append(f"| {_cell(target)} | {_cell(', '.join(members[:12]))}{more} |")
            if s.examples:
                lines += ["", "| before | after |", "|---|---|"]
                for before, after in s.examples[:examples]:
                    lines.append(f"| {_cell(before)} | {_cell(after) if after is not None else '(dropped)'} |")
            rules = s.stats.get("rule_examples")
            if rules:
                lines += ["", "| rule | samples with both / with antecedent |", "|---|---:|"]
                for r in rules:
                    lines.append(f"| {_cell(r['antecedent'])} -> {_cell(r['consequent'])} "
                                 f"| {r['samples_with_both']:,} / {r['samples_with_antecedent']:,} |")
        if self.params:
            lines += ["", "## Parameters", "", "```", *(f"{k} = {v!r}" for k, v in self.params.items()), "```"]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
