"""The ``instag`` command: one module per command group (``main`` holds ``tag`` and the entry point)."""

from .main import main

__all__ = ["main"]
