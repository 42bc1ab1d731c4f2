"""Deita's score from the log-probabilities of the first generated token.

As in hkust-nlp/deita (``src/deita/selection/scorer/base.py``, ``Scorer.infer_score``):
take the scores of the six tokens ``"1"`` .. ``"6"`` at the first generated position,
softmax over those six only, and return ``sum(k * p_k)``. Deita returns 3.0 where that
fails; here there is no default: without usable log-probabilities the result is None
and the Scorer gives the row an error status.

From an engine's logits all six are known. From a top-k list (OpenAI-compatible servers,
vLLM) a digit outside the top k has a probability below every listed one; it is taken
as 0, which changes the expectation by less than the k-th probability.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

SCORE_TOKENS = ("1", "2", "3", "4", "5", "6")
#: top log-probabilities asked per position (OpenAI's and vLLM's usual maximum)
DEFAULT_TOP_LOGPROBS = 20


def _digit(token: str) -> str | None:
    """The score digit a token spells, allowing tokenizer space markers (``" 1"``, ``"▁1"``, ``"Ġ1"``)."""
    core = token.strip().lstrip("▁Ġ").strip()
    return core if core in SCORE_TOKENS else None


def score_logprobs(top: Mapping[str, float]) -> dict[str, float]:
    """The log-probabilities of ``"1"`` .. ``"6"`` in one position's ``token -> logprob``; a token
    spelled exactly wins over one with a space marker."""
    found: dict[str, float] = {}
    exact: set[str] = set()
    for token, logprob in top.items():
        digit = _digit(str(token))
        try:
            value = float(logprob)
        except (TypeError, ValueError):
            continue
        if digit is None or math.isnan(value) or value > 0:  # a log-probability is <= 0
            continue
        if token == digit:
            found[digit] = value
            exact.add(digit)
        elif digit not in exact:
            found[digit] = max(found.get(digit, -math.inf), value)
    return found


def expected_score(top: Mapping[str, float] | None) -> float | None:
    """``sum(k * p_k)`` with ``p`` the softmax over the logprobs of ``"1"`` .. ``"6"`` in ``top``
    (one position's ``token -> logprob``); None when none of them is there."""
    if not top:
        return None
    found = score_logprobs(top)
    finite = {d: v for d, v in found.items() if math.isfinite(v)}
    if not finite:
        return None
    peak = max(finite.values())
    weights = {d: math.exp(v - peak) for d, v in finite.items()}
    total = sum(weights.values())
    return sum(int(d) * w for d, w in weights.items()) / total


def first_position_score(top_logprobs: Sequence[Mapping[str, float]] | None) -> float | None:
    """:func:`expected_score` of the first generated position of a completion's ``top_logprobs``."""
    if not top_logprobs:
        return None
    return expected_score(top_logprobs[0])
