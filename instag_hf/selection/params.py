"""The choices every selection parameter takes (what the command line offers and the checks accept)."""

from __future__ import annotations

from .registry import REGISTRY

STRATEGIES = tuple(REGISTRY)
#: what ``compare_strategies`` and ``instag sample --compare`` run by default
COMPARED = ("random", "complexity", "diversity", "cfd", "mig")
TIES = ("index", "shuffle")
UNTAGGED = ("last", "never")
QUOTA_MODES = ("proportional", "equal")
