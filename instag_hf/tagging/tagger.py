"""``Tagger``: open-set intention tagging as a ``Dataset.map`` transform.

``ds.map(Tagger(...), batched=True)`` adds the columns of :mod:`instag_hf.schema`.
Every user turn is tagged on its own; a sample's ``instag_tags`` is the
de-duplicated union over its turns (first explanation wins), and the per-turn
results stay in ``instag_turn_tags`` / ``instag_turn_status``.
"""

from __future__ import annotations

import json
import logging
import os
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

from .. import schema
from .answers import answer_requests
from .backends import Backend, GenerationParams, make_backend
from .backends.base import FINISH_LENGTH
from .cache import RequestCache, namespace_hash, request_key
from .parsing import parse_tags
from .prompts import Template, get_template
from .queries import QueryFormat, detect_format, extract_batch

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
class TagStats:
    """Counters collected as a Tagger runs (in this process)."""

    rows: int = 0
    turns: int = 0
    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: answers cut at the token budget and asked again with a larger one
    reasked: int = 0
    #: rows whose whole map output ``datasets`` served from its own cache (no request was looked up)
    dataset_cache_rows: int = 0
    #: rows tagged in ``map(num_proc=...)`` worker processes, whose counters stay there
    worker_rows: int = 0
    statuses: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {**asdict(self), "statuses": dict(self.statuses)}

    def summary(self) -> str:
        st = ", ".join(f"{k}={v}" for k, v in sorted(self.statuses.items()))
        notes = []
        if self.dataset_cache_rows:
            notes.append(f"{self.dataset_cache_rows} served by datasets' cache of an identical earlier map")
        if self.worker_rows:
            notes.append(f"{self.worker_rows} tagged in worker processes, whose requests are not counted here")
        rows = f"{self.rows} rows" + (f" ({'; '.join(notes)})" if notes else "")
        reasked = f", {self.reasked} cut answers asked again with a larger budget" if self.reasked else ""
        return (f"{rows}, {self.turns} turns, {self.requests} model requests, "
                f"{self.cache_hits} request-cache hits{reasked}; row statuses: {st or 'none'}")


class Tagger:
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_query_tokens < 1:
            raise ValueError(f"max_query_tokens must be >= 1, got {max_query_tokens}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self._config = dict(
            backend=backend, model=model, template=template, batch_size=batch_size,
            max_query_tokens=max_query_tokens, max_new_tokens=max_new_tokens, temperature=temperature,
            cache_dir=cache_dir, use_cache=use_cache, query_column=query_column, format=format,
            revision=revision, progress=progress, **backend_options,
        )
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._backend: Backend | None = None  # the backend this process tags with
        self._configured_backend: Backend | None = None  # built for its identity only; never generates
        self._nonce = os.urandom(8).hex()
        self._template: Template | None = None
        self._formats: dict[tuple, QueryFormat] = {}
        self._budget: int | None = None
        self._settled: dict[str, dict] = {}  # answers fetched for a whole dataset before its map
        cfg = self._config
        self.cache = RequestCache(cfg["cache_dir"]) if cfg["use_cache"] else None
        self.stats = TagStats()

    # Pickled as configuration plus the resolved identity (no model is loaded for it): the
    # ``datasets`` fingerprint changes with the backend really used (``backend="auto"`` reads
    # the environment), and num_proc workers stay cheap to start. The request cache's failure
    # epoch is part of it too: after a run in which requests failed, the same command is not
    # served ``datasets``' cached map output but re-maps, answering what succeeded from the
    # request cache and asking again exactly what failed.
    def __getstate__(self):
        try:
            identity = self.namespace()
        except (RuntimeError, ValueError, ImportError) as exc:  # no backend can run here: map will say why
            identity = {"unresolved": f"{type(exc).__name__}: {exc}"}
        return {"config": self._config, "identity": identity, "failures": self._failure_epoch()}

    def _failure_epoch(self) -> int | str:
        """How many requests have failed in this tagger's request cache (it only grows); without
        a request cache, this object's own token, so no other tagger's map output is reused."""
        return self._nonce if self.cache is None else self.cache.failure_epoch()

    def __setstate__(self, state):
        self._config = state["config"]
        self._init_runtime()

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._config.items() if v is not None}
        return f"Tagger({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

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
            known = {"backend", "model", "template", "batch_size", "max_query_tokens", "max_new_tokens",
                     "temperature", "cache_dir", "use_cache", "query_column", "format", "revision", "progress"}
            options = {k: v for k, v in cfg.items() if k not in known}
            defaults = {"progress": cfg["progress"]}  # for a backend that waits (the Batch API) ...
            if self.cache is not None:  # ... and keeps its journal beside the cache
                defaults["cache_dir"] = str(self.cache.directory)
            self._configured_backend = make_backend(cfg["backend"], model=cfg["model"], revision=cfg["revision"],
                                                    defaults=defaults, **options)
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
            desc = f"{self._backend.describe()} with template {self.template.id}"
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

    @property
    def features(self):
        """The output columns, for ``ds.map(..., features=ds.features | tagger.features)``."""
        return schema.TAG_FEATURES

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

    def _request_namespace(self, options: dict):
        return namespace_hash({**self.namespace(), "request": options} if options else self.namespace())

    def _learned_key(self) -> str:
        return "learned:" + request_key({"backend": self.configured_backend.identity()}, "")

    def describe(self) -> dict:
        """Settings to publish with the tags (cards, reports). Holds no secret."""
        info = {**self.namespace(), "max_query_tokens": self._config["max_query_tokens"]}
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
                        f"{self.backend.describe()} reads {context} tokens in all, but template {self.template.id} "
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
            keyed = {self._key(text, params): key for key, text in requests.items()}
            found = self._ask({new: requests[old] for new, old in keyed.items()}, params)
            return {old: found[new] for new, old in keyed.items()}
        settled = {k: self._settled[k] for k in requests if k in self._settled}
        rest = {k: v for k, v in requests.items() if k not in settled}
        return {**settled, **(self._ask(rest, self.params) if rest else {})}

    def _key(self, text: str, params: GenerationParams) -> str:
        options = self.backend.request_options()
        namespace = {**self.namespace(), "params": params.as_dict()}
        return request_key(namespace_hash({**namespace, "request": options} if options else namespace), text)

    def _ask(self, requests: Mapping[str, str], params: GenerationParams) -> dict[str, dict]:
        template = self.template

        def count(key: str, c) -> None:
            self.stats.requests += 1
            self.stats.completion_tokens += c.completion_tokens or 0
            self.stats.prompt_tokens += c.prompt_tokens or 0

        def rekey(key: str, options: dict) -> str:
            namespace = {**self.namespace(), "params": params.as_dict(), "request": options}
            return request_key(namespace_hash(namespace), requests[key])

        learned = self.backend.learned()
        found, cached = answer_requests(
            sorted(requests, key=lambda k: len(requests[k])), lambda k: template.render(requests[k]), self.backend,
            params, cache=self.cache, batch_size=self._config["batch_size"],
            progress="Tagging queries" if self._config["progress"] else None, on_completion=count, rekey=rekey)
        self.stats.cache_hits += cached
        if self.cache is not None and self.backend.learned() != learned:
            self.cache.put_many({self._learned_key(): {"text": json.dumps(self.backend.learned())}})
        return found

    def _format(self, columns: Sequence[str]) -> QueryFormat:
        key = tuple(columns)
        if key not in self._formats:
            cfg = self._config
            self._formats[key] = detect_format(columns, cfg["format"], cfg["query_column"])
        return self._formats[key]

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
        if not isinstance(batch, Mapping):
            raise TypeError(f"a Tagger is called with a dataset row or batch (a mapping of columns), got "
                            f"{type(batch).__name__}; to tag a list of query strings use Tagger.tag_queries")
        if rank is not None and self._backend is None:
            self.backend.bind_device(rank)
        fmt = self._format(list(batch))
        if _is_single_row(batch, fmt):
            return self.tag_rows([fmt.extract(batch)])[0]
        rows = self.tag_rows(extract_batch(batch, fmt))
        return {name: [r[name] for r in rows] for name in schema.TAG_FEATURES}

    def map(self, dataset, **map_kwargs):
        """``dataset.map(self, batched=True)`` with the output features declared and, for a
        ``Dataset``, a progress label; an ``IterableDataset`` is tagged lazily as it is read."""
        from datasets import Dataset, IterableDataset

        map_kwargs.setdefault("batched", True)
        if isinstance(dataset, Dataset):
            map_kwargs.setdefault("desc", "Tagging")
        if isinstance(dataset, (Dataset, IterableDataset)) and dataset.features is not None:
            kept = {k: v for k, v in dataset.features.items() if k not in schema.TAG_FEATURES}
            map_kwargs.setdefault("features", schema.Features({**kept, **schema.TAG_FEATURES}))
        rows_before = self.stats.rows
        if isinstance(dataset, Dataset) and self.configured_backend.whole_dataset:
            try:  # the Batch API: submit every query at once, then map from the answers
                self._settled = self._answers(self._dataset_requests(dataset))
                out = dataset.map(self, **map_kwargs)
            finally:
                self._settled = {}
        else:
            out = dataset.map(self, **map_kwargs)
        if isinstance(out, Dataset) and self.stats.rows == rows_before and len(out):
            # no row went through this process: datasets' own cache or worker processes served them
            self.stats.rows += len(out)
            self.stats.statuses.update(out[schema.STATUS])
            if (map_kwargs.get("num_proc") or 1) > 1:
                self.stats.worker_rows += len(out)
            else:
                self.stats.dataset_cache_rows += len(out)
        return out

    def _dataset_requests(self, dataset) -> dict[str, str]:
        """``key -> text`` of every request tagging ``dataset`` makes."""
        fmt = self._format(dataset.column_names)
        queries = [turn for batch in dataset.iter(batch_size=1000) for turns in extract_batch(batch, fmt)
                   for turn in turns]
        return {key: text for key, (text, _, _) in self._plan(queries)[1].items()}


def _has_words(text: str) -> bool:
    """Whether ``text`` holds a letter or a digit (a turn of emoji or zero-width characters holds none)."""
    return any(unicodedata.category(c)[0] in "LN" for c in text)


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


def _is_single_row(batch: Mapping[str, Any], fmt: QueryFormat) -> bool:
    """``map`` without ``batched=True`` passes one row; tell it from a batch by its type
    (``datasets`` passes a ``LazyRow`` or a ``LazyBatch``), else by its main column."""
    known = schema.passed_one_row(batch)
    if known is not None:
        return known
    value = batch.get(fmt.column or "instruction")
    if fmt.kind in ("sharegpt", "messages"):
        if isinstance(value, Mapping):  # one row of a struct-of-lists column
            return True
        if not value:  # an empty conversation, or an empty batch: a batch has every column a list
            return not all(isinstance(v, (list, tuple)) and len(v) == len(value or ()) for v in batch.values())
        role = "from" if fmt.kind == "sharegpt" else "role"
        return isinstance(value[0], Mapping) and isinstance(value[0].get(role), str)
    return not isinstance(value, (list, tuple))
