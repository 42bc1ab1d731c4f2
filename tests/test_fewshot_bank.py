"""The few-shot bank (``instag_hf/data/fewshot_bank.jsonl``) that the embedded tagger picks examples from.

Each row is ``{"id", "category", "query", "tags"}``. The bank must not leak the
reference set or the bundled samples: no query may share a run of 40 or more
characters (after case folding and whitespace collapsing) with any of them.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

import instag_hf

DATA = Path(instag_hf.__file__).parent / "data"
BANK = DATA / "fewshot_bank.jsonl"
CATEGORIES = ("code", "math", "writing", "qa", "classification", "roleplay", "advice", "translation", "brainstorming",
              "task", "chat", "summarization", "extraction", "data")
OVERLAP = 40  # characters: a shared run this long is copied text, not a stock phrase
# no tag on more than 11% of the rows: "explanation request" is about 10%, as common intents are;
# the retrieval tagger copies bank tags, so a tag past this would crowd every dataset's tags
MAX_SHARE = 0.11


def _norm(text):
    return re.sub(r"\s+", " ", text.casefold()).strip()


def _read(name):
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def bank():
    with open(BANK, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def others():
    """Every user query of the reference set and the bundled samples."""
    texts = []
    for row in _read("reference_tags.jsonl") + _read("sample_chat.jsonl"):
        texts += [m["content"] for m in row["messages"] if m["role"] == "user"]
    for row in _read("sample_alpaca.jsonl"):
        texts += [row["instruction"], row.get("input", ""), f"{row['instruction']}\n{row.get('input', '')}"]
    return [_norm(t) for t in texts if t.strip()]


def test_rows_are_well_formed(bank):
    assert len(bank) >= 1900
    for row in bank:
        assert set(row) == {"id", "category", "query", "tags"}, row.get("id")
        assert re.fullmatch(r"bank-\d{4}", row["id"]), row["id"]
        assert isinstance(row["query"], str) and row["query"].strip(), row["id"]
        tags = row["tags"]
        assert 3 <= len(tags) <= 6, row["id"]
        assert len(set(tags)) == len(tags), row["id"]
        for tag in tags:
            assert tag == tag.lower().strip() and tag, (row["id"], tag)
            assert 1 <= len(tag.split()) <= 4, (row["id"], tag)


def test_ids_and_queries_are_unique(bank):
    assert len({row["id"] for row in bank}) == len(bank)
    queries = [_norm(row["query"]) for row in bank]
    assert len(set(queries)) == len(queries)


def test_every_category_is_present(bank):
    counts = Counter(row["category"] for row in bank)
    assert set(counts) == set(CATEGORIES), counts
    assert all(counts[c] >= 10 for c in CATEGORIES), counts


def test_no_tag_is_on_more_than_11_percent_of_rows(bank):
    counts = Counter(t for row in bank for t in row["tags"])
    tag, n = counts.most_common(1)[0]
    assert n <= MAX_SHARE * len(bank), (tag, n)


def test_no_query_shares_40_characters_with_the_reference_set_or_the_samples(bank, others):
    # a common substring of length >= OVERLAP exists iff the two texts share an OVERLAP-character window
    windows = {text[i:i + OVERLAP] for text in others for i in range(len(text) - OVERLAP + 1)}
    for row in bank:
        query = _norm(row["query"])
        assert query not in others, row["id"]
        shared = [w for w in (query[i:i + OVERLAP] for i in range(len(query) - OVERLAP + 1)) if w in windows]
        assert not shared, (row["id"], shared[0])
