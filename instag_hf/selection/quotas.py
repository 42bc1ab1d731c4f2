"""Row quotas per group of a column: proportional (largest remainder) or equal splits."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .checks import check_count
from .params import QUOTA_MODES


def _largest_remainder(target: int, weights: np.ndarray) -> np.ndarray:
    total = weights.sum()
    if total == 0 or target == 0:
        return np.zeros_like(weights)
    exact = target * weights / total
    base = np.floor(exact).astype(np.int64)
    extra = target - int(base.sum())
    base[np.argsort(-(exact - base), kind="stable")[:extra]] += 1
    return base


def _equal_split(target: int, sizes: np.ndarray) -> np.ndarray:
    out = np.zeros_like(sizes)
    left = target
    open_ = [g for g in range(len(sizes)) if sizes[g] > 0]
    while left > 0 and open_:
        share = left // len(open_)
        if share == 0:
            for g in open_[:left]:
                out[g] += 1
            break
        for g in open_:
            add = min(int(sizes[g] - out[g]), share)
            out[g] += add
            left -= add
        open_ = [g for g in open_ if out[g] < sizes[g]]
    return out


def quota_limits(codes: np.ndarray, labels: list, n: int, quotas, available: np.ndarray) -> np.ndarray:
    """Most rows per group (``codes`` into ``labels``) for a selection of ``n`` from the ``available`` rows."""
    sizes = np.bincount(codes[available], minlength=len(labels)).astype(np.int64)
    target = min(n, int(sizes.sum()))
    if quotas is None or quotas == "proportional":
        return _largest_remainder(target, sizes)
    if quotas == "equal":
        return _equal_split(target, sizes)
    if isinstance(quotas, Mapping):
        index = {str(label): code for code, label in enumerate(labels)}
        unknown = [k for k in quotas if str(k) not in index]
        if unknown:
            raise ValueError(f"quotas name values {unknown} that the quota column does not hold; "
                             f"it holds {sorted(index)}")
        out = np.zeros(len(labels), dtype=np.int64)
        for key, value in quotas.items():
            out[index[str(key)]] = check_count(f"quotas[{key!r}]", value, 0)
        if out.sum() < n:
            raise ValueError(f"quotas add up to {int(out.sum())} rows but n={n}; raise the quotas or lower n")
        return out
    raise ValueError(f"quotas must be one of {list(QUOTA_MODES)} or a mapping value -> rows, got {quotas!r}")
