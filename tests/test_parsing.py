import json

from hypothesis import given, settings
from hypothesis import strategies as st

from instag_hf.parsing import MAX_TAG_CHARS, MAX_TAGS, parse_tags

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
tag_lists = st.lists(st.lists(tag_text, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=8,
                     unique_by=str.casefold)


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
