"""The Hugging Face backend, through huggingface_hub's AsyncInferenceClient, against the loopback server.

``huggingface_hub`` refuses every request while ``HF_HUB_OFFLINE`` is set (the whole suite
sets it), so these tests give it an HTTP client that reaches 127.0.0.1 and nothing else.
"""

import asyncio
import json
import pickle
from collections import Counter

import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

import instag_hf
from instag_hf import schema
from instag_hf.tagging.backends import make_backend
from instag_hf.tagging.backends.base import GenerationParams
from instag_hf.tagging.backends.hf import HFBackend
from instag_hf.tagging.cache import RequestCache
from instag_hf.tagging.prompts import BOUNDED_TAGS_JSON_SCHEMA, get_template
from instag_hf.testing import keyword_tags
from support.server import FakeChatServer, Faults, query_id

FAST = dict(timeout=0.5, backoff_base=0.02, backoff_max=0.1)


@pytest.fixture(autouse=True)
def loopback_only_hub():
    import httpx2
    import huggingface_hub
    from huggingface_hub.utils import _http

    async def refuse_the_network(request):
        if request.url.host != "127.0.0.1":
            raise AssertionError(f"a test tried to reach {request.url}")

    def factory():
        return httpx2.AsyncClient(event_hooks={"request": [refuse_the_network],
                                               "response": [_http.async_hf_response_event_hook]},
                                  follow_redirects=True, timeout=None)

    huggingface_hub.set_async_client_factory(factory)
    yield
    huggingface_hub.set_async_client_factory(_http.default_async_client_factory)


def hf_tagger(server, cache_dir, **kw):
    options = {**FAST, "model": "fake-tagger", "concurrency": 16, "max_retries": 3, **kw}
    return instag_hf.Tagger(backend="hf", base_url=server.url, cache_dir=cache_dir, progress=False, **options)


def queries(n, prefix="Request"):
    return [f"{prefix} {i}: explain topic number {i} in detail" for i in range(n)]


def test_clean_server_gives_keyword_tags_usage_and_a_summary(cache_dir):
    with FakeChatServer() as server:
        t = hf_tagger(server, cache_dir)
        (r,) = t.tag_queries(["Write a limerick about databases"])
        assert r.status == "ok"
        assert [x["tag"] for x in r.tags] == [x["tag"] for x in keyword_tags("Write a limerick about databases")]
        stats = t.backend.stats()
        assert stats["requests_sent"] == 1 and stats["retries"] == 0 and stats["completion_tokens"] > 0
        assert server.paths == Counter({"POST /chat": 1})
        assert "1 model requests" in t.summary() and "completion_tokens" in t.summary()


def test_400_rows_under_faults_come_back_once_in_order_and_a_rerun_asks_only_the_failed(cache_dir):
    faults = Faults(error_500=0.10, rate_limit_429=0.05, hang=0.05, malformed=0.05, cut_off=0.03, drop=0.02,
                    retry_after=0.05, hang_seconds=3, seed=11)
    texts = queries(400)
    ds = Dataset.from_dict({"query": texts, "row": list(range(400))})
    with FakeChatServer(faults) as server:
        first = hf_tagger(server, cache_dir, concurrency=32, max_retries=1)
        out = first.map(ds)
        assert out["row"] == list(range(400)) and out["query"] == texts
        statuses = Counter(out[schema.STATUS])
        assert set(statuses) == {"ok", "backend_error"} and statuses["backend_error"] > 0
        for row in out:
            if row[schema.STATUS] == "ok":
                assert [t["tag"] for t in row[schema.TAGS]] == [t["tag"] for t in keyword_tags(row["query"])]
            else:
                assert row[schema.ERROR] and row[schema.TAGS] == []
        failed = {query_id(q) for q, s in zip(texts, out[schema.STATUS]) if s == "backend_error"}
        kinds = first.backend.stats()["failures"]
        assert sum(kinds.values()) == len(failed)
        assert set(kinds) <= {"http_500", "http_429", "timeout", "malformed_response", "connection"}
        # an attempt that timed out stays in flight on the server while its retry is sent
        assert 2 <= server.max_in_flight <= 32 + first.backend.stats()["transient_errors"].get("timeout", 0)

        before = Counter(server.requests_by_query)
        second = hf_tagger(server, cache_dir, concurrency=32, max_retries=1)
        second.map(ds)
        assert {q for q, n in server.requests_by_query.items() if n > before[q]} == failed
        assert second.stats.cache_hits == 400 - len(failed)


@pytest.mark.parametrize("fault,kind", [("hang", "timeout"), ("drop", "connection"), ("cut_off", "malformed_response"),
                                        ("malformed", "malformed_response"), ("error_500", "http_500"),
                                        ("rate_limit_429", "http_429")])
def test_each_fault_is_retried_then_reported(cache_dir, fault, kind):
    with FakeChatServer(Faults(**{fault: 1.0}, hang_seconds=3, retry_after=0.01)) as server:
        t = hf_tagger(server, cache_dir, max_retries=1, timeout=0.3)
        (r,) = t.tag_queries(["Describe the water cycle"])
        assert r.status == "backend_error" and r.error.startswith(f"{kind} after 2 attempts")
        assert t.backend.stats()["failures"] == {kind: 1} and t.backend.stats()["retries"] == 1
        assert server.requests_by_query[query_id("Describe the water cycle")] == 2


def test_client_errors_are_not_retried(cache_dir):
    with FakeChatServer(models=("fake-tagger",)) as server:
        (r,) = hf_tagger(server, cache_dir, model="missing-model").tag_queries(["Summarize a novel"])
        assert r.status == "backend_error" and r.error.startswith("http_404") and "does not exist" in r.error
        assert server.outcomes["unknown_model"] == 1


def test_a_server_without_json_mode_falls_back_to_plain_text(cache_dir):
    # huggingface_hub sends OpenAI's json_schema format to a TGI-style endpoint as
    # {"type": "json_object", "value": schema}: refusing json_object refuses both
    with FakeChatServer(Faults(reject_json_object=True)) as server:
        t = hf_tagger(server, cache_dir, concurrency=1)
        assert [r.status for r in t.tag_queries(queries(4))] == ["ok"] * 4
        assert server.response_formats == Counter({"none": 4})
        assert t.backend.request_options() == {"response_format": "none"}


def test_concurrency_is_bounded(cache_dir):
    with FakeChatServer(Faults(latency=0.05)) as server:
        t = hf_tagger(server, cache_dir, concurrency=6, timeout=60.0)  # no timed-out attempt left in flight
        t.tag_queries(queries(60))
        assert t.backend.stats()["retries"] == 0
        assert 2 <= server.max_in_flight <= 6


def test_the_cache_identity_names_the_provider_and_holds_no_token(monkeypatch):
    def key(**kw):
        return instag_hf.Tagger(backend="hf", **{"model": "org/m", **kw}).cache_key("Sort a list")

    assert key() == key(concurrency=3, timeout=5.0, max_retries=0)
    assert len({key(), key(provider="together"), key(provider="hf-inference"), key(model="org/other"),
                key(response_format="none"), key(base_url="http://127.0.0.1:9/v1")}) == 6
    ident = instag_hf.Tagger(backend="hf", model="org/m", provider="together").namespace()["backend"]
    assert ident["backend"] == "hf" and ident["provider"] == "together"
    assert make_backend("hf", model="org/m").provider == "auto"
    with pytest.raises(ValueError, match="model"):
        HFBackend()


def test_the_hf_token_is_sent_but_never_kept(cache_dir, tmp_path, monkeypatch, caplog):
    secret = "hf_test_DO_NOT_LEAK_987654"
    monkeypatch.setenv("HF_TOKEN", secret)
    with FakeChatServer(api_key=secret) as server:
        t = hf_tagger(server, cache_dir)
        out = t.map(Dataset.from_dict({"query": queries(5)}))
        assert set(out[schema.STATUS]) == {"ok"}
        leaks = [secret in caplog.text, secret in repr(t), secret in json.dumps(t.describe()),
                 secret.encode() in pickle.dumps(t), secret in Hasher.hash(t), secret in t.summary()]
        assert not any(leaks)
        for path in RequestCache(cache_dir).directory.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))
        (r,) = hf_tagger(server, cache_dir + "-2").tag_queries(["Any question at all"])
        assert r.status == "backend_error" and r.error.startswith("http_401")


def test_works_when_the_caller_already_runs_an_event_loop(cache_dir):
    with FakeChatServer() as server:
        t = hf_tagger(server, cache_dir)

        async def notebook_cell():
            return t.tag_queries(["Inside a running loop"])

        (r,) = asyncio.run(notebook_cell())
        assert r.status == "ok"


# --- text templates, finish reasons and hostile answers (issues 22 and 24) -------------------------
def test_a_text_template_goes_to_text_generation_with_the_exact_prompt(cache_dir):
    query = "Write a limerick about databases"
    with FakeChatServer() as server:
        t = hf_tagger(server, cache_dir, template="vicuna_v1.1")
        (r,) = t.tag_queries([query])
        assert r.status == "ok" and [x["tag"] for x in r.tags] == [x["tag"] for x in keyword_tags(query)]
        assert server.requests_by_endpoint == Counter({"generate": 1})  # TGI's route, at the endpoint's root
        (sent,) = server.bodies
        assert sent["body"]["inputs"] == get_template("vicuna_v1.1").render(query).text
        parameters = sent["body"]["parameters"]
        assert parameters["details"] is True and parameters["do_sample"] is False and "temperature" not in parameters
        assert parameters["max_new_tokens"] == t.params.max_new_tokens
        assert parameters["grammar"] == {"type": "json", "value": BOUNDED_TAGS_JSON_SCHEMA}


def test_text_generation_reports_a_cut_answer_as_length():
    query = "Summarize photosynthesis, chlorophyll, respiration, glucose, oxygen and carbon"
    prompt = get_template("vicuna_v1.1").render(query)
    with FakeChatServer(Faults(enforce_max_tokens=True, tags_per_answer=6)) as server:
        backend = HFBackend(model="fake-tagger", base_url=server.url, response_format="none", **FAST)
        (cut,) = backend.generate([prompt], GenerationParams(max_new_tokens=16))
        assert cut.error is None and cut.finish_reason == "length"
        assert cut.text == json.dumps(keyword_tags(query, 6))[:64]
        (whole,) = backend.generate([prompt], GenerationParams(max_new_tokens=512))
        assert whole.finish_reason == "stop" and json.loads(whole.text) == keyword_tags(query, 6)
        assert whole.completion_tokens > 0


def test_a_rejected_grammar_falls_back_to_plain_text_on_the_text_route_only(cache_dir):
    with FakeChatServer(Faults(reject_text_json_schema=True)) as server:
        t = hf_tagger(server, cache_dir, template="vicuna_v1.1", concurrency=1)
        assert [r.status for r in t.tag_queries(queries(3))] == ["ok"] * 3
        assert server.formats_by_endpoint == {"generate": Counter({"none": 3})}
        assert t.backend.request_options() == {"response_format": "json_schema", "text_response_format": "none"}


def test_a_provider_without_text_generation_is_refused_at_first_use_naming_the_chat_templates(cache_dir):
    t = instag_hf.Tagger(backend="hf", model="org/m", provider="cerebras", template="vicuna_v1.1",
                         cache_dir=cache_dir, progress=False)
    with pytest.raises(ValueError, match="cannot serve a text template") as refused:
        t.tag_queries(["Sort a list"])
    assert "cerebras" in str(refused.value) and "teacher" in str(refused.value) and "paper" in str(refused.value)
    with pytest.raises(ValueError, match="extra_body"):
        HFBackend(model="org/m", provider="together", extra_body={"logit_bias": {}}).generate(
            [get_template("vicuna_v1.1").render("Sort a list")], GenerationParams())


@pytest.mark.parametrize("fault,expected", [
    ("content_parts", "ok"),
    ("refusal", "refusal: "),
    ("content_filter", "content_filter: the server's content filter stopped this answer"),
    ("content_object", "malformed_response: "),
])
def test_hostile_chat_answers_through_huggingface_hub(cache_dir, fault, expected):
    with FakeChatServer(Faults(**{fault: 1.0})) as server:
        t = hf_tagger(server, cache_dir)
        (r,) = t.tag_queries(["Describe the water cycle"])
        if expected == "ok":
            assert r.status == "ok" and [x["tag"] for x in r.tags] == \
                [x["tag"] for x in keyword_tags("Describe the water cycle")]
        else:
            assert r.status == "backend_error" and r.error.startswith(expected)
            assert server.requests_by_query[query_id("Describe the water cycle")] == 1  # not retried


def test_an_echoed_hf_token_is_masked(cache_dir, monkeypatch):
    secret = "hf_test_DO_NOT_LEAK_echoed_42"
    monkeypatch.setenv("HF_TOKEN", secret)
    with FakeChatServer(Faults(echo_key=True), models=("fake-tagger",)) as server:
        (r,) = hf_tagger(server, cache_dir, model="other").tag_queries(["Any question at all"])
        assert r.status == "backend_error" and r.error.startswith("http_404") and "***" in r.error
        assert secret not in r.error
