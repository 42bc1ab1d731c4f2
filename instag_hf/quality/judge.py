"""LLM-judged tag quality, as in the paper: precision and consistency on a seeded sample.

- Precision: is a query's tag list right for the query? One case per sampled query
  (``unit="query"``, the verdict is "yes" only if every tag fits) or per sampled
  (query, tag) pair (``unit="tag"``).
- Consistency: does one tag mean the same across the queries it is attached to? One
  case per sampled tag, showing up to ``queries_per_tag`` of its queries.

The judge is any instag_hf backend (default: the same ``auto`` choice as tagging),
asked through the versioned templates of :mod:`instag_hf.quality.judge_prompts`.
Every case keeps its raw answer, the parsed verdict and a status: ``ok``,
``parse_error`` (the answer holds no clear yes/no; never counted as either) or
``backend_error``. Answers are cached like tagging requests, so a rerun only asks
what is missing. The paper's GPT-4 judge on 2,000 cases per metric found 96.1%
precision and 86.6% consistency.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import schema
from ..tagging.answers import answer_requests
from ..tagging.backends import Backend, GenerationParams, make_backend
from ..tagging.cache import RequestCache, namespace_hash, request_key
from .judge_prompts import METRICS, JudgeTemplate, get_judge_template
from .judge_stats import JudgeCase, JudgeResult
from .matching import normalize_tag
from .verdicts import parse_verdict

logger = logging.getLogger(__name__)

UNITS = ("query", "tag")
def make_judge_backend(backend: str | Backend = "auto", **options: Any) -> Backend:
    """A backend for judging: like :func:`instag_hf.tagging.backends.make_backend`, but without the
    tag-list JSON schema that tagging backends impose: one that takes a ``response_format``
    (OpenAI-compatible) asks for plain JSON objects, one that takes ``structured`` (vLLM)
    decodes freely."""
    return make_backend(backend, defaults={"response_format": "json_object", "structured": False}, **options)


@dataclass(frozen=True)
class _Unit:
    row: int
    turn: int | None
    query: str
    tags: tuple[str, ...]


class LLMJudge:
    """Judges the precision and consistency of a tagged dataset with an LLM.

    Parameters
    ----------
    backend, model, revision, backend_options:
        The judge: ``"auto"`` (default, as for tagging), a backend name, a
        ``"package.module:Class"`` path or a :class:`~instag_hf.tagging.backends.Backend`.
    n:
        Cases per metric, sampled without replacement (all there are if fewer).
        The paper judged 2,000 per metric.
    seed:
        Seeds the sampling; precision and consistency draw from separate streams.
    unit:
        Precision case: ``"query"`` (one verdict for all tags of a query) or ``"tag"``
        (one verdict per query-tag pair).
    queries_per_tag, min_queries:
        A consistency case shows up to ``queries_per_tag`` distinct queries of its tag;
        only tags attached to at least ``min_queries`` distinct queries are sampled.
    precision_template, consistency_template:
        Judge template names (``name`` or ``name@version``) or :class:`JudgeTemplate`.
    max_query_chars:
        Longer queries are cut (marked ``[...]``) to bound the prompt.
    batch_size, max_new_tokens, temperature:
        Prompts per backend call; the answer budget (default: the template's); greedy by default.
    cache_dir, use_cache:
        The request cache shared with tagging (``$INSTAG_HF_HOME/requests`` by default).
    confidence:
        Level of the Wilson interval in the summary.
    """

    def __init__(self, backend: str | Backend = "auto", model: str | None = None, *, n: int = 200, seed: int = 0,
                 unit: str = "query", queries_per_tag: int = 5, min_queries: int = 2,
                 precision_template: str | JudgeTemplate = "precision",
                 consistency_template: str | JudgeTemplate = "consistency", max_query_chars: int = 2000,
                 batch_size: int = 16, max_new_tokens: int | None = None, temperature: float = 0.0,
                 cache_dir: str | None = None, use_cache: bool = True, progress: bool = True,
                 confidence: float = 0.95, revision: str | None = None, **backend_options: Any):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        if min_queries < 2:
            raise ValueError(f"min_queries must be >= 2 (consistency compares queries), got {min_queries}")
        if queries_per_tag < min_queries:
            raise ValueError(f"queries_per_tag ({queries_per_tag}) must be >= min_queries ({min_queries})")
        if max_query_chars < 1 or batch_size < 1:
            raise ValueError("max_query_chars and batch_size must be >= 1")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        self.templates = {"precision": get_judge_template(precision_template, "precision"),
                          "consistency": get_judge_template(consistency_template, "consistency")}
        self.n, self.seed, self.unit = n, seed, unit
        self.queries_per_tag, self.min_queries = queries_per_tag, min_queries
        self.max_query_chars, self.batch_size = max_query_chars, batch_size
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.progress, self.confidence = progress, confidence
        self._backend_spec = (backend, dict(model=model, revision=revision, **backend_options))
        self._backend: Backend | None = backend if isinstance(backend, Backend) else None
        self.cache = RequestCache(cache_dir) if use_cache else None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            backend, options = self._backend_spec
            self._backend = make_judge_backend(backend, **options)
            logger.info("judge backend: %s", self._backend.label())
        return self._backend

    def params(self, metric: str) -> GenerationParams:
        return GenerationParams(max_new_tokens=self.max_new_tokens or self.templates[metric].max_new_tokens,
                                temperature=self.temperature)

    def describe(self) -> dict:
        return {"backend": self.backend.identity(), "templates": {k: t.id for k, t in self.templates.items()},
                "n": self.n, "seed": self.seed, "unit": self.unit, "queries_per_tag": self.queries_per_tag,
                "min_queries": self.min_queries, "temperature": self.temperature}

    # --- cases -----------------------------------------------------------------------
    def _cut(self, query: str) -> str:
        return query if len(query) <= self.max_query_chars else query[: self.max_query_chars] + " [...]"

    def precision_cases(self, units: Sequence[_Unit]) -> list[JudgeCase]:
        rng = np.random.default_rng([self.seed, 0])
        template = self.templates["precision"].id
        if self.unit == "query":
            pool = [(u, None) for u in units]
        else:
            pool = [(u, t) for u in units for t in u.tags]
        picked = sorted(rng.choice(len(pool), size=min(self.n, len(pool)), replace=False).tolist()) if pool else []
        cases = []
        for k in picked:
            u, tag = pool[k]
            where = f"{u.row}" if u.turn is None else f"{u.row}.{u.turn}"
            case_id = f"precision/{where}" + (f"/{tag}" if tag is not None else "")
            cases.append(JudgeCase(case_id, "precision", template, [u.row], [self._cut(u.query)],
                                   [tag] if tag is not None else list(u.tags)))
        return cases

    def consistency_cases(self, units: Sequence[_Unit]) -> list[JudgeCase]:
        rng = np.random.default_rng([self.seed, 1])
        template = self.templates["consistency"].id
        by_tag: dict[str, dict[str, _Unit]] = {}
        shown: dict[str, str] = {}
        for u in units:
            for t in u.tags:
                key = normalize_tag(t)
                shown.setdefault(key, t)
                by_tag.setdefault(key, {}).setdefault(u.query, u)
        eligible = sorted(k for k, qs in by_tag.items() if len(qs) >= self.min_queries)
        picked = rng.choice(len(eligible), size=min(self.n, len(eligible)), replace=False).tolist() if eligible else []
        cases = []
        for k in sorted(picked):
            key = eligible[k]
            members = list(by_tag[key].values())
            chosen = rng.choice(len(members), size=min(self.queries_per_tag, len(members)), replace=False)
            chosen = [members[i] for i in sorted(chosen.tolist())]
            cases.append(JudgeCase(f"consistency/{key}", "consistency", template, [u.row for u in chosen],
                                   [self._cut(u.query) for u in chosen], [shown[key]]))
        return cases

    # --- asking ----------------------------------------------------------------------
    def run(self, cases: list[JudgeCase]) -> list[JudgeCase]:
        """Ask the judge every case (cached answers first) and fill in answer, verdict and status."""
        by_metric: dict[str, list[JudgeCase]] = {}
        for c in cases:
            by_metric.setdefault(c.metric, []).append(c)
        for metric, mine in by_metric.items():
            self._run_metric(metric, mine)
        return cases

    def _run_metric(self, metric: str, cases: list[JudgeCase]) -> None:
        template = self.templates[metric]
        params = self.params(metric)
        prompts = [template.render(c.queries, c.tags) for c in cases]
        def key_of(prompt, options: dict) -> str:
            namespace = namespace_hash({"judge_backend": self.backend.identity(), "template": template.id,
                                        "params": params.as_dict(), "request": options})
            return request_key(namespace, json.dumps(prompt.messages, ensure_ascii=False))

        options = self.backend.request_options()
        keys = [key_of(p, options) for p in prompts]
        by_key = dict(zip(keys, prompts))
        found, _ = answer_requests(keys, by_key.__getitem__, self.backend, params, cache=self.cache,
                                   batch_size=self.batch_size,
                                   progress=f"Judging {metric}" if self.progress else None,
                                   rekey=lambda key, used: key_of(by_key[key], used))
        for case, key in zip(cases, keys):
            record = found.get(key)
            if record is not None and record["text"] is not None:
                case.answer = record["text"]
                v = parse_verdict(case.answer)
                case.verdict, case.reason, case.status, case.error = v.verdict, v.reason, v.status, v.error
            else:
                case.answer, case.verdict, case.reason = None, None, ""
                case.status, case.error = schema.BACKEND_ERROR, record["error"] if record else "no answer"

    def judge(self, dataset, metrics: Sequence[str] = METRICS, *, tags_column: str | None = None,
              query_column: str | None = None, format: str | None = None) -> JudgeResult:
        """Sample cases from a tagged ``Dataset``, ask the judge, and return the verdicts.

        ``tags_column``: as in :func:`instag_hf.analysis.tagsets.resolve_tags_column`. With
        ``instag_tags`` and per-turn results present, each user turn is a query of its
        own (as it was tagged); otherwise a row's user turns are shown together.
        """
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            raise ValueError(f"metrics must be among {METRICS}, got {metrics}")
        units = tagged_units(dataset, tags_column, query_column, format)
        if not units:
            raise ValueError("no tagged query to judge: every row failed or has no tags")
        cases: list[JudgeCase] = []
        if "precision" in metrics:
            cases += self.precision_cases(units)
        if "consistency" in metrics:
            found = self.consistency_cases(units)
            if not found:
                logger.warning("consistency: no tag is attached to %d or more distinct queries", self.min_queries)
            cases += found
        self.run(cases)
        params = {**self.describe(), "metrics": metrics, "rows": len(dataset), "queries": len(units)}
        return JudgeResult(cases, params, self.confidence)


def tagged_units(dataset, tags_column: str | None = None, query_column: str | None = None,
                 format: str | None = None) -> list[_Unit]:
    """The (row, turn, query, tags) units of a tagged dataset whose tagging succeeded."""
    from ..analysis.tagsets import resolve_tags_column
    from ..tagging.queries import detect_format
    from .f1 import AUTO, _rows, _status_column

    columns = dataset.column_names
    column = resolve_tags_column(columns, tags_column)
    tag_columns = {schema.TAGS, schema.NORM_TAGS, schema.STATUS, schema.ERROR, schema.TURN_TAGS, schema.TURN_STATUS}
    fmt = detect_format([c for c in columns if c not in tag_columns and c != column], format, query_column)
    source = [c for c in (fmt.column, "instruction", "input", "context") if c and c in columns]
    per_turn = column == schema.TAGS and schema.TURN_TAGS in columns and schema.TURN_STATUS in columns
    units: list[_Unit] = []
    if per_turn:
        view = dataset.select_columns(list(dict.fromkeys(source + [schema.TURN_TAGS, schema.TURN_STATUS])))
        for row, record in enumerate(view):
            turns = fmt.extract(record)
            tags, status = record[schema.TURN_TAGS] or [], record[schema.TURN_STATUS] or []
            if len(tags) != len(turns) or len(status) != len(turns):
                continue
            for turn, (query, items, st) in enumerate(zip(turns, tags, status)):
                names = tuple(dict.fromkeys(i["tag"] for i in items or () if i and i.get("tag")))
                if st in schema.TAGGED_STATUSES and names and query.strip():
                    units.append(_Unit(row, turn if len(turns) > 1 else None, query, names))
        return units
    rows = _rows(dataset, column, _status_column(dataset, column, AUTO))
    view = dataset.select_columns(source)
    for row, (record, names) in enumerate(zip(view, rows)):
        if not names:
            continue
        query = "\n\n".join(t for t in fmt.extract(record) if t.strip())
        if query:
            units.append(_Unit(row, None, query, tuple(names)))
    return units
