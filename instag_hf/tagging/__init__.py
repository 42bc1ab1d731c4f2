"""Tagging: user queries in, open-set intention tags out.

``tagger`` (the ``Dataset.map`` transform) reads queries (``queries``), renders them with a
template (``prompts``), asks a backend (``backends/``) through the request cache
(``cache``, ``answers``), and parses the answers (``parsing``). ``gpus`` and ``ray_data``
run the same Tagger on several GPUs or on a Ray cluster.
"""

from .parsing import ParseResult, parse_tags
from .prompts import TEMPLATES, Prompt, Template, get_template
from .queries import QueryFormatError, detect_format
from .tagger import Tagger, TagStats, TurnResult

__all__ = ["Tagger", "TagStats", "TurnResult", "parse_tags", "ParseResult", "Template", "Prompt", "TEMPLATES",
           "get_template", "detect_format", "QueryFormatError"]
