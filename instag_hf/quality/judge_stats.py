"""The judge's cases and their statistics: rates with Wilson intervals, per metric and template."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

from .. import schema
from ..strict_json import dumps
from .judge_prompts import METRICS
from .verdicts import NO, YES


@dataclass
class JudgeCase:
    """One question to the judge and what came back."""

    case_id: str
    metric: str
    template: str
    rows: list[int]
    queries: list[str]
    tags: list[str]
    answer: str | None = None
    verdict: str | None = None
    reason: str = ""
    status: str = ""
    error: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sensible even at 0 or n successes)."""
    if n <= 0:
        return (math.nan, math.nan)
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    den = 1 + z * z / n
    center = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, center - half), min(1.0, center + half))


@dataclass(frozen=True)
class JudgeSummary:
    """Counts and rates of one metric.

    ``rate`` is yes / judged (cases with a verdict), with its Wilson interval;
    ``strict_rate`` is yes / all cases, i.e. counting every unanswered case as "no".
    """

    metric: str
    template: str
    cases: int
    judged: int
    yes: int
    no: int
    parse_errors: int
    backend_errors: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    strict_rate: float | None
    confidence: float = 0.95


@dataclass
class JudgeResult:
    """Judged cases and their summary per metric."""

    cases: list[JudgeCase]
    params: dict = field(default_factory=dict)
    confidence: float = 0.95

    def summary(self) -> dict[str, JudgeSummary]:
        out = {}
        for metric in METRICS:
            mine = [c for c in self.cases if c.metric == metric]
            if not mine:
                continue
            st = Counter(c.status for c in mine)
            yes = sum(c.verdict == YES for c in mine)
            no = sum(c.verdict == NO for c in mine)
            judged = yes + no
            low, high = wilson_interval(yes, judged, self.confidence) if judged else (None, None)
            templates = sorted({c.template for c in mine})
            out[metric] = JudgeSummary(metric, ", ".join(templates), len(mine), judged, yes, no,
                                       st[schema.PARSE_ERROR], st[schema.BACKEND_ERROR],
                                       yes / judged if judged else None, low, high, yes / len(mine),
                                       self.confidence)
        return out

    def as_dict(self, cases: bool = True) -> dict:
        out = {"params": self.params, "summary": {k: asdict(v) for k, v in self.summary().items()}}
        if cases:
            out["cases"] = [c.as_dict() for c in self.cases]
        return out

    def to_jsonl(self, path: str) -> None:
        """One line per case (the verdict record to keep next to the summary)."""
        with open(path, "w", encoding="utf-8") as fh:
            for c in self.cases:
                fh.write(dumps(c.as_dict()) + "\n")

    def to_dataset(self):
        from datasets import Dataset

        return Dataset.from_list([c.as_dict() for c in self.cases])

    def to_markdown(self) -> str:
        pct = int(round(100 * self.confidence))
        lines = [f"| metric | template | cases | judged | yes | no | unparsed | backend errors | rate | {pct}% CI "
                 "(Wilson) | yes / all cases |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for s in self.summary().values():
            rate = f"{100 * s.rate:.1f}%" if s.rate is not None else "n/a"
            ci = f"{100 * s.ci_low:.1f}% to {100 * s.ci_high:.1f}%" if s.ci_low is not None else "n/a"
            lines.append(f"| {s.metric} | {s.template} | {s.cases} | {s.judged} | {s.yes} | {s.no} | "
                         f"{s.parse_errors} | {s.backend_errors} | {rate} | {ci} | {100 * s.strict_rate:.1f}% |")
        return "\n".join(lines)
