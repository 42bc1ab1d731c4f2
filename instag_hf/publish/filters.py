"""Formatting helpers of the card template: safe table cells, inline code, numbers and shares.

They are passed to the template as functions (``cell(x)``, ``code(x)``, ``num(x)``,
``pct(x, 2)``) because huggingface_hub renders cards with Jinja's default environment.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, line breaks or raw HTML."""
    text = num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def inline_code(value: Any) -> str:
    """``value`` as inline code, safe in a table cell."""
    text = str(value).replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if text else "``"


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.{digits}f}%"


def num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.2f}"
    return str(value)


def _number_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _flatten(data: Mapping[str, Any], prefix: str = "", skip_lists: bool = False) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows += _flatten(value, f"{name}.", skip_lists)
        elif skip_lists and isinstance(value, (list, tuple)):
            continue
        else:
            rows.append((name, _show(value)))
    return rows


#: the functions the template calls, by name
TEMPLATE_FUNCTIONS = {"cell": md_cell, "code": inline_code, "num": num, "pct": pct}
