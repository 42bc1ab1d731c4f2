"""Analysis and selection reports as Markdown and as a self-contained HTML page.

A report is built once as a small :class:`Document` (headings, paragraphs, tables,
images) and rendered twice: Markdown links the PNG files next to it, HTML embeds
them as base64 so the page can be mailed or uploaded alone.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..analysis.metrics import Analysis
from ..strict_json import write_json
from ..selection.report import SelectionReport

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
"""


@dataclass
class Document:
    """Blocks rendered to Markdown or HTML; ``title`` becomes the top heading."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> Document:
        self.blocks.append(("heading", (level, text)))
        return self

    def text(self, text: str) -> Document:
        self.blocks.append(("text", text))
        return self

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Document:
        self.blocks.append(("table", (list(header), [list(r) for r in rows])))
        return self

    def image(self, path: str | Path, alt: str) -> Document:
        self.blocks.append(("image", (Path(path), alt)))
        return self

    def to_markdown(self, relative_to: str | Path | None = None) -> str:
        """Markdown; image links are relative to ``relative_to`` (the folder the file is written to)."""
        lines = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                lines += [f"{'#' * value[0]} {value[1]}", ""]
            elif kind == "text":
                lines += [value, ""]
            elif kind == "table":
                header, rows = value
                lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
                lines.append("|" + "|".join("---:" if _numeric_column(rows, i) else "---"
                                             for i in range(len(header))) + "|")
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                lines.append("")
            elif kind == "image":
                path, alt = value
                link = path.name if relative_to is None else _relative(path, Path(relative_to))
                lines += [f"![{alt}]({link})", ""]
        return "\n".join(lines).rstrip() + "\n"

    def to_html(self) -> str:
        """A standalone page; images are read and embedded as ``data:image/png;base64``."""
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                body.append(f"<h{value[0]}>{html.escape(value[1])}</h{value[0]}>")
            elif kind == "text":
                body.append(f"<p>{html.escape(value)}</p>")
            elif kind == "table":
                header, rows = value
                out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
                       + "</tr></thead><tbody>"]
                for row in rows:
                    out.append("<tr>" + "".join(
                        f"<td class=\"num\">{html.escape(_fmt(c))}</td>" if _is_number(c)
                        else f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>")
                out.append("</tbody></table>")
                body.append("".join(out))
            elif kind == "image":
                path, alt = value
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                body.append(f"<img alt=\"{html.escape(alt)}\" src=\"data:image/png;base64,{data}\">")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>\n"
                + "\n".join(body) + "\n</body></html>\n")


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


_QUANTITY = re.compile(r"-|-?[\d.,]+(%|x)")


def _is_number(value: Any) -> bool:
    """Numbers and formatted quantities (``12.5%``, ``3.10x``) are right-aligned."""
    if isinstance(value, str):
        return bool(_QUANTITY.fullmatch(value))
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_column(rows: Sequence[Sequence[Any]], i: int) -> bool:
    cells = [r[i] for r in rows if i < len(r) and r[i] not in ("", None)]
    return bool(cells) and all(_is_number(c) for c in cells)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _md_cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{100 * value:.1f}%"


# ---------------------------------------------------------------------------- analysis

#: datasets shown side by side in the top-tags table
MAX_TABLE_COLUMNS = 8


def analysis_document(analysis: Analysis, images: dict[str, Path] | None = None, *,
                      title: str = "InsTag analysis", top: int = 10) -> Document:
    """The report of an :class:`~instag_hf.analysis.metrics.Analysis`; ``images``: the figures of
    :func:`~instag_hf.reporting.plots.analysis_plots`, placed after the table they illustrate."""
    images = images or {}
    doc = Document(title)
    several = len(analysis.datasets) > 1
    parts = ([analysis.combined] if several and analysis.show_combined else []) + analysis.datasets
    column = f"`{analysis.tags_column}`" if analysis.tags_column else "the tags"
    doc.text(f"{len(analysis.datasets)} dataset(s) measured on {column}"
             + (f", split by `{analysis.source_column}`" if analysis.source_column else "")
             + ". Only rows whose status is `ok` or `truncated` count as tagged (every row when there is no status "
               "column). Diversity is the number of unique tags, coverage the share of the pool's tags a dataset "
               "has, complexity the average number of tags per tagged row (InsTag, Lu et al., ICLR 2024).")

    doc.heading("Diversity and complexity")
    doc.table(["dataset", "rows", "tagged rows", "unique tags", "coverage", "avg tags per sample"],
              [[m.name, m.rows, m.tagged_rows, m.diversity, _pct(m.coverage), round(m.complexity, 2)]
               for m in parts])
    if "diversity_complexity" in images:
        doc.image(images["diversity_complexity"], "Diversity against complexity")

    if several:
        doc.heading("Tag recall")
        doc.text("Row A, column B: the share of A's tags that B also has, |tags(A) ∩ tags(B)| / |tags(A)|.")
        doc.table(["A \\ B", *analysis.names],
                  [[name, *(_pct(v) for v in row)] for name, row in zip(analysis.names, analysis.recall.tolist())])
        if "recall" in images:
            doc.image(images["recall"], "Tag recall heat map")

    doc.heading("Tags per sample")
    largest = max((max(m.tag_count_histogram, default=0) for m in parts), default=0)
    last = min(largest, 12)
    header = ["dataset", *(str(k) for k in range(last))] + ([f"{last}+"] if largest > last else [str(last)])
    rows = []
    for m in parts:
        counts = [m.tag_count_histogram.get(k, 0) for k in range(last)]
        counts.append(sum(v for k, v in m.tag_count_histogram.items() if k >= last))
        rows.append([m.name, *counts])
    doc.table(header, rows)
    if "tag_counts" in images:
        doc.image(images["tag_counts"], "Distribution of tag counts")

    doc.heading("Top tags")
    shown = parts[:MAX_TABLE_COLUMNS]
    depth = max((len(m.top_tags) for m in shown), default=0)
    doc.table(["rank", *(m.name for m in shown)],
              [[r + 1, *(f"{m.top_tags[r][0]} ({m.top_tags[r][1]:,})" if r < len(m.top_tags) else "" for m in shown)]
               for r in range(min(depth, top))])
    if "top_tags" in images:
        doc.image(images["top_tags"], "Most frequent tags")

    doc.heading("Long tail")
    tail = []
    for m in parts:
        counts = list(m.tag_counts.values())
        total = sum(counts)
        head = max(1, len(counts) // 100)
        tail.append([m.name, len(counts), sum(1 for c in counts if c == 1),
                     _pct(sum(counts[:head]) / total if total else float("nan")), head])
    doc.table(["dataset", "unique tags", "tags on one row", "occurrences of the top 1% of tags", "top 1% = tags"],
              tail)
    if "long_tail" in images:
        doc.image(images["long_tail"], "Tag rank against frequency")

    if any(m.top_pairs for m in parts) or "cooccurrence" in images:
        doc.heading("Co-occurrence")
        if any(m.top_pairs for m in parts):
            doc.table(["dataset", "tag", "tag", "rows with both"],
                      [[m.name, a, b, c] for m in parts for a, b, c in m.top_pairs])
        if "cooccurrence" in images:
            doc.image(images["cooccurrence"], "Co-occurrence of the most frequent tags")
    return doc


@dataclass
class ReportFiles:
    """Where :func:`write_report` wrote: the Markdown, HTML and JSON files and the PNG figures."""

    markdown: Path
    html: Path
    json: Path
    plots: dict[str, Path]

    def paths(self) -> list[Path]:
        return [self.markdown, self.html, self.json, *self.plots.values()]


def write_report(analysis: Analysis, output_dir: str | Path, *, title: str = "InsTag analysis",
                 plots: bool = True, top: int = 10) -> ReportFiles:
    """Write ``report.md`` (linking the PNGs), ``report.html`` (embedding them), ``metrics.json`` and the figures."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, Path] = {}
    if plots:
        from .plots import analysis_plots

        images = analysis_plots(analysis, out)
    doc = analysis_document(analysis, images, title=title, top=top)
    files = ReportFiles(out / "report.md", out / "report.html", out / "metrics.json", images)
    files.markdown.write_text(doc.to_markdown(relative_to=out), encoding="utf-8")
    files.html.write_text(doc.to_html(), encoding="utf-8")
    write_json(files.json, analysis.as_dict())
    return files


# ---------------------------------------------------------------------------- selection


def selection_document(report: SelectionReport, *, title: str | None = None) -> Document:
    """The Markdown/HTML view of a :class:`~instag_hf.selection.report.SelectionReport`."""
    r = report
    doc = Document(title or f"Selection: {r.strategy or 'subset'} ({r.selected:,} rows)")
    params = ", ".join(f"{k}={v}" for k, v in r.params.items() if v is not None)
    doc.text(f"Strategy `{r.strategy}`, {r.selected:,} of {r.requested:,} rows asked for"
             + (f" ({params})" if params else "") + ".")
    doc.table(["", "pool", "subset"], [
        ["rows", r.pool_rows, r.selected],
        ["tagged rows", r.pool_tagged_rows, r.subset_tagged_rows],
        ["unique tags", r.pool_diversity, r.subset_diversity],
        ["coverage of the pool's tags", "100.0%" if r.pool_diversity else "-", _pct(r.coverage)],
        ["avg tags per sample", round(r.pool_complexity, 2), round(r.subset_complexity, 2)],
        ["rows without usable tags", r.pool_untagged_rows, r.untagged_selected],
    ])
    doc.text(f"Jensen-Shannon divergence between the pool's and the subset's tag distributions: "
             f"{_fmt(r.js_divergence) if not math.isfinite(r.js_divergence) else f'{r.js_divergence:.4f}'} "
             "(0 = same distribution, 1 = no tag in common).")
    if r.groups:
        pool_total = sum(p for p, _ in r.groups.values()) or 1
        sub_total = sum(s for _, s in r.groups.values()) or 1
        doc.heading("Rows per group")
        doc.table(["group", "pool rows", "pool share", "subset rows", "subset share"],
                  [[g, p, _pct(p / pool_total), s, _pct(s / sub_total)] for g, (p, s) in r.groups.items()])
    for heading, rows in (("Over-represented tags", r.over_represented),
                          ("Under-represented tags", r.under_represented)):
        if rows:
            doc.heading(heading)
            doc.text("Share of all tag occurrences in the pool and in the subset.")
            doc.table(["tag", "pool share", "subset share", "ratio"],
                      [[t, _pct(p), _pct(q), f"{q / p:.2f}x" if p else "-"] for t, p, q in rows])
    return doc


# ---------------------------------------------------------------------------- any result


def _document(result: Analysis | SelectionReport) -> Document:
    if isinstance(result, Analysis):
        return analysis_document(result)
    if isinstance(result, SelectionReport):
        return selection_document(result)
    raise TypeError(f"no report view for {type(result).__name__}; expected an Analysis or a SelectionReport")


def render_markdown(result: Analysis | SelectionReport) -> str:
    """An analysis or a selection report as Markdown (results hold data; this module renders them)."""
    return _document(result).to_markdown()


def render_html(result: Analysis | SelectionReport) -> str:
    """An analysis or a selection report as a self-contained HTML page."""
    return _document(result).to_html()
