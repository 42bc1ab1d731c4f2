"""The retrieval tagger: tags from the nearest queries of a tagged bank, ranked or voted, no language model."""

import hashlib
import json
import pickle

import numpy as np
import pytest
from datasets import Dataset

import instag_hf
from instag_hf import schema
from instag_hf.tagging.backends import make_backend
from instag_hf.tagging.backends.retrieval import RetrievalBackend, looks_like_code, vote_tags
from instag_hf.tagging.fewshot import Example


def bow(texts):
    """Bag of words hashed into 256 dimensions: deterministic, no model."""
    out = np.zeros((len(texts), 256), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().replace("?", " ").replace(".", " ").split():
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
    out[:, 0] += 1e-3
    return out


BANK = [
    {"query": "write a python function that reverses a string", "tags": ["code generation", "python programming", "string manipulation"]},
    {"query": "write a python function that sorts a list", "tags": ["code generation", "python programming", "sorting"]},
    {"query": "translate this sentence into french please", "tags": ["translation", "french"]},
    {"query": "translate this sentence into german please", "tags": ["translation", "german"]},
    {"query": "what is the capital of peru", "tags": ["question answering", "geography"]},
]


@pytest.fixture
def bank_file(tmp_path):
    path = tmp_path / "bank.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in BANK), encoding="utf-8")
    return path


def test_votes_keep_the_nearest_tags_and_the_tags_neighbours_share():
    examples = [Example(r["query"], tuple(r["tags"])) for r in BANK]
    sims = np.array([0.9, 0.8, 0.1, 0.1, 0.45])
    voted = vote_tags(sims, examples, k=3, min_votes=1.0, max_tags=10)
    names = [t for t, _, _ in voted]
    # shared by the two nearest, then the nearest's own tag; the third neighbour's tags weigh 0.5 alone
    assert names[:2] == ["code generation", "python programming"] and names[2] == "string manipulation"
    assert "sorting" not in names and "geography" not in names
    assert voted[0][2] == 2 and voted[0][1] == pytest.approx(1 + 0.8 / 0.9)
    assert [t for t, _, _ in vote_tags(sims, examples, k=3, min_votes=1.0, max_tags=2)] == names[:2]
    # a lower bar lets a single far neighbour in
    assert "sorting" in [t for t, _, _ in vote_tags(sims, examples, k=3, min_votes=0.5, max_tags=10)]


@pytest.mark.parametrize("method", ["vote", "ranker"])
def test_tagger_maps_a_chat_dataset_with_the_retrieval_backend(bank_file, cache_dir, method):
    backend = RetrievalBackend(bank=str(bank_file), embedder=bow, method=method)
    tagger = instag_hf.Tagger(backend=backend, cache_dir=cache_dir)
    ds = Dataset.from_dict({"messages": [
        [{"role": "user", "content": "Write a Python function that reverses a list"}],
        [{"role": "user", "content": "Translate this sentence into French: good morning"},
         {"role": "assistant", "content": "Bonjour"},
         {"role": "user", "content": "   "}],
    ]})
    out = tagger.map(ds)
    assert out[schema.STATUS] == [schema.OK, schema.OK]
    first = [t["tag"] for t in out[schema.TAGS][0]]
    assert {"code generation", "python programming"} <= set(first)
    assert "translation" in [t["tag"] for t in out[schema.TAGS][1]]
    if method == "vote":
        assert first[:2] == ["code generation", "python programming"]
        assert "geography" not in first
    assert "nearest bank queries" in out[schema.TAGS][0][0]["explanation"]
    assert ("probability" if method == "ranker" else "vote") in out[schema.TAGS][0][0]["explanation"]
    assert tagger.template.id == "chatml@1"


def test_answers_are_whole_by_construction(bank_file):
    """No token budget can cut a retrieved answer: each says it stopped on its own."""
    from instag_hf.tagging.backends.base import FINISH_STOP, GenerationParams
    from instag_hf.tagging.prompts import get_template

    backend = RetrievalBackend(bank=str(bank_file), embedder=bow, method="vote")
    prompts = [get_template("chatml").render(q) for q in ("sort a list in python", "capital of peru")]
    done = backend.generate(prompts, GenerationParams(max_new_tokens=1))
    assert [c.finish_reason for c in done] == [FINISH_STOP] * 2 and all(json.loads(c.text) for c in done)


def test_the_bank_content_is_part_of_the_cache_key(bank_file, tmp_path):
    before = RetrievalBackend(bank=str(bank_file), embedder=bow).identity()
    assert before == RetrievalBackend(bank=str(bank_file), embedder=bow).identity()
    bank_file.write_text(bank_file.read_text() + json.dumps({"query": "hi", "tags": ["greeting"]}) + "\n")
    after = RetrievalBackend(bank=str(bank_file), embedder=bow).identity()
    assert after["revision"] != before["revision"]
    assert RetrievalBackend(bank=str(bank_file), embedder=bow, k=5).identity() != after
    ranked, voted = (RetrievalBackend(bank=str(bank_file), embedder=bow, method=m).identity() for m in ("ranker", "vote"))
    assert ranked["method"] != voted["method"] and "threshold" in ranked and "min_votes" in voted
    assert RetrievalBackend(bank=str(bank_file), embedder=bow, threshold=0.3).identity() != ranked


def test_bad_settings_fail_up_front(tmp_path, bank_file):
    with pytest.raises(FileNotFoundError, match="no tagged bank"):
        RetrievalBackend(bank=str(tmp_path / "missing.jsonl"))
    for bad in ({"k": 0}, {"min_votes": 0}, {"max_tags": 0}, {"batch_size": 0}, {"threshold": 0}, {"threshold": 1.5},
                {"method": "llm"}):
        with pytest.raises(ValueError):
            RetrievalBackend(bank=str(bank_file), **bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"query": "x"}\n')
    completions = RetrievalBackend(bank=str(broken), embedder=bow).generate(
        [instag_hf.tagging.prompts.get_template("chatml").render("hello")], None)
    assert completions[0].error and "tags" in completions[0].error


def test_settings_survive_pickling_for_map_workers(bank_file):
    for backend in (RetrievalBackend(bank=str(bank_file), k=2, max_tags=3, embedder=bow, method="vote"),
                    RetrievalBackend(bank=str(bank_file), k=4, threshold=0.4, embedder=bow)):
        backend.tags_for(["write a python function"])  # a fitted ranker is not shipped to workers
        copy = pickle.loads(pickle.dumps(backend))
        assert copy.identity() == backend.identity() and copy._ranker is None
        assert copy.tags_for(["write a python function"]) == backend.tags_for(["write a python function"])


def test_auto_prefers_retrieval_on_a_cpu_and_falls_back_to_the_embedded_model(monkeypatch):
    backend = make_backend("auto")
    assert isinstance(backend, RetrievalBackend)
    assert instag_hf.tag.backend.name == "retrieval"
    monkeypatch.setattr(RetrievalBackend, "auto_config", classmethod(lambda cls: None))
    assert make_backend("auto").name == "transformers"


@pytest.mark.slow
def test_packaged_bank_with_minilm_tags_unseen_queries_sensibly(cache_dir):
    tagger = instag_hf.Tagger(backend="retrieval", cache_dir=cache_dir)
    code, german = tagger.tag_queries([
        "def count_vowels(s: str) -> int:\n    \"\"\"Return how many vowels are in s.\n    >>> count_vowels('hello')\n    2\n    \"\"\"",
        "Translate into German: 'The museum opens at nine tomorrow.'",
    ])
    assert code.status == german.status == schema.OK
    code_tags, german_tags = [t["tag"] for t in code.tags], [t["tag"] for t in german.tags]
    assert "python programming" in code_tags and "translation" in german_tags
    assert 2 <= len(code_tags) <= 5


def test_a_bank_too_small_to_fit_the_ranker_fails_each_row_clearly(tmp_path, cache_dir):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(BANK[0]) + "\n", encoding="utf-8")
    tagger = instag_hf.Tagger(backend=RetrievalBackend(bank=str(path), embedder=bow), cache_dir=cache_dir)
    out = tagger.map(Dataset.from_dict({"messages": [[{"role": "user", "content": "reverse a string"}]]}))
    assert out[schema.STATUS] != [schema.OK] and "too small to fit a tag ranker" in out[schema.ERROR][0]
    voted = instag_hf.Tagger(backend=RetrievalBackend(bank=str(path), embedder=bow, method="vote"), cache_dir=cache_dir)
    assert voted.tag_queries(["reverse a string"])[0].status == schema.OK


@pytest.mark.parametrize("text", [
    "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n    \"\"\"Any two closer than threshold?\"\"\"\n",
    "const hasCloseElements = (numbers, threshold) => {\n",
    "/*\nCheck if two numbers are closer than the threshold.\n*/\nbool has_close_elements(vector<float> numbers, float threshold){\n",
    "// WordWrap breaks text into lines.\n//   WordWrap(\"a b\", 1) => []string{\"a\", \"b\"}\nfunc WordWrap(text string, width int) []string {\n",
    "# Keeps truthy values.\n# compact({a: 1})\ndef compact_params(params)\nend\n",
    "Complete this bash function:\n\n# backup_dir SRC DEST\nbackup_dir() {\n",
    "double median(std::vector<int> v) {\n    // ???\n}\n",
    "function y = clip_outliers(x, k)\n% clamp values\n",
])
def test_the_code_gate_sees_stubs_in_many_languages(text):
    assert looks_like_code(text)


@pytest.mark.parametrize("text", [
    "What is the relation between the given pairs? Input: Night : Day :: Right : ?",
    "Write a Go function that parses a duration string like 1h30m into seconds.",
    "Give three tips for staying healthy (diet, sleep, exercise).",
    "# My trip\nWe went to Lisbon (in May) and loved it.\nWhat should we see next time?",
    "# Recipe\n## Ingredients\nFlour (2 cups)\nSugar = 1 cup\n% of daily value: 10",
    "Summarize: The committee (chaired by Ana) met on Monday; it approved the budget.",
])
def test_the_code_gate_leaves_prose_alone(text):
    assert not looks_like_code(text)


def test_cards_and_logs_name_no_template_for_a_backend_that_reads_the_query_alone(tmp_path, caplog):
    import logging

    from instag_hf.publish import InstagDatasetCard

    tagger = instag_hf.Tagger(backend="retrieval", cache_dir=str(tmp_path), progress=False)
    settings = tagger.describe()
    assert settings["backend"]["backend"] == "retrieval"
    assert not {"template", "params", "prompt"} & set(settings)
    assert "cache key" not in settings and tagger.namespace()["template"]  # the cache key still holds it
    card = InstagDatasetCard(pretty_name="r", tagger=settings).render()
    assert "prompt template" not in card and "max_new_tokens" not in card
    with caplog.at_level(logging.INFO, logger="instag_hf"):
        tagger.tag_queries(["Write a haiku about autumn"])
    assert "with template" not in caplog.text
