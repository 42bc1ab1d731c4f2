import pytest
from datasets import Dataset

from instag_hf.tagging.queries import QueryFormatError, detect_format, extract_batch


def rows(fmt, batch):
    return extract_batch(batch, fmt)


def test_alpaca_joins_instruction_and_input():
    batch = {"instruction": ["Summarize this.", "Say hi"], "input": ["A long text.", ""], "output": ["x", "y"]}
    fmt = detect_format(batch)
    assert fmt.kind == "alpaca"
    assert rows(fmt, batch) == [["Summarize this.\n\nA long text."], ["Say hi"]]


def test_dolly_uses_context():
    batch = {"instruction": ["Who won?"], "context": ["The match report."], "response": ["Bob"]}
    fmt = detect_format(batch)
    assert fmt.kind == "dolly"
    assert rows(fmt, batch) == [["Who won?\n\nThe match report."]]


def test_sharegpt_keeps_every_human_turn_and_skips_gpt():
    conv = [
        {"from": "system", "value": "be nice"},
        {"from": "human", "value": "first"},
        {"from": "gpt", "value": "answer"},
        {"from": "human", "value": "second"},
        {"from": "gpt", "value": "answer 2"},
    ]
    batch = {"conversations": [conv]}
    fmt = detect_format(batch)
    assert fmt.kind == "sharegpt"
    assert rows(fmt, batch) == [["first", "second"]]


def test_messages_with_content_parts():
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image"}, {"type": "text", "text": "here"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "more"},
    ]
    batch = {"messages": [msgs]}
    fmt = detect_format(batch)
    assert rows(fmt, batch) == [["look\nhere", "more"]]


def test_struct_of_lists_layout_from_legacy_sequence_feature():
    batch = {"conversations": [{"from": ["human", "gpt"], "value": ["q", "a"]}]}
    assert rows(detect_format(batch), batch) == [["q"]]


def test_plain_text_column_and_forced_column():
    assert detect_format(["prompt", "id"]).column == "prompt"
    fmt = detect_format(["body", "id"], query_column="body")
    assert rows(fmt, {"body": ["hello"], "id": [1]}) == [["hello"]]


def test_unknown_schema_names_columns_and_the_way_out():
    with pytest.raises(QueryFormatError) as err:
        detect_format(["foo", "bar"])
    msg = str(err.value)
    assert "'foo'" in msg and "'bar'" in msg and "query_column" in msg


def test_forced_format_needs_its_columns():
    with pytest.raises(QueryFormatError, match="context"):
        detect_format(["instruction"], format="dolly")
    with pytest.raises(QueryFormatError, match="not a column"):
        detect_format(["a"], query_column="b")
    with pytest.raises(QueryFormatError, match="not one of"):
        detect_format(["a"], format="xml")


def test_works_on_a_real_dataset_batch():
    ds = Dataset.from_dict({"messages": [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]]})
    batch = ds[:1]
    assert rows(detect_format(batch), batch) == [["hi"]]
