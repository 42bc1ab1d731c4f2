"""Argument checks the selection modules share: one clear ``ValueError`` each, raised before any work."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def check_choice(name: str, value, choices: Sequence[str]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_count(name: str, value, minimum: int) -> int:
    """An integer (not a bool) ``>= minimum``, returned as ``int``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(name: str, value, low: float, high: float = math.inf, low_open: bool = False) -> float:
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``), returned as ``float``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < low or value > high or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise ValueError(f"{name} must be a finite number in {bound}, got {value!r}")
    return float(value)
