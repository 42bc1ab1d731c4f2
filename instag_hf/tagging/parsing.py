"""Turn whatever a tagging model returns into clean ``{tag, explanation}`` items.

Models answer with a JSON list, a single object, JSON lines, fenced code, prose
around JSON, JSON cut off at ``max_tokens``, Python-style quotes, trailing commas,
or junk. The parser recovers every complete tag it can find and reports a status;
it never raises and never invents tags (see :func:`parse_tags` for what counts as
a tag). The invariant downstream code relies on: ``status == "ok"`` if and only if
at least one tag was recovered.

It is one forward pass over at most ``MAX_ANSWER_CHARS`` characters: a lenient
JSON reader with an explicit stack (no recursion, nesting capped at ``MAX_DEPTH``)
that, on a syntax error or the end of the text, closes what is open and resumes
scanning from the offending character, never from an earlier one. Work is linear
in the answer's length, whatever the answer.
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
MAX_DEPTH = 32  # deeper nesting is a syntax error: no tag answer nests like that
MAX_ITEM_DEPTH = 3  # how deep tag items are looked for inside one decoded value

TAG_KEYS = ("tag", "name", "title", "label", "intent", "intention")
EXPLANATION_KEYS = ("explanation", "description", "reason", "explain", "rationale")
LIST_KEYS = ("tags", "intentions", "intents", "labels")
_RESERVED = frozenset(TAG_KEYS + EXPLANATION_KEYS + LIST_KEYS)

_OPENERS = re.compile(r"[\[{]")
_SPACES = re.compile(r"\s*")
_WHITESPACE = frozenset(" \t\r\n\f\v")
# String bodies, written as unrolled loops (disjoint alternatives): linear, no backtracking.
_DQ_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)  # raw newlines allowed, as json's strict=False
_SQ_BODY = re.compile(r"[^'\\\n]*(?:\\[^\n][^'\\\n]*)*")
_BARE = re.compile(r"[A-Za-z0-9_.+\-]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_LITERALS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_FENCE_INFO = re.compile(r"[\w-]*")
_SPACE = re.compile(r"\s+")
_DECODER = json.JSONDecoder(strict=False)
_STRIP_CHARS = " \t\"'`*#_-•.:;,"


@dataclass(frozen=True)
class ParseResult:
    """Tags recovered from one model answer; ``status`` is ``ok`` or ``parse_error``.

    ``note``: what the parser left out of an ``ok`` answer, for the row's ``instag_error``
    (e.g. ``"kept the first 32 of 1000 tags"``); ``""`` when nothing was.
    """

    tags: list[dict] = field(default_factory=list)
    status: str = "parse_error"
    error: str = ""
    note: str = ""


def _text(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates as U+FFFD (Arrow rejects those)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clean_tag(value: Any) -> str | None:
    """A tag title with quotes, markup and extra spaces removed, or None if unusable.

    Unusable: not a string (a JSON number is never a tag), over ``MAX_TAG_CHARS``, more than
    one line, or without a letter (``"42"``, ``"3.14"``, ``"..."``; ``"3D"`` and ``"C++"`` are tags).
    """
    if not isinstance(value, str):
        return None
    text = value
    if "\n" in text.strip():
        return None
    text = _SPACE.sub(" ", text).strip(_STRIP_CHARS).strip()
    if not text or len(text) > MAX_TAG_CHARS or not any(ch.isalpha() for ch in text):
        return None
    return _text(text)


def _clean_explanation(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    text = _SPACE.sub(" ", str(value)).strip()
    return _text(text[:MAX_EXPLANATION_CHARS])


# --- reading: a lenient, iterative JSON reader ---------------------------------------------
def _unescape(body: str) -> str:
    """A quoted string's body with JSON/Python escapes decoded (an unknown escape gives its character)."""
    if "\\" not in body:
        return body

    def one(m: re.Match) -> str:
        esc = m.group(1)
        if len(esc) == 5:
            return chr(int(esc[1:], 16))
        return _ESCAPES.get(esc, esc)

    text = _ESCAPE.sub(one, body)
    return _text(text) if "\\u" in body else text


def _read(text: str, start: int) -> tuple[Any, int, bool]:
    """Read the container opening at ``start``: ``(value, end, complete)``.

    Lenient where models are sloppy: single quotes, bare keys, Python literals, missing or
    trailing commas. On a syntax error, too deep a nesting or the end of the text it stops
    at ``end`` (always > ``start``) and closes every open container, keeping only the
    members and elements that were complete: a cut-off list keeps its finished items, a
    cut-off object its finished ``key: value`` pairs. Iterative: each character is
    looked at once, whatever the nesting.
    """
    n = len(text)
    is_list = text[start] == "["
    cur: Any = [] if is_list else {}
    key: str | None = None  # in an object: the key read, awaiting its value
    colon = False  # ... and whether its ``:`` was read
    parents: list[tuple[Any, bool, str | None]] = []  # the enclosing containers, outermost first
    pos = start + 1
    while pos < n:
        ch = text[pos]
        if ch in _WHITESPACE:
            pos = _SPACES.match(text, pos).end()
            if pos >= n:
                break
            ch = text[pos]
        if key is not None and not colon:
            if ch != ":":
                break
            colon = True
            pos += 1
            continue
        if ch == ",":
            if key is not None:  # {"a": ,}
                break
            pos += 1
            continue
        if ch == "]" or ch == "}":
            if (ch == "]") != is_list or key is not None:
                break
            pos += 1
            if not parents:
                return cur, pos, True
            value = cur
            cur, is_list, key = parents.pop()
        elif ch == "[" or ch == "{":
            if (not is_list and key is None) or len(parents) + 1 >= MAX_DEPTH:
                break
            parents.append((cur, is_list, key))
            is_list = ch == "["
            cur, key, colon = ([] if is_list else {}), None, False
            pos += 1
            continue
        elif ch == '"' or ch == "'":
            body = (_DQ_BODY if ch == '"' else _SQ_BODY).match(text, pos + 1)
            end = body.end()
            if end >= n or text[end] != ch:  # cut off, or a raw newline inside a '...' string
                break
            value = _unescape(body.group())
            pos = end + 1
            if not is_list and key is None:
                key, colon = value, False
                continue
        else:
            wants_key = not is_list and key is None
            bare = (_IDENT if wants_key else _BARE).match(text, pos)
            if bare is None or bare.end() >= n:  # junk, or a token that may be cut off
                break
            token = bare.group()
            if wants_key:
                value = None
                key, colon = token, False
            elif token in _LITERALS:
                value = _LITERALS[token]
            elif _NUMBER.fullmatch(token):
                value = float(token) if len(token) > 30 else json.loads(token)  # no 10K-digit ints
            else:
                break
            pos = bare.end()
            if wants_key:
                continue
        if is_list:
            cur.append(value)
        else:
            cur[key] = value
            key, colon = None, False
    # stopped early: close the open containers, innermost first, dropping unfinished members
    while parents:
        value = cur
        cur, is_list, key = parents.pop()
        if is_list:
            cur.append(value)
        else:
            cur[key] = value
    return cur, max(pos, start + 1), False


def _strip_fences(text: str) -> str:
    """``text`` without Markdown code-fence lines (three backticks and an optional language)."""
    if "```" not in text:
        return text
    lines = text.split("\n")
    kept = [line for line in lines if not (line.strip().startswith("```")
                                           and _FENCE_INFO.fullmatch(line.strip()[3:]))]
    return "\n".join(kept)


# --- interpreting: which decoded values are tags ----------------------------------------
def _lookup(obj: dict, keys: tuple[str, ...]) -> Any:
    """The value under the first of ``keys`` in ``obj``, matched exactly, then case- and space-insensitively."""
    for key in keys:
        if key in obj:
            return obj[key]
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    for key in keys:
        if key in lowered:
            return lowered[key]
    return None


def _items(obj: Any, depth: int = 0) -> list[tuple[Any, Any]]:
    """Raw (tag, explanation) pairs from tag-shaped items in a decoded value.

    Tag-shaped: an object with a tag key (its explanation key optional), a string inside
    a list, an object wrapping a list under a list key. Nothing else yields a tag.
    """
    if depth > MAX_ITEM_DEPTH:
        return []
    if isinstance(obj, list):
        pairs = []
        for element in obj:
            if isinstance(element, str):
                pairs.append((element, ""))
            elif isinstance(element, (list, dict)):
                pairs.extend(_items(element, depth + 1))
        return pairs
    if isinstance(obj, dict):
        tag = _lookup(obj, TAG_KEYS)
        if tag is not None:
            return [(tag, _lookup(obj, EXPLANATION_KEYS))]
        nested = _lookup(obj, LIST_KEYS)
        if isinstance(nested, list):
            return _items(nested, depth + 1)
    return []


def _caseless(ch: str) -> bool:
    return ch.isalpha() and not ch.isupper() and not ch.islower()  # CJK, Thai, Arabic...


def _is_title(key: str) -> bool:
    """A key reads as a tag title, not a field name such as ``language`` or ``model_name``."""
    key = key.strip()
    if not key or "_" in key or key.casefold() in _RESERVED:
        return False
    first = next((ch for ch in key if ch.isalpha()), "")
    return " " in key or first.isupper() or _caseless(first)


def _title_map(obj: Any) -> list[tuple[Any, Any]]:
    """The entries of a ``{title: explanation}`` map, or [] when ``obj`` does not read as one."""
    if not isinstance(obj, dict) or not obj:
        return []
    if not all(isinstance(v, str) and any(ch.isalnum() for ch in v) for v in obj.values()):
        return []
    if not all(_is_title(k) for k in obj):
        return []
    if not any(len(k.split()) > 1 or len(v.split()) > 1 or any(_caseless(ch) for ch in k) for k, v in obj.items()):
        return []  # one-word keys and one-word values: {"Model": "GPT"} reads as fields
    return list(obj.items())


def parse_tags(text: Any) -> ParseResult:
    """Parse one model answer into at most ``MAX_TAGS`` deduplicated tags; never raises.

    A tag comes only from a tag-shaped item:

    * an object with a tag key (``tag``, or ``name``/``title``/``label``/``intent``/
      ``intention``, any case), its explanation from ``explanation`` (or ``description``,
      ``reason``, ``explain``, ``rationale``);
    * a string inside a list: a JSON array of strings, or one under a list key
      (``{"tags": [...]}``, ``intentions``, ``intents``, ``labels``); lists nest at most
      ``MAX_ITEM_DEPTH`` deep;
    * a ``{title: explanation}`` map, only when that object is the whole answer (apart
      from whitespace and code fences) and reads as one: every value is a string with a
      letter or digit; every key reads as a title, not a field name: no ``_``, not a tag,
      explanation or list key, and it has a space or its first letter is a capital (or
      from a script without case, such as Chinese), so ``{"language": "Python"}`` is not a
      map; and some key or value has two or more words (or a key is in a caseless script,
      which writes no spaces), so ``{"Model": "GPT", "Confidence": "High"}`` is not one
      either. Why: a stray object of fields and a title map have the same JSON shape;
      only whole-answer position and title-like keys tell an intention list apart.

    Numbers (a JSON number, or a string without a letter such as ``"42"``), booleans and
    other objects never become tags, nor does anything in an object that only follows a
    list (``Metadata: {...}``). Every top-level value counts, so the paper's answer format
    works in every layout models write it: one ``{"tag": str, "explanation": str}`` object,
    a list of them, or a bare sequence of them (one per line, or separated by commas
    without brackets). A cut-off answer gives the items finished
    before the cut (an object whose tag string was finished counts, its explanation only if
    finished too). Tags are cleaned by :func:`clean_tag` (at most ``MAX_TAG_CHARS``) and
    explanations cut to ``MAX_EXPLANATION_CHARS``; answers over ``MAX_ANSWER_CHARS`` are cut
    first. Beyond ``MAX_TAGS`` distinct tags the first ones are kept and ``note`` says how many
    there were. ``status`` is ``ok`` iff a tag was recovered, else ``parse_error`` with ``error``.
    """
    try:
        return _parse(text)
    except Exception as exc:  # a parser bug must not kill a 300K-row run
        return ParseResult([], "parse_error", f"parser failure: {type(exc).__name__}: {exc}")


def _values(body: str):
    """``(value, complete, whole)`` for each top-level JSON value in ``body``, in order.

    ``whole``: the value is complete and is all of ``body`` but whitespace. A body that is
    one valid JSON document goes through the C decoder (one linear call); anything else
    through :func:`_read`, resuming after wherever the previous value stopped.
    """
    first = len(body) - len(body.lstrip())
    last = len(body.rstrip())
    if first < last and body[first] in "[{":
        try:
            yield _DECODER.decode(body[first:last]), True, True
            return
        except (ValueError, RecursionError):
            pass
    pos = 0
    while (match := _OPENERS.search(body, pos)) is not None:
        value, pos, complete = _read(body, match.start())
        yield value, complete, complete and match.start() == first and pos == last


def _parse(text: Any) -> ParseResult:
    if not isinstance(text, str) or not text.strip():
        return ParseResult([], "parse_error", "empty answer")
    seen: set[str] = set()
    tags: list[dict] = []
    found_pairs = complete = partial = False
    for value, done, whole in _values(_strip_fences(text[:MAX_ANSWER_CHARS])):
        complete, partial = complete or done, partial or not done
        pairs = _items(value) if value else []
        if not pairs and whole:
            pairs = _title_map(value)
        for raw_tag, raw_expl in pairs:
            found_pairs = True
            tag = clean_tag(raw_tag)
            if tag is None or tag.casefold() in seen:
                continue
            seen.add(tag.casefold())  # counted past the cap, for the note
            if len(tags) < MAX_TAGS:
                tags.append({"tag": tag, "explanation": _clean_explanation(raw_expl)})
    if tags:
        more = "at least " if len(text) > MAX_ANSWER_CHARS else ""  # the rest of the answer was not read
        note = f"kept the first {MAX_TAGS} of {more}{len(seen)} tags" if len(seen) > MAX_TAGS else ""
        return ParseResult(tags, "ok", "", note)
    if found_pairs:
        return ParseResult([], "parse_error", "no usable tag (empty, too long, or without a letter)")
    if complete:
        return ParseResult([], "parse_error", "JSON without tags")
    if partial:
        return ParseResult([], "parse_error", "unfinished JSON without tags")
    return ParseResult([], "parse_error", "no JSON found")
