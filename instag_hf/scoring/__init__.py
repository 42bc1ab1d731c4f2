"""Deita's quality and complexity scores (MIG's row weights) as a ``datasets`` transform."""

from .expectation import expected_score, first_position_score
from .prompts import COMPLEXITY, QUALITY, ScoreTemplate
from .scorer import Scorer, ScoreStats, TurnScore

__all__ = ["Scorer", "ScoreStats", "TurnScore", "ScoreTemplate", "COMPLEXITY", "QUALITY", "expected_score",
           "first_position_score"]
