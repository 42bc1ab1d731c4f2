"""Matplotlib figures of tag metrics, written as PNG files.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through
pyplot, so no global backend is switched and nothing needs a display.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:  # hints only: plots draw what they are given
    from ..analysis.metrics import Analysis, DatasetMetrics

DPI = 110
#: panels in the top-tags figure; more datasets are left out of it (the tables have them all)
MAX_PANELS = 12


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def plot_diversity_complexity(metrics: Sequence[DatasetMetrics], path: str | Path) -> Path:
    """Unique tags against average tags per sample, one labelled point per dataset (the paper's Figure 2a)."""
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot()
    x = [m.diversity for m in metrics]
    y = [m.complexity for m in metrics]
    rows = np.array([max(m.tagged_rows, 1) for m in metrics], dtype=float)
    sizes = 30 + 170 * (np.sqrt(rows) / np.sqrt(rows.max())) if len(rows) else []
    ax.scatter(x, y, s=sizes, alpha=0.75, color="tab:blue", edgecolor="black", linewidth=0.5)
    for m in metrics:
        ax.annotate(m.name, (m.diversity, m.complexity), xytext=(5, 4), textcoords="offset points", fontsize=8)
    if x and min(x) > 0 and max(x) / min(x) > 50:
        ax.set_xscale("log")
    ax.set_xlabel("diversity (unique tags)")
    ax.set_ylabel("complexity (average tags per sample)")
    ax.set_title("Diversity and complexity (marker area ~ tagged rows)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_recall_heatmap(names: Sequence[str], recall: np.ndarray, path: str | Path) -> Path:
    """Tag recall of the row dataset by the column dataset (the paper's Figure 2b)."""
    k = len(names)
    side = max(4.0, 0.55 * k + 2.5)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(recall), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(k), labels=names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels=names, fontsize=8)
    ax.set_xlabel("recalled by (B)")
    ax.set_ylabel("dataset (A)")
    if k <= 15:
        for i in range(k):
            for j in range(k):
                if not math.isnan(recall[i, j]):
                    ax.text(j, i, f"{recall[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if recall[i, j] > 0.6 else "white")
    fig.colorbar(image, ax=ax, label="|tags(A) ∩ tags(B)| / |tags(A)|")
    ax.set_title("Tag recall")
    return _save(fig, path)


def plot_long_tail(metrics: Sequence[DatasetMetrics], path: str | Path) -> Path:
    """Rows per tag against the tag's frequency rank, log-log, one line per dataset."""
    fig = _figure(6.4, 4.4)
    ax = fig.add_subplot()
    for m in metrics:
        counts = np.fromiter(m.tag_counts.values(), dtype=np.int64, count=len(m.tag_counts))
        if counts.size:
            ax.plot(np.arange(1, counts.size + 1), counts, label=m.name, linewidth=1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tag rank")
    ax.set_ylabel("rows carrying the tag")
    ax.set_title("Tag long tail (rank-frequency)")
    ax.grid(alpha=0.3, which="both")
    if 0 < len(ax.get_lines()) <= 12:  # no line (no dataset has a tag): no legend, and no matplotlib warning
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_top_tags(metrics: Sequence[DatasetMetrics], path: str | Path, k: int = 15) -> Path:
    """Horizontal bars of the ``k`` most frequent tags, one panel per dataset."""
    shown = list(metrics)[:MAX_PANELS]
    cols = min(3, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig = _figure(4.6 * cols, 0.28 * k * rows + 1.2 * rows)
    for index, m in enumerate(shown):
        ax = fig.add_subplot(rows, cols, index + 1)
        tags = m.top_tags[:k][::-1]
        ax.barh([t for t, _ in tags], [c for _, c in tags], color="tab:orange")
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(m.name, fontsize=9)
        ax.set_xlabel("rows")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def plot_tag_counts(metrics: Sequence[DatasetMetrics], path: str | Path) -> Path:
    """Share of usable rows per number of tags, one line per dataset."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    for m in metrics:
        if m.tagged_rows:
            keys = sorted(m.tag_count_histogram)
            ax.plot(keys, [m.tag_count_histogram[x] / m.tagged_rows for x in keys], marker="o", markersize=3,
                    label=m.name, linewidth=1.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("tags per sample")
    ax.set_ylabel("share of tagged rows")
    ax.set_title("Distribution of tag counts")
    ax.grid(alpha=0.3)
    if 0 < len(ax.get_lines()) <= 12:  # no line (no dataset has a tag): no legend, and no matplotlib warning
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_cooccurrence(tags: Sequence[str], matrix: np.ndarray, path: str | Path) -> Path:
    """Rows carrying both of two frequent tags; the diagonal is left blank."""
    k = len(tags)
    side = max(4.0, 0.42 * k + 2.5)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    shown = matrix.astype(float).copy()
    np.fill_diagonal(shown, np.nan)
    image = ax.imshow(np.ma.masked_invalid(shown), cmap="magma_r")
    ax.set_xticks(range(k), labels=tags, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), labels=tags, fontsize=7)
    fig.colorbar(image, ax=ax, label="rows with both tags")
    ax.set_title("Co-occurrence of the most frequent tags")
    return _save(fig, path)


#: file name of every figure :func:`analysis_plots` can write
def plot_score_histogram(scores: Sequence[float | None], path: str | Path, bins: int = 30) -> Path:
    """Histogram of ``instag_score`` over the scored rows (nulls left out, their count in the title)."""
    values = np.array([s for s in scores if s is not None], dtype=float)
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    if values.size:
        ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white")
    ax.set_xlabel("instag_score (quality x complexity, averaged over turns)")
    ax.set_ylabel("rows")
    missing = len(scores) - int(values.size)
    ax.set_title("Distribution of scores" + (f" ({missing} rows without a score)" if missing else ""))
    ax.grid(alpha=0.3)
    return _save(fig, path)


PLOT_FILES = {
    "diversity_complexity": "diversity_complexity.png",
    "recall": "tag_recall.png",
    "long_tail": "tag_long_tail.png",
    "top_tags": "top_tags.png",
    "tag_counts": "tag_counts.png",
    "cooccurrence": "cooccurrence.png",
}


def analysis_plots(analysis: Analysis, output_dir: str | Path) -> dict[str, Path]:
    """Every figure of an :class:`~instag_hf.analysis.metrics.Analysis` as PNG files in ``output_dir``.

    The recall heat map needs two datasets and the co-occurrence map two tags; the
    other figures are always drawn.
    """
    out = Path(output_dir)
    several = len(analysis.datasets) > 1
    parts = ([analysis.combined] if several and analysis.show_combined else []) + analysis.datasets
    written = {
        "diversity_complexity": plot_diversity_complexity(analysis.datasets, out / PLOT_FILES["diversity_complexity"]),
    }
    if several:
        written["recall"] = plot_recall_heatmap(analysis.names, analysis.recall, out / PLOT_FILES["recall"])
    written["long_tail"] = plot_long_tail(parts, out / PLOT_FILES["long_tail"])
    written["top_tags"] = plot_top_tags(parts, out / PLOT_FILES["top_tags"])
    written["tag_counts"] = plot_tag_counts(parts, out / PLOT_FILES["tag_counts"])
    if len(analysis.cooccurrence_tags) > 1:
        written["cooccurrence"] = plot_cooccurrence(analysis.cooccurrence_tags, analysis.cooccurrence,
                                                    out / PLOT_FILES["cooccurrence"])
    return written
