"""Figures only a published card needs (the analysis figures come from :mod:`instag_hf.reporting.plots`)."""

from __future__ import annotations

from pathlib import Path

from .card_data import NormalizationInfo


def plot_normalization(info: NormalizationInfo, path: str | Path) -> Path:
    """Bars of the unique tags left after each enabled normalization step, starting from the raw tags."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = ["raw"] + [s.title for s in info.stages if s.enabled]
    values = [info.raw_tags] + [s.tags_after for s in info.stages if s.enabled]
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bars = ax.bar(range(len(values)), values, color="tab:green")
    ax.set_xticks(range(len(values)), labels=labels, rotation=20, ha="right", fontsize=8)
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8)
    ax.set_ylabel("unique tags")
    ax.set_title("Tags left after each normalization step")
    ax.margins(y=0.15)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    return path
