"""InsTag Space: tag a query with open-set intention tags, and explore tagged datasets tag by tag.

Tabs: tag one query; explore a dataset (Hub id, allowed local folder, or an uploaded file that the Space
tags): its tag table, the rows of a tag (or of several, all / any) and the tags found beside them; compare
two datasets or configs; the statistics and PNG plots of a dataset. Named API endpoints (``gradio_client``):
``tag``, ``tag_file``, ``tag_table``, ``rows_for_tag``, ``compare``, ``stats``.

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
  (50000: a larger dataset is sampled, with a notice), ``INSTAG_SPACE_MAX_UPLOAD_MB`` (20),
  ``INSTAG_SPACE_MAX_UPLOAD_ROWS`` (2000: rows of an upload the Space tags), ``INSTAG_SPACE_PAGE_ROWS``
  (20: rows of a tag per page), ``INSTAG_SPACE_WARMUP``
  (1: load the model before serving).

``?q=some+query`` in the page URL fills the query box and tags it on load.
"""

from __future__ import annotations

import html
import logging
import os
import re
import tempfile
import threading
from functools import lru_cache, wraps
from itertools import islice
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

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
MAX_UPLOAD_MB = _int_env("INSTAG_SPACE_MAX_UPLOAD_MB", 20)
MAX_UPLOAD_ROWS = _int_env("INSTAG_SPACE_MAX_UPLOAD_ROWS", 2000)
FILE_KINDS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
UPLOAD_DIR = Path(tempfile.mkdtemp(prefix="instag-space-uploads-"))
UPLOAD_ID = re.compile(r"^upload:[0-9a-f]{16}$")
PAGE_SIZE = _int_env("INSTAG_SPACE_PAGE_ROWS", 20)  # rows of a tag per page
TOP_PLOT_TAGS = 25  # bars in the top-tags plot
MAX_CHOICES = 5000  # tags offered in the tag picker (any tag can still be typed)
MAX_SHOWN_CHARS = 600  # query text shown per row
MAX_ONLY = 500  # rows of the "tags only one side has" tables

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

    def map(self, ds):
        """``ds`` tagged (a small part of an upload at a time, so single queries get their turn between parts)."""
        tagger = self.get()
        with self._run:
            return tagger.map(ds, keep_in_memory=True, desc=None)


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


# ----------------------------------------------------------------------------- loading datasets


def _local_allowed(path: Path) -> bool:
    return any(path == root or root in path.parents for root in DATA_DIRS)


def _pick_split(data: Any, split: str):
    from datasets import DatasetDict

    if isinstance(data, DatasetDict):
        if split not in data:
            raise gr.Error(f"split {split!r} not found; the dataset has {sorted(data)}", print_exception=False)
        return data[split]
    return data


def _sampled(ds, total: int | None, first_only: bool = False) -> tuple[Any, str]:
    """At most ``MAX_ROWS`` rows of ``ds``, and a notice saying so when rows were left out."""
    if len(ds) <= MAX_ROWS and not first_only:
        return ds, ""
    if first_only:
        size = f"{total:,}" if total else "more than that"
        return ds, (f"The dataset is too large to explore whole: showing its first {len(ds):,} rows of {size} "
                    f"(limit {MAX_ROWS:,}, `INSTAG_SPACE_MAX_ROWS`).")
    return (ds.shuffle(seed=0).select(range(MAX_ROWS)),
            f"The dataset is too large to explore whole: showing a random sample of {MAX_ROWS:,} of its "
            f"{len(ds):,} rows (limit `INSTAG_SPACE_MAX_ROWS`).")


def _read_file(path: Path, split: str = "train"):
    from datasets import load_dataset

    kind = FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise gr.Error(f"{path.name}: files must be {', '.join(FILE_KINDS)}", print_exception=False)
    if path.stat().st_size == 0:
        raise gr.Error(f"{path.name} is an empty file: the dataset has no rows", print_exception=False)
    try:
        return load_dataset(kind, data_files=str(path), split=split)
    except Exception as exc:  # noqa: BLE001 - any reader failure means: not a dataset
        if "corresponds to no data" in str(exc):
            raise gr.Error(f"{path.name} holds no rows: the dataset is empty", print_exception=False) from None
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise gr.Error(f"{path.name} is not a dataset that can be read as {path.suffix.lower()} ({reason})",
                       print_exception=False) from None


def _from_disk(path: Path, split: str):
    from datasets import load_from_disk

    try:
        return _pick_split(load_from_disk(str(path)), split)
    except IndexError:  # datasets cannot read back a saved dataset of no rows (no shard)
        raise gr.Error("the dataset is empty: it has no rows to show", print_exception=False) from None


@lru_cache(maxsize=6)
def _load(source: str, config: str | None, split: str) -> tuple[Any, str]:
    """A dataset (``MAX_ROWS`` rows at most) and a notice when it was sampled; from a Hub id, an allowed
    local path or an upload handle (``upload:<id>``)."""
    from datasets import Dataset, load_dataset

    if not source:
        raise gr.Error("type a Hub dataset id (owner/name) or a local path, or upload a file",
                       print_exception=False)
    if len(source) > MAX_SOURCE_CHARS:
        raise gr.Error(f"the dataset name is longer than {MAX_SOURCE_CHARS} characters", print_exception=False)
    if source.startswith("upload:"):
        folder = UPLOAD_DIR / source[len("upload:"):]
        if not UPLOAD_ID.match(source) or not folder.is_dir():
            raise gr.Error(f"{source!r} is not an upload of this Space (uploads last until it restarts)",
                           print_exception=False)
        return _sampled(_from_disk(folder, split), None)
    path = Path(source).expanduser()
    if path.exists():
        path = path.resolve()
        if not _local_allowed(path):
            raise gr.Error("local paths are only read under INSTAG_SPACE_DATA_DIRS; give a Hub dataset id",
                           print_exception=False)
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            ds = _from_disk(path, split)
        elif path.is_dir():
            ds = load_dataset(str(path), config, split=split)
        else:
            ds = _read_file(path)
        return _sampled(ds, None)
    if not HUB_ID.match(source):
        raise gr.Error(f"{source!r} is neither a Hub dataset id (owner/name) nor an allowed local path",
                       print_exception=False)
    stream = load_dataset(source, config, split=split, streaming=True)
    rows = list(islice(iter(stream), MAX_ROWS + 1))
    ds = Dataset.from_list(rows[:MAX_ROWS], features=stream.features)
    if len(rows) <= MAX_ROWS:
        return ds, ""
    splits = getattr(stream.info, "splits", None) or {}
    total = getattr(splits.get(split), "num_examples", None) if split in splits else None
    return _sampled(ds, total, first_only=True)


def _clean_args(source: str, config: str | None, split: str | None) -> tuple[str, str | None, str]:
    config = (config or "").strip() or None
    split = (split or "").strip() or "train"
    if not re.fullmatch(r"\w+(\.\w+)*", split):
        raise gr.Error(f"split {split!r} is not a valid split name", print_exception=False)
    return (source or "").strip(), config, split


def load_tagged(source: str, config: str | None, split: str):
    """A tagged dataset (at most ``MAX_ROWS`` rows) from a Hub id, an allowed local path or an upload."""
    return _load(*_clean_args(source, config, split))[0]


def friendly(fn):
    """Errors become one clear message in the page (``gr.Error``), never a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ValueError as exc:  # ExploreError, QueryFormatError and the library's own checks
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - show the reason, keep serving
            logger.exception("%s failed", fn.__name__)
            raise gr.Error(f"{type(exc).__name__}: {str(exc)[:500]}", print_exception=False) from None

    return wrapper


# ----------------------------------------------------------------------------- dataset statistics


@lru_cache(maxsize=8)
def _stats(source: str, config: str | None, split: str) -> tuple[str, list[tuple[str, str]], dict]:
    from instag_hf.analysis.metrics import analyze
    from instag_hf.publish.bundle import status_counts
    from instag_hf.publish.card_data import PLOT_SECTIONS
    from instag_hf.publish.filters import md_cell, pct
    from instag_hf.reporting.plots import analysis_plots

    ds, notice = _load(source, config, split)
    if len(ds) == 0:
        raise gr.Error("the dataset is empty: it has no rows to show", print_exception=False)
    try:
        analysis = analyze(ds, names=[config or "dataset"], top=15)
    except ValueError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    m = analysis.datasets[0]
    statuses = status_counts(ds)
    total = sum(statuses.values())
    parse_rate = statuses.get(schema.PARSE_ERROR, 0) / total if total else None
    folder = Path(tempfile.mkdtemp(prefix="instag-space-plots-"))
    images = [(str(p), PLOT_SECTIONS.get(k, ("", k))[1]) for k, p in analysis_plots(analysis, folder).items()]
    capped = " (sampled)" if notice else ""
    lines = [
        f"### {md_cell(source)} — {md_cell(config or '')} / {md_cell(split)}",
        "",
        *([f"> {notice}", ""] if notice else []),
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
               "top_tags": [[t, n] for t, n in m.top_tags], "sampled": bool(notice)}
    return "\n".join(lines), images, summary


@friendly
def dataset_stats(source: str, config: str, split: str):
    """The ``stats`` event: a summary table, the plots and the numbers as JSON."""
    return _stats(*_clean_args(source, config, split))


# ----------------------------------------------------------------------------- the explorer


@lru_cache(maxsize=6)
def _explorer(source: str, config: str | None, split: str, view: str):
    from instag_hf.reporting.explore import Explorer

    ds, notice = _load(source, config, split)
    return Explorer(ds, view), notice


def explorer(source: str, config: str | None, split: str | None, view: str | None):
    """The cached :class:`Explorer` of a dataset and its sampling notice."""
    view = (view or "auto").strip().lower()
    return _explorer(*_clean_args(source, config, split), view)


def _frame(records: list[dict], columns: list[str]):
    import pandas as pd

    return pd.DataFrame([[r[c] for c in columns] for r in records], columns=columns)


@friendly
def tag_table(source: str, config: str, split: str, view: str, search: str):
    """The ``tag_table`` event: a summary line and every tag with its rows and share (``search`` filters)."""
    ex, notice = explorer(source, config, split, view)
    records = ex.tag_table(search=(search or "")[:200])
    for r in records:
        r["share"] = round(100 * r["share"], 2)
    found = f"; {len(records):,} match {search.strip()!r}" if (search or "").strip() else ""
    lines = [f"**{len(ex.ds):,} rows**, {ex.usable_rows:,} tagged (`ok`/`truncated`), "
             f"**{int((ex.counts > 0).sum()):,} tags** ({ex.view} tags, `{ex.column}`){found}. "
             "Click a tag to see its rows."]
    if len(ex.views) > 1:
        lines.append(f"This dataset also has {', '.join(v for v in ex.views if v != ex.view)} tags (Tags above).")
    if notice:
        lines.append(f"> {notice}")
    return "\n\n".join(lines), _frame(records, ["tag", "rows", "share"]).rename(columns={"share": "share %"})


@friendly
def explore_extras(source: str, config: str, split: str, view: str):
    """The tag choices and the interactive plots (top tags, tags per row) of a loaded dataset."""
    import pandas as pd

    ex, _ = explorer(source, config, split, view)
    top = ex.tag_table(limit=TOP_PLOT_TAGS)
    hist = ex.metrics().tag_count_histogram
    per_row = pd.DataFrame({"tags per row": [str(k) for k in hist], "rows": list(hist.values())})
    choices = [r["tag"] for r in ex.tag_table(limit=MAX_CHOICES)]
    return (gr.Dropdown(choices=choices, value=[]), _frame(top, ["tag", "rows"]), per_row)


@friendly
def rows_for_tag(source: str, config: str, split: str, view: str, tags, mode: str, page):
    """The ``rows_for_tag`` event: one page of the rows carrying the tags (all / any) and their co-occurring tags."""
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    try:
        page = int(page or 1)
    except (TypeError, ValueError):
        raise gr.Error(f"page must be a number, got {page!r}", print_exception=False) from None
    ex, _ = explorer(source, config, split, view)
    result = ex.rows_for_tags(tags, (mode or "all").strip().lower(), page=page, page_size=PAGE_SIZE)
    first = (result.page - 1) * PAGE_SIZE + 1 if result.total else 0
    joined = f" {result.mode} of " if len(result.tags) > 1 else " "
    last = first + len(result.rows) - 1 if result.rows else 0
    lines = [f"**{result.total:,} rows** carry{joined}{', '.join(f'`{t}`' for t in result.tags)} — showing "
             f"{first:,}–{last:,}, page {result.page} of {result.pages}."]
    rows = [{"row": r["row"], "query": _short(r["query"]), "tags": ", ".join(r["tags"]), "status": r["status"]}
            for r in result.rows]
    for c in result.cooccurring:
        c["share"] = round(100 * c["share"], 1)
    return ("\n\n".join(lines), _frame(rows, ["row", "query", "tags", "status"]),
            _frame(result.cooccurring, ["tag", "rows", "share"]).rename(columns={"share": "share of these rows %"}))


def _short(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + " …"


def rows_for_new_tags(source, config, split, view, tags, mode):
    """Rows from page 1 when the chosen tags change (nothing when none is chosen)."""
    if not tags:
        return gr.update(), gr.update(), gr.update(), gr.update()
    return (*rows_for_tag(source, config, split, view, tags, mode, 1), 1)


def pick_tag(event: gr.SelectData):
    """A click on the tag table shows that row's tag (pick several in the tag box)."""
    row = event.row_value or []
    return [row[0]] if row else gr.update()


# ----------------------------------------------------------------------------- uploads


@friendly
def tag_file(file, progress=gr.Progress()):
    """The ``tag_file`` event: read an uploaded JSONL/JSON/parquet/CSV file, tag it with the Space's tagger
    (progress bar) and keep it for exploring; returns a notice, the tagged file (JSONL) and its handle."""
    import hashlib

    from instag_hf.analysis.tagsets import TAG_COLUMNS
    from instag_hf.tagging.queries import detect_format

    if not file:
        raise gr.Error("choose a file to upload first", print_exception=False)
    path = Path(file if isinstance(file, str) else getattr(file, "name", str(file)))
    if not path.is_file():
        raise gr.Error("the upload did not arrive; try again", print_exception=False)
    size = path.stat().st_size
    if size > MAX_UPLOAD_MB * 1024 * 1024:
        raise gr.Error(f"{path.name} has {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_MB} MB",
                       print_exception=False)
    progress(0, desc="Reading the file")
    ds = _read_file(path)
    if len(ds) == 0:
        raise gr.Error(f"{path.name} holds no rows: the dataset is empty", print_exception=False)
    notes = []
    if len(ds) > MAX_UPLOAD_ROWS:
        notes.append(f"The file has {len(ds):,} rows; the Space tags a random sample of {MAX_UPLOAD_ROWS:,} "
                     "(`INSTAG_SPACE_MAX_UPLOAD_ROWS`). Tag the whole file with `instag tag`.")
        ds = ds.shuffle(seed=0).select(range(MAX_UPLOAD_ROWS))
    if any(c in ds.column_names for c in TAG_COLUMNS):
        notes.append(f"{path.name} is already tagged: shown as it is.")
        tagged = ds
    else:
        detect_format(ds.column_names)  # a clear message now when the queries cannot be found
        parts = []
        step = max(8, min(200, len(ds) // 20 or 1))
        for start in progress.tqdm(range(0, len(ds), step), desc="Tagging", unit="batches"):
            parts.append(TAGGER.map(ds.select(range(start, min(start + step, len(ds))))))
        from datasets import concatenate_datasets

        tagged = concatenate_datasets(parts)
        statuses = {s: tagged[schema.STATUS].count(s) for s in sorted(set(tagged[schema.STATUS]))}
        notes.append(f"Tagged {len(tagged):,} rows with `{html.escape(TAGGER.describe())}`: "
                     + ", ".join(f"`{k}` {v:,}" for k, v in statuses.items()) + ".")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    folder = UPLOAD_DIR / digest
    if not folder.is_dir():
        tagged.save_to_disk(str(folder))
    download = UPLOAD_DIR / f"{digest}-{re.sub(r'[^A-Za-z0-9_.-]', '_', path.stem)[:60]}.tagged.jsonl"
    tagged.to_json(str(download), lines=True, force_ascii=False)
    return "\n\n".join(notes), str(download), f"upload:{digest}"


# ----------------------------------------------------------------------------- comparing two datasets


def _names(source_a, config_a, source_b, config_b) -> list[str]:
    """Short distinct labels: the configs of one dataset, else the datasets' last path parts."""
    same = source_a == source_b
    a = (config_a or "default") if same else source_a.rstrip("/").split("/")[-1]
    b = (config_b or "default") if same else source_b.rstrip("/").split("/")[-1]
    if a == b:
        a, b = f"A: {a}", f"B: {b}"
    return [a, b]


@friendly
def compare(source_a: str, config_a: str, source_b: str, config_b: str, split: str, view: str):
    """The ``compare`` event: coverage, tags only one side has, the tag-recall heat map and the
    diversity-complexity plot with both datasets marked."""
    import pandas as pd

    from instag_hf.publish.filters import md_cell
    from instag_hf.reporting.explore import compare_datasets
    from instag_hf.reporting.plots import plot_recall_heatmap

    a_args, b_args = _clean_args(source_a, config_a, split), _clean_args(source_b, config_b, split)
    if a_args == b_args:
        raise gr.Error("choose two different datasets or configs to compare", print_exception=False)
    (a, notice_a), (b, notice_b) = _load(*a_args), _load(*b_args)
    names = _names(a_args[0], a_args[1], b_args[0], b_args[1])
    result = compare_datasets(a, b, names=names, view=(view or "auto").strip().lower())
    ma, mb = result.metrics
    cov = {k: ("—" if v is None else f"{100 * v:.1f}%") for k, v in result.coverage.items()}
    lines = [f"**{md_cell(names[0])}** against **{md_cell(names[1])}** ({result.view} tags)", "",
             f"| | {md_cell(names[0])} | {md_cell(names[1])} |", "|---|---:|---:|",
             f"| rows | {ma.rows:,} | {mb.rows:,} |",
             f"| unique tags (diversity) | {ma.diversity:,} | {mb.diversity:,} |",
             f"| average tags per sample (complexity) | {ma.complexity:.2f} | {mb.complexity:.2f} |",
             f"| coverage of the other's tags | {cov[names[0]]} | {cov[names[1]]} |",
             f"| tags only here | {len(result.only[names[0]]):,} | {len(result.only[names[1]]):,} |",
             "", f"{result.shared:,} tags are on both sides."]
    lines += [f"> {n}" for n in (notice_a, notice_b) if n]
    folder = Path(tempfile.mkdtemp(prefix="instag-space-compare-"))
    recall = np.array([[np.nan if x is None else x for x in row] for row in result.recall], dtype=float)
    heatmap = plot_recall_heatmap(names, recall, folder / "tag_recall.png")
    points = pd.DataFrame({"dataset": names, "diversity": [ma.diversity, mb.diversity],
                           "complexity": [round(ma.complexity, 3), round(mb.complexity, 3)],
                           "rows": [ma.rows, mb.rows]})
    return ("\n".join(lines), _frame(result.only[names[0]][:MAX_ONLY], ["tag", "rows"]),
            _frame(result.only[names[1]][:MAX_ONLY], ["tag", "rows"]), str(heatmap), points)


# ----------------------------------------------------------------------------- the page


def _dataset_row(prefix: str = "", value: str = "", config: str = "default"):
    with gr.Row():
        source = gr.Textbox(label=f"{prefix}Tagged dataset: Hub id (owner/name), allowed local path or upload:…",
                            value=value, max_length=MAX_SOURCE_CHARS, scale=3,
                            elem_id=f"instag-{prefix[:1].lower() or 'x'}-source")
        config = gr.Textbox(label=f"{prefix}Config", value=config, scale=1)
    return source, config


def build_demo() -> gr.Blocks:
    described = TAGGER.describe()
    with gr.Blocks(title="InsTag: intention tags") as demo:
        gr.Markdown(
            "# InsTag: open-set intention tags\n"
            "Tags describe what a user query asks for, as in [InsTag](https://arxiv.org/abs/2308.07074) "
            "(ICLR 2024). Tag one query; explore a tagged dataset tag by tag (or upload a file to have it "
            "tagged); compare two datasets or configs.")
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
        with gr.Tab("Explore a dataset"):
            gr.Markdown(f"Load a tagged dataset, or upload a file to have it tagged by `{html.escape(described)}`. "
                        f"Datasets over {MAX_ROWS:,} rows are sampled (the page says so).")
            with gr.Row():
                with gr.Column(scale=3):
                    ex_source, ex_config = _dataset_row(value=DEFAULT_DATASET)
                    with gr.Row():
                        ex_split = gr.Textbox(label="Split", value="train", scale=1)
                        ex_view = gr.Radio(["auto", "normalized", "raw"], value="auto", label="Tags", scale=2,
                                           info="auto: normalized tags when the dataset has them")
                        ex_load = gr.Button("Load", variant="primary", scale=1, elem_id="instag-load")
                with gr.Column(scale=2):
                    upload = gr.File(label=f"…or upload a file to tag: JSONL, JSON, parquet or CSV, at most "
                                           f"{MAX_UPLOAD_MB} MB ({MAX_UPLOAD_ROWS:,} rows are tagged)",
                                     file_types=list(FILE_KINDS), height=150, elem_id="instag-upload")
                    upload_md = gr.Markdown(elem_id="instag-upload-note")
                    tagged_file = gr.DownloadButton("Download the tagged file (JSONL)", size="sm",
                                                    elem_id="instag-download")
            summary_md = gr.Markdown(elem_id="instag-summary")
            with gr.Row():
                with gr.Column(scale=2):
                    search = gr.Textbox(label="Search tags", placeholder="part of a tag, then Enter",
                                        max_length=200)
                    table = gr.Dataframe(label="Tags (click a tag for its rows; click a header to sort)",
                                         headers=["tag", "rows", "share %"], interactive=False, max_height=420,
                                         elem_id="instag-tag-table")
                with gr.Column(scale=3):
                    top_plot = gr.BarPlot(x="tag", y="rows", title="Most frequent tags", sort="-y",
                                          y_lim=[0, None], x_label_angle=-45, height=300, elem_id="instag-top-plot")
                    per_row_plot = gr.BarPlot(x="tags per row", y="rows", title="Tags per row", height=220,
                                              y_lim=[0, None],
                                              elem_id="instag-per-row-plot")
            gr.Markdown("### Rows of a tag")
            with gr.Row():
                picked = gr.Dropdown(label="Tags (type to search; several: all of them or any of them)",
                                     choices=[], multiselect=True, allow_custom_value=True, scale=4,
                                     elem_id="instag-tags")
                mode = gr.Radio(["all", "any"], value="all", label="Rows with", scale=1)
                page = gr.Number(value=1, label="Page", precision=0, minimum=1, scale=1)
                show = gr.Button("Show rows", scale=1)
            rows_md = gr.Markdown(elem_id="instag-rows-note")
            rows = gr.Dataframe(label="Rows", headers=["row", "query", "tags", "status"], interactive=False,
                                wrap=True, max_height=600, column_widths=["6%", "54%", "30%", "10%"],
                                elem_id="instag-rows")
            cooc = gr.Dataframe(label="Tags found most often on these rows",
                                headers=["tag", "rows", "share of these rows %"], interactive=False, max_height=300)
        with gr.Tab("Compare"):
            gr.Markdown("Two datasets, or two configs of one (for example `default` and `selected_cfd_6000`).")
            a_source, a_config = _dataset_row("A: ", DEFAULT_DATASET)
            b_source, b_config = _dataset_row("B: ", DEFAULT_DATASET, "")
            with gr.Row():
                c_split = gr.Textbox(label="Split", value="train", scale=1)
                c_view = gr.Radio(["auto", "normalized", "raw"], value="auto", label="Tags", scale=2)
                c_run = gr.Button("Compare", variant="primary", scale=1)
            compare_md = gr.Markdown()
            with gr.Row():
                only_a = gr.Dataframe(label="Tags only A has", headers=["tag", "rows"], interactive=False,
                                      max_height=360)
                only_b = gr.Dataframe(label="Tags only B has", headers=["tag", "rows"], interactive=False,
                                      max_height=360)
            with gr.Row():
                heatmap = gr.Image(label="Tag recall (row dataset's tags found in the column dataset)",
                                   type="filepath", height=360)
                scatter = gr.ScatterPlot(x="diversity", y="complexity", color="dataset", height=360,
                                         title="Diversity and complexity", tooltip="all")
        with gr.Tab("Statistics"):
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

        dataset = [ex_source, ex_config, ex_split, ex_view]
        table_event = dict(fn=tag_table, inputs=[*dataset, search], outputs=[summary_md, table])
        extras = dict(fn=explore_extras, inputs=dataset, outputs=[picked, top_plot, per_row_plot],
                      api_visibility="undocumented")
        ex_load.click(api_name="tag_table", **table_event).success(**extras)
        ex_source.submit(api_visibility="undocumented", **table_event).success(**extras)
        ex_view.change(api_visibility="undocumented", **table_event).success(**extras)
        search.submit(api_visibility="undocumented", **table_event)
        upload.upload(tag_file, upload, [upload_md, tagged_file, ex_source], api_name="tag_file",
                      concurrency_limit=1, concurrency_id="upload") \
            .success(lambda: ("", "train"), None, [ex_config, ex_split], api_visibility="undocumented") \
            .success(api_visibility="undocumented", **table_event).success(**extras)

        rows_inputs = [*dataset, picked, mode, page]
        rows_outputs = [rows_md, rows, cooc]
        show.click(rows_for_tag, rows_inputs, rows_outputs, api_name="rows_for_tag")
        page.submit(rows_for_tag, rows_inputs, rows_outputs, api_visibility="undocumented")
        new_rows = dict(fn=rows_for_new_tags, inputs=rows_inputs[:-1], outputs=[*rows_outputs, page],
                        api_visibility="undocumented")
        picked.change(**new_rows)
        mode.change(**new_rows)
        table.select(pick_tag, None, picked, api_visibility="undocumented")

        c_run.click(compare, [a_source, a_config, b_source, b_config, c_split, c_view],
                    [compare_md, only_a, only_b, heatmap, scatter], api_name="compare")

        load.click(dataset_stats, [source, config, split], [stats_md, gallery, stats_json], api_name="stats",
                   concurrency_limit=STATS_CONCURRENCY)
        if DEFAULT_DATASET:
            demo.load(dataset_stats, [source, config, split], [stats_md, gallery, stats_json],
                      concurrency_limit=STATS_CONCURRENCY, api_visibility="undocumented")
            demo.load(api_visibility="undocumented", **table_event).success(**extras)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=STATS_CONCURRENCY)
    return demo


demo = build_demo()

if __name__ == "__main__":
    if os.environ.get("INSTAG_SPACE_WARMUP", "1") == "1":
        TAGGER.tag([EXAMPLES[0]])  # load the model now, not for the first visitor
    demo.launch(show_error=True, max_file_size=f"{MAX_UPLOAD_MB}mb")
