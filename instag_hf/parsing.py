"""Turn whatever a tagging model returns into clean ``{tag, explanation}`` items.

Models answer with a JSON list, a single object, JSON lines, fenced code, prose
around JSON, JSON cut off at ``max_tokens``, Python-style quotes, or junk. The
parser recovers every complete tag it can find and reports a status; it never
raises and never invents tags. The invariant downstream code relies on:
``status == "ok"`` if and only if at least one tag was recovered.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_TAG_CHARS = 80
MAX_EXPLANATION_CHARS = 500
MAX_TAGS = 32
MAX_ANSWER_CHARS = 64_000  # longer answers are cut before parsing (bounded parse time)

TAG_KEYS = ("tag", "name", "title", "label", "intent", "intention")
EXPLANATION_KEYS = ("explanation", "description", "reason", "explain", "rationale")
LIST_KEYS = ("tags", "intentions", "intents", "labels")

_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.MULTILINE)
_OPENERS = re.compile(r"[\[{]")
_STR = r"""(?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)')"""
_SALVAGE = re.compile(
    r"""["']tag["']\s*:\s*""" + _STR + r"""(?:\s*,\s*["']explanation["']\s*:\s*""" + _STR + ")?",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")
_STRIP_CHARS = " \t\"'`*#_-•.:;,"


@dataclass(frozen=True)
class ParseResult:
    """Tags recovered from one model answer; ``status`` is ``ok`` or ``parse_error``."""

    tags: list[dict] = field(default_factory=list)
    status: str = "parse_error"
    error: str = ""


def clean_tag(value: Any) -> str | None:
    """A tag title with quotes, markup and extra spaces removed, or None if unusable."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    text = str(value)
    if "\n" in text.strip():
        return None
    text = _SPACE.sub(" ", text).strip(_STRIP_CHARS).strip()
    if not text or len(text) > MAX_TAG_CHARS or not any(ch.isalnum() for ch in text):
        return None
    return text


def _clean_explanation(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    text = _SPACE.sub(" ", str(value)).strip()
    return text[:MAX_EXPLANATION_CHARS]


def _lookup(obj: dict, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    for key in keys:
        if key in lowered:
            return lowered[key]
    return None


def _items(obj: Any, depth: int = 0) -> list[tuple[Any, Any]]:
    """Raw (tag, explanation) pairs found in a decoded JSON value."""
    if depth > 3:
        return []
    if isinstance(obj, str):
        return [(obj, "")]
    if isinstance(obj, list):
        return [pair for element in obj for pair in _items(element, depth + 1)]
    if isinstance(obj, dict):
        tag = _lookup(obj, TAG_KEYS)
        if tag is not None:
            return [(tag, _lookup(obj, EXPLANATION_KEYS))]
        nested = _lookup(obj, LIST_KEYS)
        if isinstance(nested, list):
            return _items(nested, depth + 1)
        if obj and all(isinstance(v, str) for v in obj.values()) and _lookup(obj, EXPLANATION_KEYS) is None:
            return list(obj.items())  # {"Tag Title": "explanation", ...}
    return []


def _decode_all(text: str) -> tuple[list[Any], bool]:
    """Every top-level JSON value in ``text``, and whether any decoded at all."""
    decoder = json.JSONDecoder()
    values, pos = [], 0
    while True:
        match = _OPENERS.search(text, pos)
        if match is None:
            break
        try:
            value, end = decoder.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            pos = match.start() + 1
            continue
        values.append(value)
        pos = end
    return values, bool(values)


def _unescape(raw: str) -> str:
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw


def _salvage(text: str) -> list[tuple[Any, Any]]:
    """Complete ``"tag": "..."`` pairs from text that does not decode (cut off, single quotes)."""
    pairs = []
    for m in _SALVAGE.finditer(text):
        tag = m.group(1) if m.group(1) is not None else m.group(2)
        expl = m.group(3) if m.group(3) is not None else m.group(4)
        pairs.append((_unescape(tag), _unescape(expl or "")))
    return pairs


def parse_tags(text: Any) -> ParseResult:
    """Parse one model answer. Never raises; see the module docstring for the contract."""
    try:
        return _parse(text)
    except Exception as exc:  # a parser bug must not kill a 300K-row run
        return ParseResult([], "parse_error", f"parser failure: {type(exc).__name__}: {exc}")


def _parse(text: Any) -> ParseResult:
    if not isinstance(text, str) or not text.strip():
        return ParseResult([], "parse_error", "empty answer")
    body = _FENCE.sub("", text[:MAX_ANSWER_CHARS])
    values, decoded = _decode_all(body)
    pairs = [pair for value in values for pair in _items(value)]
    if not pairs:
        pairs = _salvage(body)
    seen: set[str] = set()
    tags: list[dict] = []
    for raw_tag, raw_expl in pairs:
        tag = clean_tag(raw_tag)
        if tag is None or tag.casefold() in seen:
            continue
        seen.add(tag.casefold())
        tags.append({"tag": tag, "explanation": _clean_explanation(raw_expl)})
        if len(tags) == MAX_TAGS:
            break
    if tags:
        return ParseResult(tags, "ok", "")
    if pairs:
        return ParseResult([], "parse_error", "no usable tag (empty, too long or not text)")
    if decoded:
        return ParseResult([], "parse_error", "JSON without tags")
    return ParseResult([], "parse_error", "no JSON found")
