"""Moved to :mod:`instag_hf.embeddings` (a service shared by tagging, normalization, selection and
quality); this name stays for code written against earlier releases."""

from ..embeddings import *  # noqa: F401,F403
