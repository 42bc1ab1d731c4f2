"""Column names, statuses and features of the data contract (docs/architecture.md, "The data contract"). Public API."""

from __future__ import annotations

import pyarrow as pa
from datasets import Features, List, Value

__all__ = ["Features"]  # re-exported for callers building output features

TAGS = "instag_tags"
STATUS = "instag_status"
ERROR = "instag_error"
TURN_TAGS = "instag_turn_tags"
TURN_STATUS = "instag_turn_status"
NORM_TAGS = "instag_norm_tags"

OK = "ok"
PARSE_ERROR = "parse_error"
EMPTY_QUERY = "empty_query"
TRUNCATED = "truncated"
#: the model's answer was cut at the token budget, also when asked again with a larger one
ANSWER_TRUNCATED = "answer_truncated"
BACKEND_ERROR = "backend_error"
STATUSES = (OK, TRUNCATED, ANSWER_TRUNCATED, PARSE_ERROR, EMPTY_QUERY, BACKEND_ERROR)

#: the statuses whose tags are usable: ``truncated`` rows were tagged on a cut query
TAGGED_STATUSES = frozenset({OK, TRUNCATED})

# A sample's status is the most severe of its turns' (empty turns of a multi-turn
# sample are skipped; a sample with no text at all is ``empty_query``).
SEVERITY = {OK: 0, TRUNCATED: 1, ANSWER_TRUNCATED: 2, PARSE_ERROR: 3, BACKEND_ERROR: 4}

TAG_ITEM = {"tag": Value("string"), "explanation": Value("string")}

TAG_FEATURES = Features(
    {
        TAGS: List(TAG_ITEM),
        STATUS: Value("string"),
        ERROR: Value("string"),
        TURN_TAGS: List(List(TAG_ITEM)),
        TURN_STATUS: List(Value("string")),
    }
)

# Scores (MIG's row weights: Deita's quality x complexity, averaged over a row's turns)
QUALITY = "instag_quality"
COMPLEXITY = "instag_complexity"
SCORE = "instag_score"
SCORE_STATUS = "instag_score_status"
SCORE_ERROR = "instag_score_error"
#: the answer carried no log-probabilities of the first generated token (never a parsed-text fallback)
NO_LOGPROBS = "no_logprobs"
#: the row has a user query but no assistant answer: its quality (so its score) is not scored
NO_ANSWER = "no_answer"
SCORE_STATUSES = (OK, TRUNCATED, NO_ANSWER, EMPTY_QUERY, NO_LOGPROBS, BACKEND_ERROR)
#: a row's score status is the most severe of its turns'
SCORE_SEVERITY = {OK: 0, TRUNCATED: 1, NO_ANSWER: 2, EMPTY_QUERY: 3, NO_LOGPROBS: 4, BACKEND_ERROR: 5}

SCORE_FEATURES = Features(
    {
        QUALITY: Value("float64"),
        COMPLEXITY: Value("float64"),
        SCORE: Value("float64"),
        SCORE_STATUS: Value("string"),
        SCORE_ERROR: Value("string"),
    }
)


def passed_one_row(batch) -> bool | None:
    """Whether ``datasets`` passed a map function one row (True) or a batch (False); None when
    the input is a plain mapping (an ``IterableDataset``, a direct call) and the caller must tell."""
    from datasets.formatting.formatting import LazyBatch, LazyRow

    if isinstance(batch, LazyRow):
        return True
    return False if isinstance(batch, LazyBatch) else None


TAG_ARROW_TYPES: dict[str, pa.DataType] = {field.name: field.type for field in TAG_FEATURES.arrow_schema}


def status_counts(dataset) -> dict:
    """Rows per ``instag_status`` value of a ``Dataset``, counted on its Arrow column (no Python
    object per row); empty without a status column."""
    import pyarrow.compute as pc

    if STATUS not in dataset.column_names or len(dataset) == 0:
        return {}
    column = dataset.with_format("arrow")[STATUS]
    return {item["values"]: item["counts"] for item in pc.value_counts(column).to_pylist()}
