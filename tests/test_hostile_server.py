"""Servers that answer in ways a careful client must survive (issues 22 and 24), through the
``openai`` backend against the loopback server: answers cut at the token budget, content-filter
stops, content as a list of parts or as an object, refusals, keys echoed in error messages or
written into the base URL, and text templates served by ``/v1/completions``."""

import json
import logging
from collections import Counter

import pytest
from datasets import Dataset

import instag_hf
from instag_hf import schema
from instag_hf.tagging.backends import openai as openai_backend
from instag_hf.tagging.backends.base import GenerationParams
from instag_hf.tagging.backends.openai import CONTENT_FILTER_ERROR, TEXT_SCHEMA_FORMAT, OpenAIBackend
from instag_hf.tagging.cache import RequestCache
from instag_hf.tagging.prompts import BOUNDED_TAGS_JSON_SCHEMA, get_template
from instag_hf.testing import keyword_tags
from support.server import REFUSAL_TEXT, FakeChatServer, Faults, query_id

FAST = dict(timeout=2.0, backoff_base=0.01, backoff_max=0.02, max_retries=2)
# six words of distinct lengths: a six-tag answer of about 300 characters (75 "tokens")
SIX = "Summarize photosynthesis, chlorophyll, respiration, glucose, oxygen and carbon"


def backend(server, **kw):
    return OpenAIBackend(**{"model": "fake-tagger", "base_url": server.url, **FAST, **kw})


def tagger(server, cache_dir, **kw):
    return instag_hf.Tagger(backend="openai", base_url=server.url, cache_dir=cache_dir, progress=False,
                            **{"model": "fake-tagger", **FAST, **kw})


def ask(b, query, template="teacher", max_new_tokens=512):
    (completion,) = b.generate([get_template(template).render(query)], GenerationParams(max_new_tokens=max_new_tokens))
    return completion


def queries(n, prefix="Request"):
    return [f"{prefix} {i}: explain topic number {i} in detail" for i in range(n)]


@pytest.fixture(autouse=True)
def _fresh_format_memory():
    openai_backend._UNSUPPORTED.clear()
    yield
    openai_backend._UNSUPPORTED.clear()


# --- why generation stopped ----------------------------------------------------------------
@pytest.mark.parametrize("template", ["teacher", "vicuna_v1.1"])
def test_an_answer_cut_at_the_budget_says_length_and_a_larger_budget_gets_it_whole(template):
    with FakeChatServer(Faults(enforce_max_tokens=True, tags_per_answer=6)) as server:
        b = backend(server, response_format="none")
        cut = ask(b, SIX, template, max_new_tokens=16)
        assert cut.error is None and cut.finish_reason == "length"
        whole = json.dumps(keyword_tags(SIX, 6))
        assert cut.text == whole[:64]  # the server's cut at max_tokens*4 characters, passed on as it came
        full = ask(b, SIX, template, max_new_tokens=512)
        assert full.finish_reason == "stop" and json.loads(full.text) == keyword_tags(SIX, 6)
        assert server.finish_reasons == Counter({"length": 1, "stop": 1})


def test_a_content_filter_stop_is_an_error_row_that_says_so_and_is_not_retried(cache_dir):
    with FakeChatServer(Faults(content_filter=1.0)) as server:
        c = ask(backend(server), "Describe the water cycle")
        assert (c.text, c.error, c.finish_reason) == (None, CONTENT_FILTER_ERROR, "content_filter")
        t = tagger(server, cache_dir)
        (r,) = t.tag_queries(["Write a poem about rivers"])
        assert r.status == schema.BACKEND_ERROR and r.tags == [] and r.error == CONTENT_FILTER_ERROR
        assert server.requests_by_query[query_id("Write a poem about rivers")] == 1
        assert t.backend.stats()["failures"] == {"content_filter": 1}
        assert len(RequestCache(cache_dir)) == 0  # an error is never cached as an answer


# --- hostile content -------------------------------------------------------------------------
def test_content_as_a_list_of_text_parts_is_joined_and_a_whole_map_survives_it(cache_dir):
    texts = queries(40)
    with FakeChatServer(Faults(content_parts=1.0)) as server:
        c = ask(backend(server), "Sort a list in Python")
        assert c.error is None and c.finish_reason == "stop"
        assert json.loads(c.text) == {"tags": keyword_tags("Sort a list in Python")}
        out = tagger(server, cache_dir).map(Dataset.from_dict({"query": texts}))
        assert set(out[schema.STATUS]) == {"ok"}
        assert [[t["tag"] for t in tags] for tags in out[schema.TAGS]] == \
            [[t["tag"] for t in keyword_tags(q)] for q in texts]
        assert len(RequestCache(cache_dir)) == 40  # each answer cached as text


def test_content_that_is_not_text_is_a_malformed_row_and_the_rest_of_the_group_is_kept(cache_dir):
    texts = queries(60, "Mixed")
    faults = Faults(content_object=0.3, seed=5)
    ds = Dataset.from_dict({"query": texts})
    with FakeChatServer(faults) as server:
        first = tagger(server, cache_dir, concurrency=8)
        out = first.map(ds)
        statuses = Counter(out[schema.STATUS])
        assert set(statuses) == {"ok", "backend_error"} and 5 < statuses["backend_error"] < 35
        bad = [e for e, s in zip(out[schema.ERROR], out[schema.STATUS]) if s == "backend_error"]
        assert all(e.startswith("malformed_response: message.content is a dict") for e in bad)
        assert first.backend.stats()["failures"] == {"malformed_response": len(bad)}
        assert len(RequestCache(cache_dir)) == statuses["ok"]  # the paid answers of every group are kept
        failed = {query_id(q) for q, s in zip(texts, out[schema.STATUS]) if s == "backend_error"}
        before = Counter(server.requests_by_query)
        tagger(server, cache_dir, concurrency=8).map(ds)
        assert {q for q, n in server.requests_by_query.items() if n > before[q]} == failed


def test_a_refusal_is_an_error_row_with_the_models_reason(cache_dir):
    with FakeChatServer(Faults(refusal=1.0)) as server:
        c = ask(backend(server), "Tag this query")
        assert c.text is None and c.error == f"refusal: {REFUSAL_TEXT}"
        (r,) = tagger(server, cache_dir).tag_queries(["Explain quantum tunnelling"])
        assert r.status == schema.BACKEND_ERROR and r.error == f"refusal: {REFUSAL_TEXT}"


def test_refusal_and_odd_parts_inside_a_content_list():
    b = OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1")

    def read(content, **message):
        body = {"choices": [{"message": {"role": "assistant", "content": content, **message},
                             "finish_reason": "stop"}]}
        return b._completion(json.dumps(body).encode())

    assert read([{"type": "text", "text": "[1"}, "]"]).text == "[1]"
    assert read([{"type": "refusal", "refusal": "No."}]).error == "refusal: No."
    assert read([{"type": "image_url", "image_url": {}}]).error.startswith("malformed_response")
    assert read(42).error == "malformed_response: message.content is a int, not text"
    assert read(None).text == "" and read(None, refusal="  ").text == ""
    assert b._completion(b'{"choices": [{"text": ["x"], "finish_reason": "stop"}]}').error.startswith(
        "malformed_response: choices[0].text")
    assert b._completion(b'{"choices": ["x"]}') is None  # an unreadable envelope: retried as before


# --- credentials ------------------------------------------------------------------------------
def test_a_server_that_echoes_the_key_never_gets_it_into_rows_logs_or_descriptions(cache_dir, monkeypatch, caplog):
    secret = "tok-HOSTILE-0123456789abcdef"  # no known key shape: only registration masks it
    monkeypatch.setenv("INSTAG_HOSTILE_KEY", secret)
    with FakeChatServer(Faults(echo_key=True, error_500=0.5, seed=3), api_key=secret,
                        models=("fake-tagger",)) as server:
        t = tagger(server, cache_dir, model="no-such-model", api_key_env="INSTAG_HOSTILE_KEY")
        with caplog.at_level(logging.DEBUG):
            (r,) = t.tag_queries(["Plan a week in Lisbon"])
            assert r.status == schema.BACKEND_ERROR and r.error.startswith("http_404")
            assert "key ***" in r.error and secret not in r.error
            ok = tagger(server, cache_dir, api_key_env="INSTAG_HOSTILE_KEY", max_retries=0)
            results = ok.tag_queries(queries(12))
        errors = [x.error for x in results if x.error]
        assert errors and all("http_500" in e and "***" in e and secret not in e for e in errors)
        shown = [caplog.text, t.summary(), ok.summary(), json.dumps(t.describe()), t.backend.label(), repr(t)]
        assert not any(secret in text for text in shown)
        assert not any(secret in str(v) for v in vars(t.backend).values())  # the key is never kept
    raw = b"".join(p.read_bytes() for p in RequestCache(cache_dir).directory.rglob("*") if p.is_file())
    assert secret.encode() not in raw


def test_a_key_written_into_the_base_url_is_sent_as_basic_auth_and_never_shown(cache_dir, caplog):
    password = "pw-HOSTILE-9876543210zyx"
    with FakeChatServer(Faults(echo_key=True), models=("fake-tagger",)) as server:
        url = server.url.replace("http://", f"http://alice:{password}@")
        t = instag_hf.Tagger(backend="openai", base_url=url, cache_dir=cache_dir, progress=False, model="fake-tagger",
                             api_key_env="INSTAG_NO_SUCH_KEY", **FAST)
        with caplog.at_level(logging.DEBUG):
            assert t.tag_queries(["Sort a list in Go"])[0].status == "ok"
            bad = instag_hf.Tagger(backend="openai", base_url=url, cache_dir=cache_dir, progress=False,
                                   model="other", api_key_env="INSTAG_NO_SUCH_KEY", **FAST)
            (r,) = bad.tag_queries(["Sort a list in Go"])
        assert r.status == schema.BACKEND_ERROR and "credentials alice:***" in r.error and password not in r.error
        for text in (caplog.text, t.backend.label(), json.dumps(t.describe()), t.summary(), bad.summary()):
            assert password not in text
        assert url not in t.backend.label() and server.url in t.backend.label()


# --- text templates go to /v1/completions -------------------------------------------------------
@pytest.mark.parametrize("template", ["vicuna_v1.1", "vicuna_v1.1_raw"])
def test_a_text_template_sends_one_completions_request_with_the_exact_prompt(cache_dir, template):
    query = "Write a limerick about databases"
    with FakeChatServer() as server:
        t = instag_hf.Tagger(backend="openai", template=template, base_url=server.url, cache_dir=cache_dir,
                             progress=False, model="fake-tagger")
        (r,) = t.tag_queries([query])
        assert r.status == "ok" and [x["tag"] for x in r.tags] == [x["tag"] for x in keyword_tags(query)]
        assert server.requests_by_endpoint == Counter({"completions": 1})
        assert server.paths == Counter({"POST /completions": 1})
        (sent,) = server.bodies
        assert sent["endpoint"] == "completions"
        assert sent["body"]["prompt"] == get_template(template).render(query).text  # character for character
        assert "messages" not in sent["body"] and sent["body"]["max_tokens"] == t.params.max_new_tokens
        assert sent["body"]["response_format"] == TEXT_SCHEMA_FORMAT
        assert sent["body"]["response_format"]["json_schema"]["schema"] == BOUNDED_TAGS_JSON_SCHEMA
        assert BOUNDED_TAGS_JSON_SCHEMA["type"] == "array"  # the bare array InsTagger was trained to write


def test_format_fallback_is_remembered_per_endpoint(cache_dir, caplog):
    with FakeChatServer(Faults(reject_text_json_schema=True)) as server:
        text = instag_hf.Tagger(backend="openai", template="vicuna_v1.1", base_url=server.url, cache_dir=cache_dir,
                                progress=False, model="fake-tagger", concurrency=1)
        with caplog.at_level(logging.WARNING, logger="instag_hf"):
            assert [r.status for r in text.tag_queries(queries(3))] == ["ok"] * 3
        # json_object would force one object where InsTagger writes an array: the text endpoint goes to none
        assert server.formats_by_endpoint == {"completions": Counter({"none": 3})}
        assert server.outcomes["rejected_response_format"] == 1
        assert [m for m in caplog.messages if "/completions" in m and "json_schema" in m]
        options = text.backend.request_options()
        assert options == {"response_format": "json_schema", "text_response_format": "none"}
        assert text.backend.learned() == {"unsupported_text_formats": ["json_schema"]}

        chat = tagger(server, cache_dir + "-chat")
        assert [r.status for r in chat.tag_queries(queries(2, "Chat"))] == ["ok"] * 2
        assert server.formats_by_endpoint["chat"] == Counter({"json_schema": 2})  # chat kept its schema

        openai_backend._UNSUPPORTED.clear()  # a new process learns it back from the cache
        again = instag_hf.Tagger(backend="openai", template="vicuna_v1.1", base_url=server.url, cache_dir=cache_dir,
                                 progress=False, model="fake-tagger")
        assert again.backend.request_options() == options
        assert [r.status for r in again.tag_queries(queries(3))] == ["ok"] * 3
        assert again.stats.cache_hits == 3 and server.requests_by_endpoint["completions"] == 3  # none asked again


def test_a_text_template_with_a_prefix_sends_no_schema_and_the_answer_keeps_the_prefix():
    from instag_hf.tagging.prompts import Prompt

    with FakeChatServer() as server:
        b = backend(server)
        prompt = Prompt(({"role": "user", "content": "x"},), text="A chat. USER: Sort a list ASSISTANT:",
                        response_prefix="[")
        (c,) = b.generate([prompt], GenerationParams())
        (sent,) = server.bodies
        assert sent["body"]["prompt"] == "A chat. USER: Sort a list ASSISTANT:["
        assert "response_format" not in sent["body"] and c.error is None
        assert c.text == "[" + json.dumps(keyword_tags("Sort a list"))  # the parser sees prefix + answer
