"""Distillation data: training prompts equal the Tagger's inference prompts; the held-out split is seeded."""

import json

import pytest

from instag_hf import Tagger, load_sample, parse_tags
from instag_hf.tagging.prompts import Template, get_template
from instag_hf.quality import distill_dataset, finetune_command, save_distill
from instag_hf.quality.distill import split_groups
from instag_hf.testing import KeywordBackend


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    tagger = Tagger(backend=KeywordBackend(fail="(?i)recipe"), use_cache=False, progress=False)
    return tagger.map(load_sample("chat"), desc=None)


def _turns(ds):
    """(query, tags) of every turn the keyword teacher tagged."""
    from instag_hf.tagging.queries import detect_format

    fmt = detect_format(["messages"])
    out = []
    for row in ds:
        for q, tags, st in zip(fmt.extract(row), row["instag_turn_tags"], row["instag_turn_status"]):
            if st == "ok":
                out.append((q, [t["tag"] for t in tags]))
    return out


def test_vicuna_prompt_completion_matches_the_inference_prompt(tagged):
    splits, report = distill_dataset(tagged, "vicuna_v1.1", test_size=0.2, seed=1, return_report=True)
    assert report.layout == "prompt_completion" and report.template == "vicuna_v1.1@1"
    expected = _turns(tagged)
    assert report.examples == len(expected) == len(splits["train"]) + len(splits["test"])
    assert report.skipped["failed_turns"] > 0  # the teacher failed on recipe turns: left out, counted
    template = get_template("vicuna_v1.1")
    for rec in splits["train"].select(range(20)):
        assert rec["prompt"] == template.render(rec["instag_query"]).text
        assert rec["prompt"].endswith("ASSISTANT:") and rec["completion"].startswith(" [")
        parsed = parse_tags(rec["completion"])
        assert parsed.status == "ok" and [t["tag"] for t in parsed.tags] == rec["instag_gold_tags"]
    text = distill_dataset(tagged, "vicuna_v1.1", "text", test_size=0.2)["train"][0]["text"]
    assert text.startswith(template.system + " USER: ") and text.endswith("</s>")


def test_chatml_messages_and_sharegpt_conversations(tagged):
    splits = distill_dataset(tagged, "chatml", test_size=10)
    rec = splits["train"][0]
    roles = [m["role"] for m in rec["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert rec["messages"][0]["content"] == "You are a helpful assistant."
    assert rec["messages"][1]["content"] == rec["instag_query"]  # chatml: the raw query, as at inference
    assert parse_tags(rec["messages"][2]["content"]).status == "ok"
    conv = distill_dataset(tagged, "chatml", "conversations", test_size=10)["train"][0]["conversations"]
    assert [m["from"] for m in conv] == ["system", "human", "gpt"]
    pc = distill_dataset(tagged, "chatml", "prompt_completion", test_size=10)["train"][0]
    assert pc["prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert pc["prompt"].endswith("<|im_start|>assistant\n") and pc["completion"].startswith("[")


def test_held_out_split_is_seeded_sized_and_disjoint(tagged):
    a = distill_dataset(tagged, test_size=25, seed=7)
    b = distill_dataset(tagged, test_size=25, seed=7)
    c = distill_dataset(tagged, test_size=25, seed=8)
    assert a["test"]["instag_query"] == b["test"]["instag_query"] != c["test"]["instag_query"]
    assert len(a["test"]) >= 25
    assert not set(a["test"]["instag_query"]) & set(a["train"]["instag_query"])


def test_duplicate_queries_stay_on_one_side():
    mask = split_groups(["q1", "q2", "q1", "q3", "q1", "q4"], 1, seed=0)
    groups = {}
    for key, test in zip(["q1", "q2", "q1", "q3", "q1", "q4"], mask.tolist()):
        groups.setdefault(key, set()).add(test)
    assert all(len(v) == 1 for v in groups.values()) and mask.sum() >= 1
    with pytest.raises(ValueError, match="nothing to train"):
        split_groups(["a", "b"], 2, seed=0)
    with pytest.raises(ValueError, match="fraction"):
        split_groups(["a", "b"], 1.5, seed=0)


def test_save_writes_trainer_ready_files(tagged, tmp_path):
    splits, report = distill_dataset(tagged, "chatml", test_size=10, return_report=True)
    paths = save_distill(splits, tmp_path / "d", report)
    train = [json.loads(x) for x in paths["train"].read_text().splitlines()]
    assert len(train) == report.train and set(train[0]) == {"messages"}
    gold = [json.loads(x) for x in paths["heldout_gold"].read_text().splitlines()]
    assert len(gold) == report.test and set(gold[0]) == {"id", "query", "tags"}
    assert json.loads(paths["report"].read_text())["template"] == "chatml@1"
    cmd = finetune_command(tmp_path / "d")
    assert cmd.startswith("trl sft ") and "--dataset_name" in cmd and str(tmp_path / "d") in cmd


def test_a_prefilled_template_learns_the_rest_of_the_answer(tagged):
    rec = distill_dataset(tagged, "fewshot", "prompt_completion", test_size=0.1)["train"][0]
    assert rec["prompt"].endswith('<|im_start|>assistant\n[{"tag": "')
    assert parse_tags('[{"tag": "' + rec["completion"]).status == "ok"


def test_unusable_inputs_get_clear_errors(tagged):
    with pytest.raises(ValueError, match="layout"):
        distill_dataset(tagged, layout="alpaca")
    odd = Template(name="odd", version="1", user="{query}", response_prefix="Tags:")
    with pytest.raises(ValueError, match="prefill"):
        distill_dataset(tagged, odd, test_size=0.1)
    with pytest.raises(ValueError, match="tags column"):
        distill_dataset(load_sample("alpaca"))
