"""The choices every selection parameter takes, and their checks (clear errors before any work)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

STRATEGIES = ("cfd", "random", "complexity", "diversity", "mig")
#: what ``compare_strategies`` and ``instag sample --compare`` run by default
COMPARED = ("random", "complexity", "diversity", "cfd", "mig")
TIES = ("index", "shuffle")
UNTAGGED = ("last", "never")
QUOTA_MODES = ("proportional", "equal")


def _check_choice(name: str, value, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
