"""Statistics files as strict JSON: a value that is not a finite number is written as ``null``.

``json.dumps`` writes ``NaN`` and ``Infinity`` by default, which no strict JSON reader
accepts (browsers, ``jq``, most languages). Every statistics file instag_hf writes goes
through :func:`dumps` or :func:`write_json`: floats that are not finite become ``None``
first, then the text is written with ``allow_nan=False``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np


def finite(value: Any) -> Any:
    """``value`` as plain JSON data: non-finite floats become ``None``; numpy values, tuples and sets plain ones.

    Dict keys become strings (as JSON would make them); anything else is returned unchanged.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [finite(v) for v in sorted(value, key=str)]
    if isinstance(value, np.ndarray):
        return finite(value.tolist())
    if isinstance(value, np.generic):
        return finite(value.item())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps(finite(value), allow_nan=False, ensure_ascii=False, **kwargs)``: strict JSON text."""
    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(finite(value), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 2, newline: bool = True,
               **kwargs: Any) -> Path:
    """Write ``value`` to ``path`` as strict JSON (UTF-8); returns the path."""
    path = Path(path)
    path.write_text(dumps(value, indent=indent, **kwargs) + ("\n" if newline else ""), encoding="utf-8")
    return path
