"""The model-free keyword backend under its earlier import path.

``--backend instag_hf.testing:KeywordBackend`` (or ``--backend keyword``) runs a pipeline without
a model: tags made from each query's longest words, instantly and deterministically. The
backend lives in :mod:`instag_hf.tagging.backends.keyword`; the loopback servers, the fake Hub
and the synthetic corpora the tests and benchmarks use live in ``tests/support/``.
"""

from ..tagging.backends.keyword import KeywordBackend, KeywordOptions, keyword_tags

__all__ = ["KeywordBackend", "KeywordOptions", "keyword_tags"]
