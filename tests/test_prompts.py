import json

import pytest

from instag_hf.tagging.prompts import TEMPLATES, Template, get_template


def test_teacher_prompt_has_markers_examples_and_json_contract():
    p = get_template("teacher").render("How do I sort a list?")
    (msg,) = p.messages
    text = msg["content"]
    assert msg["role"] == "user"
    assert "[begin]\nHow do I sort a list?\n[end]" in text
    assert "Spelling and Grammar Check" in text and "Cosplay" in text
    assert '[{"tag": str, "explanation": str}]' in text
    assert p.text is None


def test_vicuna_renders_exact_fastchat_layout():
    p = get_template("vicuna_v1.1").render("Write a poem")
    assert p.text.startswith("A chat between a curious user and an artificial intelligence assistant.")
    assert " USER: " in p.text and p.text.endswith(" ASSISTANT:")
    assert "User query: Write a poem" in p.text


def test_chatml_sends_the_raw_query():
    p = get_template("chatml").render("raw query")
    assert p.messages == ({"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "raw query"})


def test_fewshot_examples_are_valid_json_and_prefill_is_set():
    p = get_template("fewshot").render("q")
    answers = [m["content"] for m in p.messages if m["role"] == "assistant"]
    assert answers and all(isinstance(json.loads(a), list) for a in answers)
    assert p.response_prefix.startswith("[")


def test_braces_in_queries_are_kept_verbatim():
    p = get_template("teacher").render('print({"a": 1}) {query}')
    assert 'print({"a": 1}) {query}' in p.messages[0]["content"]


def test_ids_are_versioned_and_lookup_is_strict():
    assert {t.id for t in TEMPLATES.values()} >= {"teacher@1", "vicuna_v1.1@1", "chatml@1", "fewshot@1", "fewshot_retrieval@2"}
    assert get_template("teacher@1") is TEMPLATES["teacher"]
    with pytest.raises(ValueError, match="not available"):
        get_template("teacher@0")
    with pytest.raises(ValueError, match="unknown template"):
        get_template("nope")
    custom = Template(name="mine", version="3", user="{query}")
    assert get_template(custom).id == "mine@3"


def _bow_embedder(texts):
    """Bag of words hashed into 64 dimensions: deterministic, no model."""
    import hashlib

    import numpy as np

    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, int(hashlib.md5(word.strip(".,?!").encode()).hexdigest(), 16) % 64] += 1.0
    out[:, 0] += 1e-3  # no zero vector
    return out


def test_fewshot_takes_the_nearest_bank_examples_per_query(monkeypatch):
    import json

    from instag_hf.tagging import fewshot

    bank = fewshot.FewShotBank([
        fewshot.Example("write a python function that sorts a list", ("python programming", "sorting")),
        fewshot.Example("translate this sentence into french", ("translation", "french language")),
        fewshot.Example("solve this equation for x", ("algebra", "equation solving")),
    ], embedder=_bow_embedder)
    monkeypatch.setitem(fewshot._BANKS, fewshot.DEFAULT_BANK, bank)
    template = get_template("fewshot_retrieval")
    assert template.id == "fewshot_retrieval@2" and template.retrieve == 4
    prompt = template.render("please translate my sentence into french")
    users = [m["content"] for m in prompt.messages if m["role"] == "user"]
    answers = [json.loads(m["content"]) for m in prompt.messages if m["role"] == "assistant"]
    assert len(users) == 4 and "translate this sentence into french" in users[-2]  # the nearest sits last
    assert answers[-1] == ["translation", "french language"] and len(answers) == 3  # the bank has 3
    other = template.render("write a python function that sorts a list of numbers")
    assert json.loads([m for m in other.messages if m["role"] == "assistant"][-1]["content"])[0] == "python programming"
    assert prompt.response_prefix == '["'


def test_the_packaged_bank_loads():
    from instag_hf.tagging.fewshot import FewShotBank

    bank = FewShotBank.load(embedder=_bow_embedder)
    assert len(bank.examples) >= 1900 and all(3 <= len(e.tags) <= 6 for e in bank.examples)
    assert get_template("fewshot").few_shot and not get_template("fewshot").retrieve  # the default is unchanged
