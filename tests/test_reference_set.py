"""The bundled reference set (``load_reference``), ``score_tagger`` and ``instag eval --reference``."""

import hashlib
import json
import re
from collections import Counter

import numpy as np
import pytest

from instag_hf import Tagger
from instag_hf.cli.main import main
from instag_hf.quality import score_tagger
from instag_hf.samples import REFERENCE_COLUMN, SAMPLES, load_reference, sample_path
from instag_hf.tagging.backends.base import Completion
from instag_hf.tagging.prompts import TEMPLATES
from instag_hf.testing import KeywordBackend

REQUIRED = ("code", "math", "writing", "qa", "classification", "roleplay", "multiturn")
KEYWORD = ["--backend", "instag_hf.testing:KeywordBackend"]
OVERLAP = 40  # characters: a shared run this long is copied text, not a stock phrase


@pytest.fixture(scope="module")
def ref():
    return load_reference()


def _users(messages):
    return [m["content"] for m in messages if m["role"] == "user"]


def _norm(text):
    return re.sub(r"\s+", " ", text.casefold()).strip()


def test_rows_ids_and_tags_are_well_formed(ref):
    assert len(ref) >= 150
    assert ref.features[REFERENCE_COLUMN].feature.dtype == "string"
    assert len(set(ref["id"])) == len(ref)
    for row in ref:
        tags = row[REFERENCE_COLUMN]
        assert 3 <= len(tags) <= 6, row["id"]
        assert len(set(tags)) == len(tags), row["id"]
        assert all(t == t.lower().strip() and t for t in tags), row["id"]


def test_every_required_category_is_covered(ref):
    counts = Counter(ref["category"])
    short = {c: counts[c] for c in REQUIRED if counts[c] < 15}
    assert not short, f"categories with fewer than 15 rows: {short}"


def test_multi_turn_rows_have_several_user_turns_and_the_others_one(ref):
    for row in ref:
        roles = [m["role"] for m in row["messages"]]
        assert roles[0] == "user" and roles[-1] == "user", row["id"]
        assert all(a != b for a, b in zip(roles, roles[1:])), row["id"]  # user and assistant alternate
        if row["category"] == "multiturn":
            assert 2 <= roles.count("user") <= 3, row["id"]
        else:
            assert roles == ["user"], row["id"]
    turns = [_norm(q) for m in ref["messages"] for q in _users(m)]
    assert len(set(turns)) == len(turns)


def test_no_query_comes_from_the_few_shot_examples_or_the_bundled_samples(ref):
    others = [q for t in TEMPLATES.values() for q, _ in t.few_shot]
    for name in SAMPLES:
        with open(sample_path(name), encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if "messages" in row:
                    others += _users(row["messages"])
                else:
                    others.append(f"{row['instruction']}\n{row.get('input', '')}")
    windows = {text[i:i + OVERLAP] for text in map(_norm, others) for i in range(len(text) - OVERLAP + 1)}
    for row in ref:
        for query in map(_norm, _users(row["messages"])):
            assert query not in map(_norm, others), row["id"]
            shared = [w for w in (query[i:i + OVERLAP] for i in range(len(query) - OVERLAP + 1)) if w in windows]
            assert not shared, (row["id"], shared[0])


def test_no_tag_is_on_more_than_12_percent_of_rows(ref):
    counts = Counter(t for tags in ref[REFERENCE_COLUMN] for t in tags)
    tag, n = counts.most_common(1)[0]
    assert n <= 0.12 * len(ref), (tag, n)


class HashEmbedder:
    """Unit vectors from a hash of the text: a tag matches itself only (no embedding model)."""

    cache_id = None

    def __call__(self, texts):
        seeds = [int(hashlib.sha1(t.encode()).hexdigest()[:8], 16) for t in texts]
        vectors = np.array([np.random.default_rng(s).normal(size=256) for s in seeds])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class OracleBackend(KeywordBackend):
    """Answers every user turn with its row's reference tags (so each row's union is exactly them)."""

    def __init__(self, answers):
        super().__init__()
        self.answers = answers

    def generate(self, prompts, params):
        out = []
        for p in prompts:
            query = p.messages[-1]["content"].split("[begin]\n", 1)[1].rsplit("\n[end]", 1)[0]
            tags = [{"tag": t.title(), "explanation": "reference"} for t in self.answers[query.strip()]]
            out.append(Completion(text=json.dumps(tags)))
        return out


def test_a_tagger_that_returns_the_reference_tags_scores_one(ref):
    answers = {q.strip(): row[REFERENCE_COLUMN] for row in ref for q in _users(row["messages"])}
    tagger = Tagger(backend=OracleBackend(answers), template="teacher", use_cache=False)
    result = score_tagger(tagger, ref, embedder=HashEmbedder())
    assert result["exact"] == result["fuzzy"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert result["rows"] == len(ref) and result["statuses"] == {"ok": len(ref)}
    assert result["queries"] == sum(len(_users(m)) for m in ref["messages"])
    assert result["tags_per_query"] == pytest.approx(np.mean([len(t) for t in ref[REFERENCE_COLUMN]]))
    assert result["top_tag_share"] == result["top_tag_reference_share"] > 0
    assert result["queries_per_s"] > 0
    assert [p["id"] for p in result["predictions"]] == ref["id"]
    assert result["report"].fuzzy.micro.f1 == 1.0


def test_keyword_tagger_numbers_are_consistent(ref):
    result = score_tagger(Tagger(backend=KeywordBackend(), use_cache=False), embedder=HashEmbedder())
    preds = result["predictions"]
    assert len(preds) == result["rows"] == len(ref)
    assert 0 <= result["exact"]["f1"] <= result["fuzzy"]["f1"] < 0.2
    assert result["tags_per_query"] == pytest.approx(np.mean([len(p["tags"]) for p in preds]))
    share = sum(result["top_tag"] in [t.lower() for t in p["tags"]] for p in preds) / len(preds)
    assert result["top_tag_share"] == pytest.approx(share)
    assert score_tagger(Tagger(backend=KeywordBackend(), use_cache=False), ref.select(range(5)),
                        threshold=None)["fuzzy"] is None
    with pytest.raises(ValueError, match=REFERENCE_COLUMN):
        score_tagger(Tagger(backend=KeywordBackend()), ref.remove_columns(REFERENCE_COLUMN))


def test_cli_eval_reference_writes_report_summary_and_predictions(ref, tmp_path, capsys):
    out = tmp_path / "ref-eval"
    assert main(["eval", "--reference", *KEYWORD, "--exact-only", "--no-cache", "--top", "3",
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| exact | micro |" in text and "tags per query" in text and "most frequent predicted tag" in text
    report = json.loads((out / "report.json").read_text())
    assert report["rows"] == len(ref) and report["fuzzy"] is None
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tagger"]["backend"]["backend"] == "keyword" and "predictions" not in summary
    assert summary["exact"]["f1"] == pytest.approx(report["exact"]["micro"]["f1"])
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ref["id"] and all(r["status"] == "ok" and r["tags"] for r in rows)
    # PRED/GOLD options do not mix with --reference, nor the tagger's with PRED/GOLD
    assert main(["eval", "--reference", "x.jsonl"]) == 2
    assert main(["eval", "--reference", "--on", "id"]) == 2
    assert main(["eval"]) == 2
    assert main(["eval", str(out / "predictions.jsonl"), *KEYWORD]) == 2
