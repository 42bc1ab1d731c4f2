"""InsTag Space: tag a query with open-set intention tags, and browse a tagged dataset's statistics.

Configuration (environment variables, all optional):

- ``INSTAG_BACKEND``, ``INSTAG_MODEL``, ``INSTAG_TEMPLATE``: the tagger, as ``instag_hf.Tagger``
  takes them (default ``auto``: an API configured through ``INSTAG_API_BASE_URL``, else the
  retrieval tagger (nearest queries of the packaged tagged bank, no language model), else the
  embedded SmolLM2-135M-Instruct; without its weights package, the same model from the Hub).
- ``INSTAG_DATASET``: a tagged dataset (Hub id) whose statistics show on start.
- ``INSTAG_SPACE_DATA_DIRS``: folders (``:``-separated) whose datasets may be loaded by local
  path; none by default, so a public Space never reads its own disk for a visitor.
- ``INSTAG_SPACE_MAX_CHARS`` (4000), ``INSTAG_SPACE_MAX_BATCH`` (8),
  ``INSTAG_SPACE_CONCURRENCY`` (2), ``INSTAG_SPACE_QUEUE`` (64), ``INSTAG_SPACE_MAX_ROWS``
  (50000), ``INSTAG_SPACE_WARMUP`` (1: load the model before serving).

``?q=some+query`` in the page URL fills the query box and tags it on load.
"""

from __future__ import annotations

import html
import logging
import os
import re
import tempfile
import threading
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

import gradio as gr

import instag_hf
from instag_hf import schema

logger = logging.getLogger("instag_space")


def _int_env(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise SystemExit(f"{name} must be an integer >= {minimum}, got {raw!r}")
    return int(raw)


MAX_QUERY_CHARS = _int_env("INSTAG_SPACE_MAX_CHARS", 4000)
MAX_BATCH = _int_env("INSTAG_SPACE_MAX_BATCH", 8)
STATS_CONCURRENCY = _int_env("INSTAG_SPACE_CONCURRENCY", 2)
QUEUE_SIZE = _int_env("INSTAG_SPACE_QUEUE", 64)
MAX_ROWS = _int_env("INSTAG_SPACE_MAX_ROWS", 50_000)
DEFAULT_DATASET = os.environ.get("INSTAG_DATASET", "").strip()
DATA_DIRS = [Path(p).expanduser().resolve() for p in os.environ.get("INSTAG_SPACE_DATA_DIRS", "").split(":") if p]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
MAX_SOURCE_CHARS = 300

EXAMPLES = [
    "Write a Flask endpoint that creates, reads, updates and deletes users stored as JSON, with error handling.",
    "Check the spelling and grammar of this paragraph: Their going too the park tomorow.",
    "Pretend you are a medieval knight and describe your morning routine.",
    "A train leaves at 3 pm going 60 km/h; another leaves at 4 pm going 80 km/h. When does the second catch up?",
]


# ----------------------------------------------------------------------------- the shared tagger


class SharedTagger:
    """One :class:`instag_hf.Tagger` for every visitor: created once, its model loaded once, used by one
    request batch at a time (the queue batches concurrent visitors into one backend call)."""

    def __init__(self) -> None:
        self._tagger: instag_hf.Tagger | None = None
        self._create = threading.Lock()
        self._run = threading.Lock()

    @staticmethod
    def _make() -> instag_hf.Tagger:
        backend = os.environ.get("INSTAG_BACKEND", "auto").strip() or "auto"
        model = os.environ.get("INSTAG_MODEL", "").strip() or None
        template = os.environ.get("INSTAG_TEMPLATE", "").strip() or None
        tagger = instag_hf.Tagger(backend=backend, model=model, template=template, progress=False)
        try:
            tagger.backend  # noqa: B018 - resolves the backend (the model itself loads on first use)
        except RuntimeError:
            if backend != "auto" or model:
                raise
            # No weights package here (a Hub Space): the same SmolLM2-135M-Instruct, from the Hub.
            from instag_hf.tagging.backends.embedded import EMBEDDED_HUB_ID

            tagger = instag_hf.Tagger(backend="transformers", model=EMBEDDED_HUB_ID, template=template or "fewshot",
                                      progress=False)
            tagger.backend  # noqa: B018
        return tagger

    def get(self) -> instag_hf.Tagger:
        with self._create:
            if self._tagger is None:
                self._tagger = self._make()
            return self._tagger

    def describe(self) -> str:
        tagger = self.get()
        return f"{tagger.backend.describe()}, template {tagger.template.id}"

    def tag(self, queries: list[str]):
        tagger = self.get()
        with self._run:
            return tagger.tag_queries(queries)


TAGGER = SharedTagger()


# ----------------------------------------------------------------------------- tagging


def _result_html(result: dict) -> str:
    status = html.escape(result["status"])
    if result["tags"]:
        chips = "".join(
            f'<span class="instag-tag" title="{html.escape(t.get("explanation") or "", quote=True)}" '
            'style="display:inline-block;margin:3px;padding:3px 10px;border-radius:12px;background:#e0e7ff;'
            f'color:#1e1b4b;font-weight:600">{html.escape(t["tag"])}</span>'
            for t in result["tags"])
        rows = "".join(f"<tr><td><b>{html.escape(t['tag'])}</b></td><td>{html.escape(t.get('explanation') or '')}"
                       "</td></tr>" for t in result["tags"])
        body = (f'<div class="instag-tags">{chips}</div>'
                f'<table class="instag-explanations" style="margin-top:8px">{rows}</table>')
    else:
        body = (f'<p class="instag-error" style="color:#b91c1c">No tags: '
                f'{html.escape(result["error"] or "the tagger returned none")}</p>')
    return (f'<div class="instag-result" data-status="{status}">{body}'
            f'<p class="instag-meta" style="color:#6b7280;font-size:0.85em">status <code>{status}</code></p></div>')


def tag_batch(queries: list[str]) -> tuple[list[str], list[dict]]:
    """The ``tag`` event, batched: Gradio's queue hands it the queries of up to ``MAX_BATCH`` visitors."""
    results: list[dict | None] = [None] * len(queries)
    todo: list[int] = []
    for i, query in enumerate(queries):
        query = query if isinstance(query, str) else ""
        if len(query) > MAX_QUERY_CHARS:
            results[i] = {"status": "rejected", "tags": [], "query_chars": len(query),
                          "error": f"the query has {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,}"}
        elif not query.strip():
            results[i] = {"status": schema.EMPTY_QUERY, "tags": [], "query_chars": 0, "error": "type a query first"}
        else:
            todo.append(i)
    if todo:
        try:
            answers = TAGGER.tag([queries[i] for i in todo])
        except Exception as exc:  # noqa: BLE001 - one visitor's failure must not take the app down
            logger.exception("tagging failed")
            answers = [instag_hf.TurnResult([], schema.BACKEND_ERROR, f"{type(exc).__name__}: {exc}")] * len(todo)
        for i, answer in zip(todo, answers):
            results[i] = {"status": answer.status, "tags": answer.tags, "query_chars": len(queries[i]),
                          "error": answer.error}
    done = [r for r in results if r is not None]
    return [_result_html(r) for r in done], done


def on_load(request: gr.Request):
    """``?q=...`` fills the box and tags it, so a link (or a screenshot) shows a result."""
    query = (request.query_params.get("q") or "") if request is not None else ""
    query = query[:MAX_QUERY_CHARS]
    if not query.strip():
        return gr.update(), gr.update(), gr.update()
    htmls, results = tag_batch([query])
    return query, htmls[0], results[0]


# ----------------------------------------------------------------------------- dataset statistics


def _local_allowed(path: Path) -> bool:
    return any(path == root or root in path.parents for root in DATA_DIRS)


def _pick_split(data: Any, split: str):
    from datasets import DatasetDict

    if isinstance(data, DatasetDict):
        if split not in data:
            raise gr.Error(f"split {split!r} not found; the dataset has {sorted(data)}")
        return data[split]
    return data


def load_tagged(source: str, config: str | None, split: str):
    """A tagged dataset (at most ``MAX_ROWS`` rows) from a Hub id or an allowed local path."""
    from datasets import Dataset, load_dataset, load_from_disk

    source = (source or "").strip()
    if not source:
        raise gr.Error("type a Hub dataset id (owner/name) or a local path")
    if len(source) > MAX_SOURCE_CHARS:
        raise gr.Error(f"the dataset name is longer than {MAX_SOURCE_CHARS} characters")
    path = Path(source).expanduser()
    if path.exists():
        path = path.resolve()
        if not _local_allowed(path):
            raise gr.Error("local paths are only read under INSTAG_SPACE_DATA_DIRS; give a Hub dataset id")
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            ds = _pick_split(load_from_disk(str(path)), split)
        elif path.is_dir():
            ds = load_dataset(str(path), config, split=split)
        else:
            kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
            if kind is None:
                raise gr.Error("local files must be .jsonl, .json, .parquet or .csv")
            ds = load_dataset(kind, data_files=str(path), split="train")
        return ds.select(range(min(len(ds), MAX_ROWS)))
    if not HUB_ID.match(source):
        raise gr.Error(f"{source!r} is neither a Hub dataset id (owner/name) nor an allowed local path")
    stream = load_dataset(source, config, split=split, streaming=True)
    rows = list(islice(iter(stream), MAX_ROWS))
    return Dataset.from_list(rows, features=stream.features)


@lru_cache(maxsize=8)
def _stats(source: str, config: str | None, split: str) -> tuple[str, list[tuple[str, str]], dict]:
    from instag_hf.analysis.metrics import analyze
    from instag_hf.publish.bundle import status_counts
    from instag_hf.publish.card_data import PLOT_SECTIONS
    from instag_hf.publish.filters import md_cell, pct
    from instag_hf.reporting.plots import analysis_plots

    ds = load_tagged(source, config, split)
    try:
        analysis = analyze(ds, names=[config or "dataset"], top=15)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    m = analysis.datasets[0]
    statuses = status_counts(ds)
    total = sum(statuses.values())
    parse_rate = statuses.get(schema.PARSE_ERROR, 0) / total if total else None
    folder = Path(tempfile.mkdtemp(prefix="instag-space-plots-"))
    images = [(str(p), PLOT_SECTIONS.get(k, ("", k))[1]) for k, p in analysis_plots(analysis, folder).items()]
    capped = " (first rows only)" if len(ds) >= MAX_ROWS else ""
    lines = [
        f"### {md_cell(source)} — {md_cell(config or '')} / {md_cell(split)}",
        "",
        "| | |", "|---|---:|",
        f"| rows{capped} | {m.rows:,} |",
        f"| tagged rows (`ok`/`truncated`) | {m.tagged_rows:,} |",
        f"| parse-failure rate | {pct(parse_rate, 2)} |",
        f"| unique tags (diversity) | {m.diversity:,} |",
        f"| average tags per sample (complexity) | {m.complexity:.2f} |",
        f"| tags column | `{analysis.tags_column}` |",
        "",
    ]
    if statuses:
        lines += ["**Status:** " + ", ".join(f"`{k}` {v:,}" for k, v in sorted(statuses.items())), ""]
    lines += ["| rank | tag | rows |", "|---:|---|---:|"]
    lines += [f"| {i} | {md_cell(t)} | {n:,} |" for i, (t, n) in enumerate(m.top_tags, 1)]
    summary = {"source": source, "config": config, "split": split, "rows": m.rows, "tagged_rows": m.tagged_rows,
               "statuses": statuses, "parse_failure_rate": parse_rate, "diversity": m.diversity,
               "complexity": m.complexity, "tags_column": analysis.tags_column,
               "top_tags": [[t, n] for t, n in m.top_tags]}
    return "\n".join(lines), images, summary


def dataset_stats(source: str, config: str, split: str):
    """The ``stats`` event: a summary table, the plots and the numbers as JSON."""
    config = (config or "").strip() or None
    split = (split or "").strip() or "train"
    if not re.fullmatch(r"\w+(\.\w+)*", split):
        raise gr.Error(f"split {split!r} is not a valid split name")
    try:
        return _stats((source or "").strip(), config, split)
    except gr.Error:
        raise
    except Exception as exc:  # noqa: BLE001 - show the reason, keep serving
        logger.exception("loading %s failed", source)
        raise gr.Error(f"could not load {source!r}: {type(exc).__name__}: {exc}") from None


# ----------------------------------------------------------------------------- the page


def build_demo() -> gr.Blocks:
    described = TAGGER.describe()
    with gr.Blocks(title="InsTag: intention tags") as demo:
        gr.Markdown(
            "# InsTag: open-set intention tags\n"
            "Tags describe what a user query asks for, as in [InsTag](https://arxiv.org/abs/2308.07074) "
            "(ICLR 2024). Tag one query, or look at the diversity (unique tags) and complexity (tags per sample) "
            "of a tagged dataset.")
        with gr.Tab("Tag a query"):
            query = gr.Textbox(label=f"Query (at most {MAX_QUERY_CHARS:,} characters)", lines=5,
                               max_length=MAX_QUERY_CHARS, elem_id="instag-query",
                               placeholder="Write a Flask endpoint that ...")
            with gr.Row():
                run = gr.Button("Tag", variant="primary")
                clear = gr.ClearButton(query)
            gr.Markdown(f"Queries longer than {MAX_QUERY_CHARS:,} characters are refused. "
                        f"Tagger: `{html.escape(described)}`.", elem_id="instag-note")
            tags_html = gr.HTML(elem_id="instag-result")
            tags_json = gr.JSON(label="Result as JSON")
            clear.add([tags_html, tags_json])
            gr.Examples(EXAMPLES, inputs=query)
        with gr.Tab("Dataset statistics"):
            with gr.Row():
                source = gr.Textbox(label="Tagged dataset: Hub id (owner/name) or allowed local path",
                                    value=DEFAULT_DATASET, max_length=MAX_SOURCE_CHARS, scale=3)
                config = gr.Textbox(label="Config", value="default", scale=1)
                split = gr.Textbox(label="Split", value="train", scale=1)
            load = gr.Button("Load statistics", variant="primary")
            stats_md = gr.Markdown()
            gallery = gr.Gallery(label="Plots", columns=2, height="auto")
            stats_json = gr.JSON(label="Numbers")

        tag_event = dict(fn=tag_batch, inputs=query, outputs=[tags_html, tags_json], batch=True,
                         max_batch_size=MAX_BATCH, concurrency_limit=1, concurrency_id="tagger")
        run.click(api_name="tag", **tag_event)
        query.submit(api_visibility="undocumented", **tag_event)
        demo.load(on_load, None, [query, tags_html, tags_json], concurrency_limit=1, concurrency_id="tagger",
                  api_visibility="undocumented")
        load.click(dataset_stats, [source, config, split], [stats_md, gallery, stats_json], api_name="stats",
                   concurrency_limit=STATS_CONCURRENCY)
        if DEFAULT_DATASET:
            demo.load(dataset_stats, [source, config, split], [stats_md, gallery, stats_json],
                      concurrency_limit=STATS_CONCURRENCY, api_visibility="undocumented")
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=STATS_CONCURRENCY)
    return demo


demo = build_demo()

if __name__ == "__main__":
    if os.environ.get("INSTAG_SPACE_WARMUP", "1") == "1":
        TAGGER.tag([EXAMPLES[0]])  # load the model now, not for the first visitor
    demo.launch(show_error=True)
