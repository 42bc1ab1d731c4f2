"""Find the user queries of SFT samples, whatever the dataset's schema.

InsTag tags every user turn separately and never the assistant's answers, so what
comes out of here is, for each row, the list of its user turns in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

FORMATS = ("sharegpt", "messages", "alpaca", "dolly", "text")
USER_ROLES = frozenset({"user", "human"})
TEXT_COLUMNS = ("query", "prompt", "question", "text")


class QueryFormatError(ValueError):
    """The columns of a dataset do not tell where its user queries are."""


@dataclass(frozen=True)
class QueryFormat:
    """How to read the user turns out of one row.

    ``kind`` is one of :data:`FORMATS`; ``column`` is the column read for
    ``text``, ``sharegpt`` and ``messages``.
    """

    kind: str
    column: str | None = None

    def extract(self, row: Mapping[str, Any]) -> list[str]:
        return _EXTRACTORS[self.kind](self, row)


def detect_format(columns: Iterable[str], format: str | None = None, query_column: str | None = None) -> QueryFormat:
    """Pick the query format from a dataset's column names.

    ``query_column`` forces a plain text column; ``format`` forces one of
    :data:`FORMATS` (its usual column must exist). Anything ambiguous or unknown
    raises :class:`QueryFormatError` naming the columns seen and the way out.
    """
    cols = list(columns)
    seen = set(cols)
    if query_column is not None:
        if query_column not in seen:
            raise QueryFormatError(f"query_column={query_column!r} is not a column; columns seen: {cols}")
        return QueryFormat("text", query_column)
    if format is not None:
        if format not in FORMATS:
            raise QueryFormatError(f"format={format!r} is not one of {FORMATS}")
        needed = _REQUIRED[format]
        if format == "text":
            found = [c for c in TEXT_COLUMNS if c in seen]
            if not found:
                raise QueryFormatError(
                    f"format='text' needs one of the columns {TEXT_COLUMNS} or query_column=...; columns seen: {cols}"
                )
            return QueryFormat("text", found[0])
        missing = [c for c in needed if c not in seen]
        if missing:
            raise QueryFormatError(f"format={format!r} needs columns {missing}; columns seen: {cols}")
        return QueryFormat(format, needed[0])
    if "conversations" in seen:
        return QueryFormat("sharegpt", "conversations")
    if "messages" in seen:
        return QueryFormat("messages", "messages")
    if "instruction" in seen and "context" in seen and "input" not in seen:
        return QueryFormat("dolly", "instruction")
    if "instruction" in seen:
        return QueryFormat("alpaca", "instruction")
    for name in TEXT_COLUMNS:
        if name in seen:
            return QueryFormat("text", name)
    raise QueryFormatError(
        "Could not find the user queries in this dataset. Columns seen: "
        f"{cols}. Known layouts: ShareGPT ('conversations' with from/value), chat "
        "('messages' with role/content), Alpaca ('instruction' + optional 'input'), Dolly "
        f"('instruction' + 'context') or a text column named one of {list(TEXT_COLUMNS)}. "
        "Pick a column with Tagger(query_column='<name>') (CLI: --query-column), or a "
        f"layout with format=one of {list(FORMATS)}."
    )


_REQUIRED: dict[str, Sequence[str]] = {
    "sharegpt": ("conversations",),
    "messages": ("messages",),
    "alpaca": ("instruction",),
    "dolly": ("instruction", "context"),
    "text": (),
}


def _text(value: Any) -> str:
    """Flatten a message content (a string, or a list of typed parts) to text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return str(value.get("text") or "")
    if isinstance(value, (list, tuple)):
        return "\n".join(t for t in (_text(p) for p in value) if t)
    return str(value)


def _join(*parts: Any) -> str:
    return "\n\n".join(p.strip() for p in map(_text, parts) if p and p.strip())


def _turns(turns: Any, role_key: str, text_key: str) -> list[str]:
    if not turns:
        return []
    if isinstance(turns, Mapping):  # a column read as a dict of lists
        roles, texts = turns.get(role_key) or [], turns.get(text_key) or []
        pairs = zip(roles, texts)
    else:
        pairs = ((t.get(role_key), t.get(text_key)) for t in turns if isinstance(t, Mapping))
    return [_text(text) for role, text in pairs if str(role or "").lower() in USER_ROLES]


_EXTRACTORS: dict[str, Callable[[QueryFormat, Mapping[str, Any]], list[str]]] = {
    "sharegpt": lambda f, row: _turns(row.get(f.column), "from", "value"),
    "messages": lambda f, row: _turns(row.get(f.column), "role", "content"),
    "alpaca": lambda f, row: [_join(row.get("instruction"), row.get("input"))],
    "dolly": lambda f, row: [_join(row.get("instruction"), row.get("context"))],
    "text": lambda f, row: [_text(row.get(f.column))],
}


def extract_batch(batch: Mapping[str, Sequence[Any]], fmt: QueryFormat) -> list[list[str]]:
    """User turns of every row of a column-oriented batch (as ``map(batched=True)`` gives)."""
    names = list(batch)
    n = len(batch[names[0]]) if names else 0
    return [fmt.extract({k: batch[k][i] for k in names}) for i in range(n)]


ASSISTANT_ROLES = frozenset({"assistant", "gpt", "bot", "model", "chatgpt"})
#: the column holding the answer of the single-turn layouts
ANSWER_COLUMNS = {"alpaca": "output", "dolly": "response"}


def _pairs(turns: Any, role_key: str, text_key: str) -> list[tuple[str, str | None]]:
    if not turns:
        return []
    if isinstance(turns, Mapping):  # a column read as a dict of lists
        items = list(zip(turns.get(role_key) or [], turns.get(text_key) or []))
    else:
        items = [(t.get(role_key), t.get(text_key)) for t in turns if isinstance(t, Mapping)]
    pairs: list[tuple[str, str | None]] = []
    for role, text in items:
        role = str(role or "").lower()
        if role in USER_ROLES:
            pairs.append((_text(text), None))
        elif role in ASSISTANT_ROLES and pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], _text(text))
    return pairs


def extract_pairs(row: Mapping[str, Any], fmt: QueryFormat) -> list[tuple[str, str | None]]:
    """``(user turn, the assistant answer that follows it)`` per user turn of ``row``, in order.

    The answer is None where none follows (a conversation ending on a user turn, a row
    without an ``output``/``response`` column, a plain text column). The user turns are
    exactly those of :meth:`QueryFormat.extract`.
    """
    if fmt.kind == "sharegpt":
        return _pairs(row.get(fmt.column), "from", "value")
    if fmt.kind == "messages":
        return _pairs(row.get(fmt.column), "role", "content")
    queries = fmt.extract(row)
    column = ANSWER_COLUMNS.get(fmt.kind)
    answer = row.get(column) if column else None
    return [(queries[0], None if answer is None else _text(answer))]


def extract_pairs_batch(batch: Mapping[str, Sequence[Any]], fmt: QueryFormat) -> list[list[tuple[str, str | None]]]:
    """:func:`extract_pairs` of every row of a column-oriented batch."""
    names = list(batch)
    n = len(batch[names[0]]) if names else 0
    return [extract_pairs({k: batch[k][i] for k in names}, fmt) for i in range(n)]
