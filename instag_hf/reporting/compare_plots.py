"""Selection strategies compared: coverage against subset size, complexity against diversity, a table,
and the files ``instag sample --compare`` writes. The numbers come from
:func:`~instag_hf.selection.compare.compare_strategies`; this module only draws and writes them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..strict_json import write_json
from .plots import _figure, _save

if TYPE_CHECKING:  # hints only: plots draw what they are given
    from ..selection.compare import StrategyComparison

#: a fixed colour per strategy, so that every plot and card agrees
COLORS = {"random": "tab:gray", "complexity": "tab:orange", "diversity": "tab:green", "cfd": "tab:blue",
          "mig": "tab:red"}


def _color(strategy: str, k: int) -> str:
    return COLORS.get(strategy, f"C{k % 10}")


def plot_coverage_curves(comparison: StrategyComparison, path: str | Path) -> Path:
    """Share of the pool's tags against subset size, one line per strategy (the MIG paper's curves)."""
    fig = _figure(6.4, 4.4)
    ax = fig.add_subplot()
    for k, r in enumerate(comparison.results):
        y = [100 * c if not math.isnan(c) else float("nan") for c in r.curve]
        ax.plot(comparison.sizes, y, label=r.strategy, color=_color(r.strategy, k), linewidth=1.8,
                marker="o" if len(comparison.sizes) <= 12 else None, markersize=3)
    ax.set_xlabel("subset size (rows, in pick order)")
    ax.set_ylabel("coverage of the pool's tags (%)")
    ax.set_ylim(0, 101)
    ax.set_xlim(0, max(comparison.sizes) if comparison.sizes else 1)
    ax.set_title(f"Tag coverage against subset size ({comparison.pool_diversity:,} tags in the pool)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_strategy_complexity_diversity(comparison: StrategyComparison, path: str | Path) -> Path:
    """Unique tags against average tags per row, one point per strategy's subset and one for the pool."""
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot()
    for k, r in enumerate(comparison.results):
        ax.scatter([r.diversity], [r.complexity], s=70, color=_color(r.strategy, k), edgecolor="black",
                   linewidth=0.5, zorder=3)
        ax.annotate(r.strategy, (r.diversity, r.complexity), xytext=(5, 4), textcoords="offset points", fontsize=8)
    ax.scatter([comparison.pool_diversity], [comparison.pool_complexity], s=90, marker="*", color="black", zorder=3)
    ax.annotate("pool", (comparison.pool_diversity, comparison.pool_complexity), xytext=(5, 4),
                textcoords="offset points", fontsize=8)
    ax.set_xlabel("diversity (unique tags)")
    ax.set_ylabel("complexity (average tags per row)")
    ax.set_title(f"Complexity and diversity of {comparison.n:,}-row subsets")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _pct(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def comparison_markdown(comparison: StrategyComparison) -> str:
    """A Markdown table: one row per strategy, then the pool; source shares when there is a source column."""
    sources = sorted(comparison.pool_sources) if comparison.pool_sources else []
    head = ["strategy", "rows", "coverage", "unique tags", "avg tags", "tag entropy (bits)", "JS divergence"]
    head += [f"share {s}" for s in sources]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in comparison.results:
        js = "-" if r.js_divergence is None or not math.isfinite(r.js_divergence) else f"{r.js_divergence:.4f}"
        cells = [r.strategy, f"{r.selected:,}", _pct(r.coverage), f"{r.diversity:,}", f"{r.complexity:.2f}",
                 f"{r.entropy:.3f}", js] + [_pct((r.sources or {}).get(s, 0.0)) for s in sources]
        lines.append("| " + " | ".join(cells) + " |")
    pool = ["pool", f"{comparison.pool_rows:,}", "100.0%" if comparison.pool_diversity else "-",
            f"{comparison.pool_diversity:,}",
            f"{comparison.pool_complexity:.2f}", f"{comparison.pool_entropy:.3f}", "0"]
    pool += [_pct(comparison.pool_sources[s]) for s in sources]
    lines.append("| " + " | ".join(pool) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(comparison: StrategyComparison, output_dir: str | Path) -> dict[str, Path]:
    """``comparison.json``, ``comparison.md``, ``coverage_curves.png`` and ``complexity_diversity.png``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "comparison.json", "markdown": out / "comparison.md"}
    write_json(files["json"], comparison.as_dict())
    title = f"# Selection strategies compared at n = {comparison.n:,}\n\n"
    files["markdown"].write_text(title + comparison_markdown(comparison) + "\n![coverage](coverage_curves.png)\n\n"
                                 "![complexity and diversity](complexity_diversity.png)\n", encoding="utf-8")
    files["coverage_curves"] = plot_coverage_curves(comparison, out / "coverage_curves.png")
    files["complexity_diversity"] = plot_strategy_complexity_diversity(comparison, out / "complexity_diversity.png")
    return files
