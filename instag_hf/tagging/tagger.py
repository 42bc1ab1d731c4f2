"""``Tagger``: open-set intention tagging as a ``Dataset.map`` transform.

``ds.map(Tagger(...), batched=True)`` adds the columns of :mod:`instag_hf.schema`.
Every user turn is tagged on its own; a sample's ``instag_tags`` is the
de-duplicated union over its turns (first explanation wins), and the per-turn
results stay in ``instag_turn_tags`` / ``instag_turn_status``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from .. import schema
from .answers import answer_requests
from .backends import Backend, GenerationParams, make_backend
from .backends.base import FINISH_LENGTH
from .cache import namespace_hash, request_key
from .parsing import parse_tags
from .prompts import Template, get_template
from .queries import QueryFormat, extract_batch
from .transform import RequestStats, RequestTransform, _has_words

logger = logging.getLogger(__name__)
_ANNOUNCED: set[str] = set()
# Context a query must at least get, and tokens kept free for special tokens (BOS, ...).
MIN_QUERY_ROOM = 256
CONTEXT_MARGIN = 8
#: an answer cut at the token budget is asked once more with this many times the budget
#: (at most what the model's context leaves after the prompt)
REASK_FACTOR = 4


@dataclass
class TurnResult:
    """Tags of one user turn."""

    tags: list[dict]
    status: str
    error: str = ""


@dataclass
class TagStats(RequestStats):
    """Counters collected as a Tagger runs (in this process)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: answers cut at the token budget and asked again with a larger one
    reasked: int = 0
    #: rows whose whole map output ``datasets`` served from its own cache (no request was looked up)
    dataset_cache_rows: int = 0
    #: rows tagged in ``map(num_proc=...)`` worker processes, whose counters stay there
    worker_rows: int = 0
    statuses: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        notes = []
        if self.dataset_cache_rows:
            notes.append(f"{self.dataset_cache_rows} served by datasets' cache of an identical earlier map")
        if self.worker_rows:
            notes.append(f"{self.worker_rows} tagged in worker processes, whose requests are not counted here")
        rows = f"{self.rows} rows" + (f" ({'; '.join(notes)})" if notes else "")
        reasked = f", {self.reasked} cut answers asked again with a larger budget" if self.reasked else ""
        return (f"{rows}, {self.turns} turns, {self.requests} model requests, "
                f"{self.cache_hits} request-cache hits{reasked}; row statuses: {self._status_text()}")


class Tagger(RequestTransform):
    """Tags the user queries of SFT samples with open-set intention tags.

    Parameters
    ----------
    backend:
        ``"auto"`` (default: the first of vLLM on a GPU, an API configured in the
        environment, the retrieval tagger, the embedded CPU model that can run here), a backend name
        (``"transformers"``), ``"package.module:Class"``, or a :class:`Backend`.
    model, revision:
        Passed to the backend (``model="embedded"`` is SmolLM2-135M-Instruct).
    template:
        Prompt template name or :class:`~instag_hf.tagging.prompts.Template`; default: the
        backend's own. Its ``name@version`` is part of the cache key.
    batch_size:
        Prompts per backend call; also how often answers are committed to the cache.
    max_query_tokens:
        Longer queries are cut to this many tokens and get status ``truncated``.
    max_new_tokens, temperature:
        Decoding: the answer budget (default: the template's) and greedy (0.0)
        by default, as tags should be reproducible.
    cache_dir:
        Folder of the request cache (default ``$INSTAG_HF_HOME/requests``).
        ``use_cache=False`` turns it off.
    query_column, format:
        Force where queries are read from (see :func:`instag_hf.tagging.queries.detect_format`).
    progress:
        Show a progress bar inside a map batch when it holds many uncached requests.
    backend_options:
        Any other keyword goes to the backend's constructor.
    """

    FEATURES = schema.TAG_FEATURES
    STATS = TagStats
    DESC = "Tagging"
    HINT = "to tag a list of query strings use Tagger.tag_queries"
    _OWN_OPTIONS = frozenset({"backend", "model", "template", "batch_size", "max_query_tokens", "max_new_tokens",
                              "temperature", "cache_dir", "use_cache", "query_column", "format", "revision",
                              "progress"})

    def __init__(
        self,
        backend: str | Backend = "auto",
        model: str | None = None,
        template: str | Template | None = None,
        batch_size: int = 16,
        max_query_tokens: int = 1536,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        cache_dir: str | None = None,
        use_cache: bool = True,
        query_column: str | None = None,
        format: str | None = None,
        revision: str | None = None,
        progress: bool = True,
        **backend_options: Any,
    ):
        self._check_batch_size(batch_size)
        if max_query_tokens < 1:
            raise ValueError(f"max_query_tokens must be >= 1, got {max_query_tokens}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        super().__init__(dict(
            backend=backend, model=model, template=template, batch_size=batch_size,
            max_query_tokens=max_query_tokens, max_new_tokens=max_new_tokens, temperature=temperature,
            cache_dir=cache_dir, use_cache=use_cache, query_column=query_column, format=format,
            revision=revision, progress=progress, **backend_options,
        ))

    def _init_runtime(self) -> None:
        self._backend: Backend | None = None  # the backend this process tags with
        self._configured_backend: Backend | None = None  # built for its identity only; never generates
        self._template: Template | None = None
        self._budget: int | None = None
        super()._init_runtime()

    def _identity(self) -> dict:
        return self.namespace()

    # --- resolved lazily -------------------------------------------------------------
    @property
    def configured_backend(self) -> Backend:
        """The backend as configured: its identity, default template and options, without
        starting it. A process that only describes or fingerprints the tagger (the parent of a
        rank-sharded or Ray run) uses this and never loads a model or starts an engine; the
        first process that tags takes it over as :attr:`backend`."""
        if self._backend is not None:
            return self._backend
        if self._configured_backend is None:
            cfg = self._config
            self._configured_backend = make_backend(cfg["backend"], model=cfg["model"], revision=cfg["revision"],
                                                    defaults=self._backend_defaults(), **self._backend_options())
        return self._configured_backend

    @property
    def backend(self) -> Backend:
        """The backend this process tags with (may load its model on first use)."""
        if self._backend is None:
            backend = self.configured_backend
            self._backend, self._configured_backend = backend, None
            if self.cache is not None:
                found = self.cache.get_many([self._learned_key()])
                if found:
                    self._backend.learn(json.loads(found[self._learned_key()]["text"]))
            desc = self._backend.label()
            if self._backend.uses_prompt:
                desc += f" with template {self.template.id}"
            if desc not in _ANNOUNCED:
                _ANNOUNCED.add(desc)
                logger.info("tagging backend: %s", desc)
        return self._backend

    @property
    def template(self) -> Template:
        if self._template is None:
            name = self._config["template"]
            self._template = get_template(name if name is not None else self.configured_backend.default_template)
        return self._template

    @property
    def params(self) -> GenerationParams:
        return GenerationParams(
            max_new_tokens=self._config["max_new_tokens"] or self.template.max_new_tokens,
            temperature=self._config["temperature"],
            stop=self.template.stop,
        )

    def namespace(self) -> dict:
        """Everything besides the query that decides an answer (the cache key's namespace):
        the backend's identity (server, model, revision, request and engine options), the
        template id and the generation parameters. Each request's key adds the backend's
        :meth:`~instag_hf.tagging.backends.Backend.request_options` as really sent."""
        return {"backend": self.configured_backend.identity(), "template": self.template.id,
                "prompt": "text" if self.template.vicuna else "chat", "params": self.params.as_dict()}

    def cache_key(self, query: str) -> str:
        """The request-cache key of ``query`` as the next request would send it."""
        return request_key(self._request_namespace(self.backend.request_options()), query)

    def _request_namespace(self, options: dict, params: GenerationParams | None = None):
        """The hash state of a request's key before its query: the namespace (with ``params``
        instead of the tagger's own where given) and the request options really sent."""
        namespace = self.namespace() if params is None else {**self.namespace(), "params": params.as_dict()}
        return namespace_hash({**namespace, "request": options} if options else namespace)

    def _learned_key(self) -> str:
        return "learned:" + request_key({"backend": self.configured_backend.identity()}, "")

    def describe(self) -> dict:
        """Settings to publish with the tags (cards, reports). Holds no secret."""
        info = {**self.namespace(), "max_query_tokens": self._config["max_query_tokens"]}
        if not self.configured_backend.uses_prompt:  # the backend reads the query alone
            for unused in ("template", "prompt", "params"):
                info.pop(unused)
        if self.configured_backend.whole_dataset:  # same answers as "openai", a different way of asking
            info["requests"] = "OpenAI Batch API (submitted as batches, collected within 24 h)"
        return info

    def summary(self) -> str:
        """End-of-run summary: rows and statuses, cache hits, and the backend's own counters."""
        lines = [self.stats.summary()]
        if self.stats.prompt_tokens or self.stats.completion_tokens:
            lines.append(f"tokens: {self.stats.prompt_tokens} prompt, {self.stats.completion_tokens} completion")
        extra = self._backend.stats() if self._backend is not None else {}
        if extra:
            lines.append("backend: " + ", ".join(f"{k}={v}" for k, v in extra.items()))
        return "\n".join(lines)

    # --- tagging ---------------------------------------------------------------------
    def tag_queries(self, queries: Sequence[str]) -> list[TurnResult]:
        """Tag single queries (one turn each); the building block of :meth:`__call__`."""
        results, jobs = self._plan(queries)
        requests = {key: text for key, (text, _, _) in jobs.items()}
        answers = self._reask_cut(requests, self._answers(requests))
        for key, (_, rows, cut) in jobs.items():
            result = _turn_result(answers[key], cut)
            for i in rows:
                results[i] = result
        return results  # type: ignore[return-value]

    def _reask_cut(self, requests: Mapping[str, str], answers: dict[str, dict]) -> dict[str, dict]:
        """Ask each answer cut at the token budget once more with :data:`REASK_FACTOR` times
        the budget (at most what the context leaves); an answer cut again, or one with no
        room to grow, is marked so that it becomes ``answer_truncated``. Both answers are
        cached under their own generation parameters, so a rerun re-pays neither."""
        cut = [k for k, a in answers.items() if not a.get("error") and a.get("finish_reason") == FINISH_LENGTH]
        if not cut:
            return answers
        first = self.params.max_new_tokens
        by_budget: dict[int, list[str]] = {}
        for key in cut:
            by_budget.setdefault(self._reask_budget(requests[key]), []).append(key)
        answers = dict(answers)
        for budget, keys in sorted(by_budget.items()):
            if budget <= first:
                for key in keys:
                    answers[key] = {**answers[key], "budgets": [first]}
                continue
            params = replace(self.params, max_new_tokens=budget)
            again = self._answers({key: requests[key] for key in keys}, params)
            if self._phase != "rereading":  # counted when the dataset was settled
                self.stats.reasked += len(keys)
            for key in keys:
                if again[key].get("error"):  # e.g. a server whose context cannot hold the larger budget
                    answers[key] = {**answers[key], "budgets": [first],
                                    "retry_error": f"asking again with {budget} new tokens failed: {again[key]['error']}"}
                else:
                    answers[key] = {**again[key], "budgets": [first, budget]}
        return answers

    def _reask_budget(self, query: str) -> int:
        """The larger answer budget for a cut answer to ``query``."""
        budget = self.params.max_new_tokens * REASK_FACTOR
        context = self.backend.context_length()
        if context:
            used = self.backend.prompt_tokens(self.template.render(query))
            if used is not None:
                budget = min(budget, context - used - CONTEXT_MARGIN)
        return budget

    def _plan(self, queries: Sequence[str]) -> tuple[list, dict[str, tuple[str, list[int], bool]]]:
        """Results of the turns that need no model, and per request key: (text sent, turns, was cut)."""
        results: list[TurnResult | None] = [None] * len(queries)
        jobs: dict[str, tuple[str, list[int], bool]] = {}
        namespace = None
        for i, query in enumerate(queries):
            text = query if isinstance(query, str) else ("" if query is None else str(query))
            if not text.strip():
                results[i] = TurnResult([], schema.EMPTY_QUERY, "no text in this user turn")
                continue
            if not _has_words(text):
                results[i] = TurnResult([], schema.EMPTY_QUERY,
                                        "no letter or digit in this user turn (only symbols, emoji or invisible characters)")
                continue
            cut = False
            size = len(text.encode("utf-8", "surrogatepass"))  # a token covers at least one byte
            # short queries fit any budget, so most runs never count tokens (nor load a model for it)
            if size > (self._budget or min(self._config["max_query_tokens"], MIN_QUERY_ROOM)):
                limit = self.query_budget()
                if size > limit:
                    text, cut = self.backend.truncate(text[: limit * 16], limit)
            namespace = namespace or self._request_namespace(self.backend.request_options())
            key = request_key(namespace, text)
            if key in jobs:
                jobs[key][1].append(i)
            else:
                jobs[key] = (text, [i], cut)
        return results, jobs

    def query_budget(self) -> int:
        """Tokens a query may take: ``max_query_tokens``, lowered where the model's context
        must also hold the template (system text, few-shot examples) and the answer."""
        if self._budget is None:
            limit = self._config["max_query_tokens"]
            context = self.backend.context_length()
            if context:
                overhead = self.backend.prompt_tokens(self.template.render("")) or 0
                room = context - overhead - self.params.max_new_tokens - CONTEXT_MARGIN
                if room < MIN_QUERY_ROOM:
                    raise ValueError(
                        f"{self.backend.label()} reads {context} tokens in all, but template {self.template.id} "
                        f"takes {overhead} and the answer up to {self.params.max_new_tokens}, leaving {room} for the "
                        f"query (at least {MIN_QUERY_ROOM} needed): use a shorter template, a smaller "
                        f"max_new_tokens or a longer max_model_len")
                limit = min(limit, room)
            self._budget = limit
        return self._budget

    def _answers(self, requests: Mapping[str, str], params: GenerationParams | None = None) -> dict[str, dict]:
        """Answer records per key: from the cache, else from the backend (then cached).

        ``params`` other than the tagger's own (a larger budget for a cut answer) change what is
        asked, so each request is cached under the key of what was really asked; the records
        come back under the given keys."""
        if params is not None and params != self.params:
            state = self._request_namespace(self.backend.request_options(), params)
            keyed = {request_key(state, text): key for key, text in requests.items()}
            found = self._ask({new: requests[old] for new, old in keyed.items()}, params)
            return {old: found[new] for new, old in keyed.items()}
        return self._ask(requests, self.params)

    def _ask(self, requests: Mapping[str, str], params: GenerationParams) -> dict[str, dict]:
        template = self.template

        def count(key: str, c) -> None:
            self.stats.requests += 1
            self.stats.completion_tokens += c.completion_tokens or 0
            self.stats.prompt_tokens += c.prompt_tokens or 0

        def rekey(key: str, options: dict) -> str:
            return request_key(self._request_namespace(options, params), requests[key])

        def ask(keys: list[str]) -> tuple[dict[str, dict], int]:
            learned = self.backend.learned()
            found = answer_requests(
                sorted(keys, key=lambda k: len(requests[k])), lambda k: template.render(requests[k]), self.backend,
                params, cache=self.cache, batch_size=self._config["batch_size"],
                progress="Tagging queries" if self._config["progress"] else None, on_completion=count, rekey=rekey)
            if self.cache is not None and self.backend.learned() != learned:
                self.cache.put_many({self._learned_key(): {"text": json.dumps(self.backend.learned())}})
            return found

        return self._asked(list(requests), ask)

    def tag_rows(self, turns_per_row: Sequence[Sequence[str]]) -> list[dict]:
        """Tag samples given as lists of user turns; one output record per sample."""
        flat = [t for turns in turns_per_row for t in turns]
        flat_results = iter(self.tag_queries(flat))
        rows = []
        for turns in turns_per_row:
            per_turn = [next(flat_results) for _ in turns]
            rows.append(_combine(per_turn))
        self.stats.rows += len(rows)
        self.stats.turns += len(flat)
        self.stats.statuses.update(r[schema.STATUS] for r in rows)
        return rows

    def __call__(self, batch: Mapping[str, Any], rank: int | None = None) -> dict:
        """The ``map`` transform, for one row or (better) a batch of rows.

        With ``map(num_proc=N, with_rank=True)`` each worker gets its ``rank``; a
        backend that runs on a GPU pins itself to GPU ``rank`` before it starts.

        ``datasets`` infers the new columns' types from the first batch written; if
        that whole batch could come back without a single tag (a backend that is
        down), pass ``features=`` as :meth:`map` does.
        """
        if isinstance(batch, str):
            return self.tag_rows([[batch]])[0]
        return super().__call__(batch, rank)

    def _bind_device(self, rank: int) -> None:
        if self._backend is None:
            self.backend.bind_device(rank)

    def _transform(self, batch, fmt: QueryFormat, single: bool) -> list[dict]:
        return self.tag_rows([fmt.extract(batch)] if single else extract_batch(batch, fmt))

    def map(self, dataset, **map_kwargs):
        """``dataset.map(self, batched=True)`` with the output features declared and, for a
        ``Dataset``, a progress label; an ``IterableDataset`` is tagged lazily as it is read."""
        return super().map(dataset, **map_kwargs)

    def _count_served(self, out, rows_before: int, map_kwargs: Mapping[str, Any]) -> None:
        from datasets import Dataset

        if isinstance(out, Dataset) and self.stats.rows == rows_before and len(out):
            # no row went through this process: datasets' own cache or worker processes served them
            self.stats.rows += len(out)
            self.stats.statuses.update(schema.status_counts(out))
            if (map_kwargs.get("num_proc") or 1) > 1:
                self.stats.worker_rows += len(out)
            else:
                self.stats.dataset_cache_rows += len(out)

    def _items(self, batch, fmt: QueryFormat) -> list[str]:
        return [turn for turns in extract_batch(batch, fmt) for turn in turns]

    def _settle_items(self, items: list[str]) -> None:
        requests = {key: text for key, (text, _, _) in self._plan(items)[1].items()}
        self._reask_cut(requests, self._answers(requests))


def _turn_result(answer: Mapping, query_cut: bool) -> TurnResult:
    """A turn's result from its answer record (see :meth:`Tagger._reask_cut` for ``budgets``)."""
    if answer.get("error"):
        return TurnResult([], schema.BACKEND_ERROR, answer["error"])
    parsed = parse_tags(answer["text"])
    if answer.get("finish_reason") == FINISH_LENGTH:
        budgets = answer.get("budgets") or []
        asked = " then ".join(str(b) for b in budgets) or "the"
        dropped = f"; {len(parsed.tags)} tags parsed before the cut were not kept" if parsed.tags else ""
        retry = f"; {answer['retry_error']}" if answer.get("retry_error") else ""
        return TurnResult([], schema.ANSWER_TRUNCATED,
                          f"the answer was cut at the token budget ({asked} new tokens){dropped}{retry}: "
                          f"raise max_new_tokens (or max_model_len)")
    status = schema.TRUNCATED if (query_cut and parsed.status == schema.OK) else parsed.status
    error = parsed.error or (parsed.note if status in schema.TAGGED_STATUSES else "")
    return TurnResult(parsed.tags, status, error or "")


def _combine(per_turn: list[TurnResult]) -> dict:
    tags: list[dict] = []
    seen: set[str] = set()
    for r in per_turn:
        for item in r.tags:
            folded = item["tag"].casefold()
            if folded not in seen:
                seen.add(folded)
                tags.append(item)
    spoken = [r for r in per_turn if r.status != schema.EMPTY_QUERY]
    if not spoken:
        status, error = schema.EMPTY_QUERY, "no user query in this sample"
    else:
        worst = max(spoken, key=lambda r: schema.SEVERITY[r.status])
        status, error = worst.status, worst.error
    return {
        schema.TAGS: tags,
        schema.STATUS: status,
        schema.ERROR: error,
        schema.TURN_TAGS: [r.tags for r in per_turn],
        schema.TURN_STATUS: [r.status for r in per_turn],
    }
