"""The transformers backend reads the token ids vLLM reads, and says why each answer stopped.

vLLM encodes a template's own text (``LLM.generate`` on a string) with the tokenizer's
special tokens, so a LLaMA tokenizer puts its BOS ``<s>`` first, as FastChat did when it
trained InsTagger; it encodes a chat template's text (``LLM.chat``) without them. The
embedded SmolLM2 tokenizer has a BOS (``<|im_start|>``) but adds none, so the BOS rule is
checked with a copy of its tokenizer whose post-processor adds it, as LLaMA's does (built
here, no network). tests/test_vllm_engine.py compares with vLLM's own ids.
"""

import json
import os
from pathlib import Path

import pytest

from instag_hf.tagging.backends.base import FINISH_LENGTH, FINISH_STOP, GenerationParams
from instag_hf.tagging.backends.embedded import embedded_checkpoint
from instag_hf.tagging.backends.transformers import TransformersBackend
from instag_hf.tagging.prompts import Prompt, get_template

BOS = "<|im_start|>"
QUERIES = ["Write a SQL query that counts orders per customer.", "Translate 'thank you' into German."]


def bos_adding_checkpoint(folder: Path) -> Path:
    """The embedded SmolLM2 checkpoint (weights linked) with a tokenizer that puts its BOS before every text."""
    source = embedded_checkpoint()
    folder.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name != "tokenizer.json":
            os.symlink(item, folder / item.name)
    tokenizer = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    bos_id = next(t["id"] for t in tokenizer["added_tokens"] if t["content"] == BOS)
    first = {"SpecialToken": {"id": BOS, "type_id": 0}}
    tokenizer["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [first, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [first, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {BOS: {"id": BOS, "ids": [bos_id], "tokens": [BOS]}},
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def bos_backend(tmp_path_factory):
    return TransformersBackend(model=str(bos_adding_checkpoint(tmp_path_factory.mktemp("bos") / "model")))


def vicuna(query=QUERIES[0]) -> Prompt:
    return get_template("vicuna_v1.1").render(query)


def test_the_embedded_tokenizer_has_a_bos_but_adds_none():
    backend = TransformersBackend()
    tokenizer = backend._tokenizer()
    assert tokenizer.convert_ids_to_tokens(tokenizer.bos_token_id) == BOS
    assert backend.added_bos() is None
    ids = backend.encode_prompt(vicuna())
    assert ids == tokenizer.encode(vicuna().text)  # what LLM.generate feeds: special tokens on
    assert tokenizer.bos_token_id not in ids


def test_a_vicuna_prompt_starts_with_the_bos_exactly_once(bos_backend):
    tokenizer = bos_backend._tokenizer()
    bos = tokenizer.bos_token_id
    assert bos_backend.added_bos() == bos
    prompt = vicuna()
    ids = bos_backend.encode_prompt(prompt)
    assert ids[0] == bos and ids.count(bos) == 1
    assert ids == tokenizer.encode(prompt.text)  # what LLM.generate feeds
    assert ids[1:] == tokenizer.encode(prompt.text, add_special_tokens=False)
    assert bos_backend.prompt_tokens(prompt) == len(ids)  # the prompt budget counts it
    written = Prompt(prompt.messages, BOS + prompt.text)
    assert bos_backend.encode_prompt(written) == ids  # a text that starts with it is not given a second


def test_chat_prompts_are_encoded_as_llm_chat_encodes_them(bos_backend):
    """The chat template writes its own special tokens; LLM.chat encodes its text without adding any."""
    tokenizer = bos_backend._tokenizer()
    for prompt in (get_template("chatml").render(QUERIES[0]), get_template("fewshot").render(QUERIES[0])):
        text = tokenizer.apply_chat_template(list(prompt.messages), tokenize=False, add_generation_prompt=True)
        ids = bos_backend.encode_prompt(prompt)
        assert ids == tokenizer.encode(text + prompt.response_prefix, add_special_tokens=False)
        assert ids[:2] != [tokenizer.bos_token_id] * 2


@pytest.mark.slow
@pytest.mark.parametrize("template", ["vicuna_v1.1", "fewshot"])
def test_the_model_reads_the_encoded_ids_with_and_without_the_prefix_cache(bos_backend, template):
    prompts = [get_template(template).render(q) for q in QUERIES]
    for backend in (bos_backend, TransformersBackend(model=bos_backend.model, prefix_cache=False)):
        enc, rows = backend._encode(prompts)
        assert rows == [backend.encode_prompt(p) for p in prompts]
        assert (len(enc) > 2) == (backend.prefix_cache and template == "fewshot")  # the KV-cached prefix
        for ids, mask, expected in zip(enc["input_ids"].tolist(), enc["attention_mask"].tolist(), rows):
            assert [t for t, m in zip(ids, mask) if m] == expected


@pytest.mark.slow
def test_answers_say_why_they_stopped():
    backend = TransformersBackend()
    cut = backend.generate([vicuna(q) for q in QUERIES], GenerationParams(max_new_tokens=8))
    assert [(c.finish_reason, c.completion_tokens) for c in cut] == [(FINISH_LENGTH, 8)] * 2
    assert [c.prompt_tokens for c in cut] == [len(backend.encode_prompt(vicuna(q))) for q in QUERIES]
    # one batch: a few-shot answer ends on its stop string, a Vicuna one on a newline, a chat one runs on
    chat = Prompt(({"role": "user", "content": "Say hi in one word."},))
    prompts = [get_template("fewshot").render(QUERIES[0]), vicuna(), chat]
    mixed = backend.generate(prompts, GenerationParams(max_new_tokens=24, stop=("]", "\n")))
    assert [c.finish_reason for c in mixed] == [FINISH_LENGTH, FINISH_STOP, FINISH_LENGTH]
    assert mixed[1].text.endswith("\n") and mixed[1].completion_tokens < 24
    whole = backend.generate(prompts[:1] + [chat], GenerationParams(max_new_tokens=96, stop=("]",)))
    assert [c.finish_reason for c in whole] == [FINISH_STOP, FINISH_STOP]  # a stop string; the EOS
    assert whole[0].text.endswith("]") and json.loads(whole[0].text)
    assert whole[1].completion_tokens < 96
