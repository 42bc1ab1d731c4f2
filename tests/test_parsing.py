import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instag_hf.tagging.parsing import (EXPLANATION_KEYS, LIST_KEYS, MAX_EXPLANATION_CHARS, MAX_TAG_CHARS, MAX_TAGS,
                               TAG_KEYS, parse_tags)

ITEMS = [{"tag": "Web Development", "explanation": "Flask app."}, {"tag": "Error Handling", "explanation": "Catch errors."}]


def names(result):
    return [t["tag"] for t in result.tags]


def test_plain_list():
    r = parse_tags(json.dumps(ITEMS))
    assert r.status == "ok" and r.tags == ITEMS and r.error == ""


def test_single_object_and_json_lines():
    assert names(parse_tags('{"tag": "Cosplay", "explanation": "acting"}')) == ["Cosplay"]
    lines = '{"tag": "Math", "explanation": "x"}\n{"tag": "Proof", "explanation": "y"}'
    assert names(parse_tags(lines)) == ["Math", "Proof"]


def test_fenced_code_and_prose_around():
    text = "Sure! Here are the tags:\n```json\n" + json.dumps(ITEMS) + "\n```\nHope this helps."
    assert names(parse_tags(text)) == ["Web Development", "Error Handling"]


def test_truncated_json_keeps_complete_items_only():
    text = json.dumps(ITEMS)[:-25]  # cut inside the second explanation
    r = parse_tags(text)
    assert r.status == "ok"
    assert names(r) == ["Web Development", "Error Handling"] or names(r) == ["Web Development"]
    cut_in_tag = '[{"tag": "Web Development", "explanation": "a"}, {"tag": "Err'
    assert names(parse_tags(cut_in_tag)) == ["Web Development"]


def test_title_case_and_duplicates_folded():
    text = json.dumps([{"tag": "Code Review"}, {"tag": "code review"}, {"tag": "  Code   Review. "}, {"tag": "SQL"}])
    r = parse_tags(text)
    assert names(r) == ["Code Review", "SQL"]
    assert r.tags[0]["explanation"] == ""


def test_overlong_and_empty_tags_are_dropped():
    long_tag = "x" * 500
    r = parse_tags(json.dumps([{"tag": long_tag, "explanation": "junk"}, {"tag": ""}, {"tag": "Poetry", "explanation": "e" * 900}]))
    assert names(r) == ["Poetry"]
    assert len(r.tags[0]["explanation"]) == 500
    only_junk = parse_tags(json.dumps([{"tag": long_tag}]))
    assert only_junk.status == "parse_error" and only_junk.tags == []


def test_other_shapes():
    assert names(parse_tags('{"tags": [{"name": "Translation", "description": "fr"}]}')) == ["Translation"]
    assert names(parse_tags('["Math", "Algebra"]')) == ["Math", "Algebra"]
    assert names(parse_tags('{"Role Play": "pretend", "Humor": "jokes"}')) == ["Role Play", "Humor"]
    assert names(parse_tags("[{'tag': 'Python', 'explanation': 'single quotes'}]")) == ["Python"]


def test_failures_are_explicit():
    for text in ["", "   ", None, 42, "no json here at all", "[]", "{}", '[{"explanation": "no tag"}]', "[[[[[["]:
        r = parse_tags(text)
        assert r.status == "parse_error" and r.tags == [] and r.error, text


def test_tag_count_is_capped():
    r = parse_tags(json.dumps([{"tag": f"Tag {i}"} for i in range(100)]))
    assert len(r.tags) == MAX_TAGS


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_never_raises_and_keeps_its_invariants(text):
    r = parse_tags(text)
    assert r.status in ("ok", "parse_error")
    assert (r.status == "ok") == bool(r.tags)
    folded = [t["tag"].casefold() for t in r.tags]
    assert len(folded) == len(set(folded))
    for t in r.tags:
        assert set(t) == {"tag", "explanation"}
        assert 0 < len(t["tag"]) <= MAX_TAG_CHARS and "\n" not in t["tag"]


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
def test_any_json_value_is_handled(value):
    r = parse_tags(json.dumps(value))
    assert (r.status == "ok") == bool(r.tags)


tag_text = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=1, max_size=12)
tag_lists = st.lists(st.lists(tag_text, min_size=1, max_size=3).map(" ".join).filter(
    lambda t: any(ch.isalpha() for ch in t)), min_size=1, max_size=8, unique_by=str.casefold)


@settings(max_examples=200, deadline=None)
@given(tag_lists, st.sampled_from(["{}", "```json\n{}\n```", "Tags:\n{}\nDone.", "{}\n\nNote: generated."]))
def test_round_trip_through_wrappers(tags, wrapper):
    payload = json.dumps([{"tag": t, "explanation": f"about {t}"} for t in tags])
    r = parse_tags(wrapper.format(payload))
    assert names(r) == tags
    assert [t["explanation"] for t in r.tags] == [f"about {t}" for t in tags]


@settings(max_examples=200, deadline=None)
@given(tag_lists, st.data())
def test_truncation_yields_a_prefix_of_the_tags(tags, data):
    payload = json.dumps([{"tag": t, "explanation": "e"} for t in tags])
    cut = data.draw(st.integers(min_value=0, max_value=len(payload)))
    got = names(parse_tags(payload[:cut]))
    assert got == tags[: len(got)]


# --- no invented tags ------------------------------------------------------------------------
def test_an_object_of_fields_is_not_a_tag_map():
    r = parse_tags('{"language":"Python","task":"sorting"}')
    assert r.status == "parse_error" and r.tags == [] and r.error == "JSON without tags"
    for text in ['{"Model": "GPT", "Confidence": "High"}', '{"model_name": "gpt two", "Run Id": "a b"}',
                 '{"tags": "Math, Algebra"}', '{"Web Development": 3, "Error Handling": true}',
                 '{"Web Development": {"why": "a site"}}', '{"Web Development": "building a site"']:
        assert parse_tags(text).tags == [], text


def test_metadata_after_a_list_adds_no_tags():
    text = '[{"tag":"Math","explanation":"x"}]\nMetadata: {"confidence":"high", "model":"gpt"}'
    assert parse_tags(text).tags == [{"tag": "Math", "explanation": "x"}]
    prose_map = '[{"tag":"Math","explanation":"x"}]\n{"Web Development": "building a site"}'
    assert names(parse_tags(prose_map)) == ["Math"]


def test_a_title_map_counts_only_as_the_whole_answer():
    text = '{"Web Development": "building a site", "Error Handling": "fixing bugs"}'
    assert names(parse_tags(text)) == ["Web Development", "Error Handling"]
    assert names(parse_tags("```json\n" + text + "\n```\n")) == ["Web Development", "Error Handling"]
    assert parse_tags("Here are the tags: " + text).tags == []
    assert names(parse_tags('{"数学计算": "求解方程"}')) == ["数学计算"]  # no case, no spaces: keys still read as titles


def test_numbers_and_literals_in_lists_are_not_tags():
    for text in ["see [1] and [2]", "[1, 2.5, true, null]", "[[3], {}]"]:
        r = parse_tags(text)
        assert r.status == "parse_error" and r.tags == [], text


# --- what models really write ----------------------------------------------------------------
def test_sloppy_json():
    assert names(parse_tags('[{"tag": "Math", "explanation": "x"},]')) == ["Math"]
    assert names(parse_tags('{"tag": "Math", "explanation": "x"},\n{"tag": "Proof", "explanation": "y"},')) == [
        "Math", "Proof"]
    r = parse_tags("[{tag: 'Python', explanation: 'it\\'s easy'} {'Tag': \"SQL\", 'Explanation': None}]")
    assert r.tags == [{"tag": "Python", "explanation": "it's easy"}, {"tag": "SQL", "explanation": ""}]
    assert names(parse_tags('{"tag": "\\ud83d\\ude00 Emoji caf\\u00e9"}')) == ["\U0001F600 Emoji caf\u00e9"]


def test_a_syntax_error_loses_only_what_it_breaks():
    text = '[{"tag": "A", "explanation": "x" oops}, {"tag": "B"}, {"tag": "C"}]'
    assert names(parse_tags(text)) == ["A", "B", "C"]


def test_a_cut_object_keeps_its_finished_tag():
    assert parse_tags('{"tag": "Math", "explanation": "long text cu').tags == [{"tag": "Math", "explanation": ""}]
    assert names(parse_tags('{"tags": ["Math", "Alge')) == ["Math"]
    assert parse_tags('{"tag": "Ma').tags == []


@pytest.mark.timeout(20)  # a guard, not a measurement: the old parser took ~10 s on the first input
def test_adversarial_inputs_parse_in_linear_time():
    n = 64_000
    for text in ["[" * n, "{" * n, ('{"tag":' * n)[:n], "[" * (n // 2) + "]" * (n // 2), '"' * n,
                 "[" + "\\" * n, ("```\n" * n)[:n], ('[{"tag": "a' + "\n") * (n // 12), "[" + "1" * n]:
        r = parse_tags(text)
        assert r.status == "parse_error" and r.tags == [] and r.error


# --- properties ------------------------------------------------------------------------------
json_ish = st.lists(st.sampled_from(list('[]{}"\',:\\ \n`0-') + ["tag", "explanation", "tags", "True", "Math"]),
                    max_size=120).map("".join)


@settings(max_examples=400, deadline=None)
@given(json_ish)
def test_never_raises_on_json_like_junk(text):
    r = parse_tags(text)
    assert r.status in ("ok", "parse_error") and (r.status == "ok") == bool(r.tags)
    assert not r.error.startswith("parser failure"), r.error


_RESERVED = {k.casefold() for k in TAG_KEYS + LIST_KEYS + EXPLANATION_KEYS}
field_keys = st.text(max_size=12).filter(lambda k: k.strip().casefold() not in _RESERVED)
non_text = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
no_tag_objects = st.recursive(
    st.dictionaries(field_keys, non_text, max_size=4),
    lambda inner: st.dictionaries(field_keys, inner | non_text | st.lists(non_text | inner, max_size=3), max_size=4),
    max_leaves=12)
field_names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(lambda k: k not in _RESERVED)


@settings(max_examples=300, deadline=None)
@given(no_tag_objects, st.sampled_from(["{}", "```json\n{}\n```", "Result: {}", "{}\n{}"]))
def test_no_tag_without_a_tag_shaped_item(value, wrapper):
    assert parse_tags(wrapper.format(json.dumps(value), json.dumps(value))).tags == []


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, st.text(max_size=30), min_size=1, max_size=6))
def test_field_names_with_text_values_are_no_tags(value):
    assert parse_tags(json.dumps(value)).tags == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=200),
                          st.fixed_dictionaries({"tag": st.text(max_size=200), "explanation": st.text(max_size=900)})),
                max_size=80),
       st.booleans())
def test_output_is_bounded(items, cut):
    text = json.dumps(items)
    r = parse_tags(text[: len(text) // 2] if cut else text)
    assert len(r.tags) <= MAX_TAGS
    for t in r.tags:
        assert 0 < len(t["tag"]) <= MAX_TAG_CHARS and len(t["explanation"]) <= MAX_EXPLANATION_CHARS


# --- issue 24: numbers, the tag cap's note, the paper's answer format -------------------------
@pytest.mark.parametrize("text", ['42', '"42"', '[42]', '["42"]', '[{"tag": "42", "explanation": "a number"}]',
                                  '{"tag": 42}', '{"tag": 3.14, "explanation": "pi"}', '["3.14", "1,000", "#1"]',
                                  '[{"tag": "2048"}, {"tag": "--"}]'])
def test_a_tag_without_a_letter_is_never_a_tag(text):
    r = parse_tags(text)
    assert r.status == "parse_error" and r.tags == [] and r.error, text


def test_letters_with_digits_still_make_tags():
    r = parse_tags('[{"tag": "42"}, {"tag": "3D Modeling"}, {"tag": "C++"}, {"tag": "Python 3"}, {"tag": "7"}]')
    assert names(r) == ["3D Modeling", "C++", "Python 3"]


def test_the_tag_cap_is_kept_and_reported():
    r = parse_tags(json.dumps([{"tag": f"Tag {i}", "explanation": "x"} for i in range(1000)]))
    assert r.status == "ok" and names(r) == [f"Tag {i}" for i in range(MAX_TAGS)]
    assert r.note == f"kept the first {MAX_TAGS} of 1000 tags"
    duplicates = parse_tags(json.dumps([{"tag": f"Tag {i % MAX_TAGS}"} for i in range(100)]))
    assert len(duplicates.tags) == MAX_TAGS and duplicates.note == ""  # 32 distinct tags: nothing left out
    assert parse_tags(json.dumps(ITEMS)).note == ""


PAPER_ITEMS = [{"tag": "Web Development", "explanation": "Flask app."},
               {"tag": "Error Handling", "explanation": "Catch errors, {and} [log] them."},
               {"tag": "JSON Data Format", "explanation": "the \"body\" is JSON"}]


@pytest.mark.parametrize("layout", ["list", "lines", "commas", "commas_lines", "trailing_comma", "fenced_lines"])
def test_the_papers_answer_format_in_every_layout(layout):
    objects = [json.dumps(i) for i in PAPER_ITEMS]
    text = {"list": json.dumps(PAPER_ITEMS), "lines": "\n".join(objects), "commas": ", ".join(objects),
            "commas_lines": ",\n".join(objects), "trailing_comma": ",\n".join(objects) + ",",
            "fenced_lines": "```json\n" + "\n".join(objects) + "\n```"}[layout]
    r = parse_tags(text)
    assert r.status == "ok" and r.tags == PAPER_ITEMS, layout


def test_the_papers_single_object():
    r = parse_tags(json.dumps(PAPER_ITEMS[1]))
    assert r.status == "ok" and r.tags == [PAPER_ITEMS[1]]
