"""The bundled data: samples for demos and tests, and a reference set for scoring taggers.

- :func:`load_sample`: about 200 SFT samples written for this project (demos, tests).
- :func:`load_reference`: 186 queries written for this project in the InsTag paper's
  style (code, math, writing, QA, classification, role-play, multi-turn chat and a few
  smaller kinds), each with 3 to 6 lowercase reference intention tags covering all its
  user turns. It shares no query with the bundled samples or the few-shot examples of
  the prompt templates, so a tagger is never scored on what its prompt shows it;
  :func:`instag_hf.quality.reference.score_tagger` and ``instag eval --reference`` use it.
"""

from __future__ import annotations

import json
from importlib import resources

from datasets import Dataset, Features, List, Value, load_dataset

SAMPLES = {"alpaca": "sample_alpaca.jsonl", "chat": "sample_chat.jsonl"}
REFERENCE = "reference_tags.jsonl"
#: the column of :func:`load_reference` that holds the reference tags
REFERENCE_COLUMN = "reference_tags"
REFERENCE_FEATURES = Features({
    "id": Value("string"),
    "category": Value("string"),
    "messages": List({"role": Value("string"), "content": Value("string")}),
    REFERENCE_COLUMN: List(Value("string")),
})


def _data_path(name: str) -> str:
    return str(resources.files("instag_hf") / "data" / name)


def sample_path(name: str = "alpaca") -> str:
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; choose from {sorted(SAMPLES)}")
    return _data_path(SAMPLES[name])


def load_sample(name: str = "alpaca") -> Dataset:
    """``"alpaca"`` (instruction/input/output/category) or ``"chat"`` (messages/category, many multi-turn)."""
    return load_dataset("json", data_files=sample_path(name), split="train")


def load_reference() -> Dataset:
    """The reference set: ``id``, ``category``, ``messages`` (OpenAI chat format) and ``reference_tags``.

    Built in memory (no ``datasets`` cache files): it is small, and scoring must not
    depend on a stale cache.
    """
    rows = []
    with open(_data_path(REFERENCE), encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                row[REFERENCE_COLUMN] = row.pop("tags")
                rows.append(row)
    return Dataset.from_list(rows, features=REFERENCE_FEATURES)
