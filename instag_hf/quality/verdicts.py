"""Reading a judge's answer: a yes/no verdict and its reason, from JSON or from prose."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from .. import schema

YES, NO = "yes", "no"
_WORDS = {"yes": YES, "no": NO, "true": YES, "false": NO, "consistent": YES, "inconsistent": NO,
          "correct": YES, "incorrect": NO}
_VERDICT_KEYS = ("verdict", "answer", "judgment", "judgement", "decision", "result")
_FIELD = re.compile(r'["\']?(?:verdict|answer|judg(?:e)?ment|decision|result)["\']?\s*:', re.IGNORECASE)
# the field's value as one complete token, followed by the end of the field (or of a cut-off answer)
_VALUE = re.compile(r'\s*(?:"([A-Za-z]+)"|\'([A-Za-z]+)\'|(true|false)\b)\s*(?=[,}\n]|$)', re.IGNORECASE)
_REASON_FIELD = re.compile(r'["\']reason["\']\s*:\s*"((?:[^"\\]|\\.)*)', re.IGNORECASE)
_LEAD = re.compile(r"^[\s>*_`#\"'(\[-]*([A-Za-z]+)")
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Verdict:
    """A parsed judge answer: ``verdict`` is ``"yes"``, ``"no"`` or ``None`` (then ``status`` says why)."""

    verdict: str | None
    reason: str = ""
    status: str = schema.PARSE_ERROR
    error: str = ""


def _word(value: Any) -> str | None:
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, str):
        return _WORDS.get(value.strip().strip(".!\"' ").lower())
    return None


def _objects(text: str) -> Iterable[Any]:
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        start = text.find("{", pos)
        if start < 0:
            return
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        yield value
        pos = end


def parse_verdict(text: Any) -> Verdict:
    """Read a yes/no verdict from a judge's answer; never guesses.

    Accepted, in this order: a JSON object with a ``verdict`` (or ``answer``,
    ``judgment``, ``decision``, ``result``) field holding yes/no/true/false; such a
    field in JSON cut off after it, its value one complete token (``"yes" or "no"``,
    a model echoing the instructions, is not a verdict); an answer whose first word is
    "yes" or "no". Anything else (prose without a leading yes/no, "maybe", an empty
    answer) is a ``parse_error`` with no verdict.
    """
    if not isinstance(text, str) or not text.strip():
        return Verdict(None, "", schema.PARSE_ERROR, "empty answer")
    for obj in _objects(text):
        if not isinstance(obj, dict):
            continue
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        for key in _VERDICT_KEYS:
            if key in lowered:
                word = _word(lowered[key])
                reason = lowered.get("reason") or lowered.get("explanation") or ""
                reason = reason if isinstance(reason, str) else json.dumps(reason, ensure_ascii=False)
                if word is None:
                    return Verdict(None, reason, schema.PARSE_ERROR,
                                   f"{key} {str(lowered[key])[:40]!r} is not yes or no")
                return Verdict(word, reason.strip(), schema.OK)
    field = _FIELD.search(text)
    if field:
        value = _VALUE.match(text, field.end())
        raw = next((g for g in value.groups() if g), "") if value else ""
        word = _word(raw)
        if word is None:
            shown = text[field.end():field.end() + 40].strip()
            return Verdict(None, "", schema.PARSE_ERROR, f"verdict {shown!r} is not a single yes or no")
        reason = _REASON_FIELD.search(text)
        return Verdict(word, reason.group(1) if reason else "", schema.OK)
    lead = _LEAD.match(text)
    if lead and lead.group(1).lower() in ("yes", "no"):
        word = lead.group(1).lower()
        return Verdict(word, text.strip()[len(lead.group(0)):].strip(" .,:;-\n"), schema.OK)
    return Verdict(None, "", schema.PARSE_ERROR, "no yes/no verdict found")
