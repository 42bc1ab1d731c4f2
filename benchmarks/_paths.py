"""Puts ``tests/`` on the path (here and for child processes), where the benchmarks' loopback
servers and synthetic corpora live (``tests/support``: test tools, not part of the package)."""

import os
import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)
