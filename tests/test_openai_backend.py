"""The OpenAI-compatible backend against a real HTTP server on loopback that injects faults."""

import asyncio
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

import instag_hf
from instag_hf import schema
from instag_hf.tagging.backends import make_backend
from instag_hf.tagging.backends.openai import OpenAIBackend, parse_retry_after
from instag_hf.tagging.cache import RequestCache
from instag_hf.testing import keyword_tags
from support.server import FakeChatServer, Faults, query_id

FAST = dict(timeout=0.5, backoff_base=0.02, backoff_max=0.1)


def api_tagger(server, cache_dir, **kw):
    options = {**FAST, "model": "fake-tagger", "concurrency": 16, "max_retries": 3, **kw}
    return instag_hf.Tagger(backend="openai", base_url=server.url, cache_dir=cache_dir, **options)


def queries(n, prefix="Request"):
    return [f"{prefix} {i}: explain topic number {i} in detail" for i in range(n)]


def test_clean_server_gives_keyword_tags_and_usage(cache_dir):
    with FakeChatServer() as server:
        t = api_tagger(server, cache_dir)
        results = t.tag_queries(["Write a limerick about databases"])
        assert results[0].status == "ok"
        assert [x["tag"] for x in results[0].tags] == [x["tag"] for x in keyword_tags("Write a limerick about databases")]
        stats = t.backend.stats()
        assert stats["requests_sent"] == 1 and stats["retries"] == 0 and stats["completion_tokens"] > 0
        assert server.response_formats == Counter({"json_schema": 1})


def test_2000_rows_under_faults_end_ok_or_explicit_and_rerun_retries_only_failures(cache_dir):
    faults = Faults(error_500=0.10, rate_limit_429=0.05, hang=0.05, malformed=0.05, bad_content=0.02,
                    retry_after=0.05, hang_seconds=5, seed=7)
    texts = queries(2000)
    ds = Dataset.from_dict({"query": texts, "row": list(range(2000))})
    with FakeChatServer(faults) as server:
        first = api_tagger(server, cache_dir, concurrency=64, max_retries=2)
        out = ds.map(first, batched=True, batch_size=500)
        assert out["row"] == list(range(2000)) and out["query"] == texts
        statuses = Counter(out[schema.STATUS])
        assert set(statuses) <= {"ok", "backend_error", "parse_error"}
        assert statuses["ok"] > 1800 and statuses["backend_error"] > 0 and statuses["parse_error"] > 0
        for row in out:
            if row[schema.STATUS] == "ok":  # its own tags, not a neighbour's
                assert [t["tag"] for t in row[schema.TAGS]] == [t["tag"] for t in keyword_tags(row["query"])]
            else:
                assert row[schema.ERROR] and row[schema.TAGS] == []
        failed = {query_id(q) for q, s in zip(out["query"], out[schema.STATUS]) if s == "backend_error"}
        kinds = first.backend.stats()["failures"]
        assert sum(kinds.values()) == len(failed) and set(kinds) <= {"http_500", "http_429", "timeout", "malformed_response"}

        before = Counter(server.requests_by_query)
        second = api_tagger(server, cache_dir, concurrency=64, max_retries=2)
        out2 = ds.map(second, batched=True, batch_size=500, load_from_cache_file=False)
        asked_again = {q for q, n in server.requests_by_query.items() if n > before[q]}
        assert asked_again == failed, (len(asked_again), len(failed), len(asked_again - failed), len(failed - asked_again))
        assert second.stats.cache_hits == 2000 - len(failed)
        assert Counter(out2[schema.STATUS])["backend_error"] < len(failed)


def test_retry_after_is_honoured_and_parsed():
    backend = OpenAIBackend(base_url="http://127.0.0.1:9", backoff_base=0.01, backoff_max=0.02)
    assert all(backend._backoff(attempt, 2.5) >= 2.5 for attempt in range(5))
    assert all(0 <= backend._backoff(attempt, None) <= 0.02 for attempt in range(5))
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_429_forever_ends_as_backend_error_after_the_retries(cache_dir):
    with FakeChatServer(Faults(rate_limit_429=1.0, retry_after=0.01)) as server:
        (r,) = api_tagger(server, cache_dir, max_retries=2).tag_queries(["Plan a trip to Kyoto"])
        assert r.status == "backend_error" and r.error.startswith("http_429 after 3 attempts")
        assert server.requests_by_query[query_id("Plan a trip to Kyoto")] == 3


def test_too_long_retry_after_gives_up_early(cache_dir):
    with FakeChatServer(Faults(rate_limit_429=1.0, retry_after=500)) as server:
        (r,) = api_tagger(server, cache_dir, max_retries=5, max_retry_after=10).tag_queries(["Plan a trip"])
        assert r.status == "backend_error" and "max_retry_after" in r.error
        assert server.requests_by_query[query_id("Plan a trip")] == 1


@pytest.mark.parametrize("fault,kind", [("hang", "timeout"), ("drop", "connection"), ("malformed", "malformed_response"),
                                        ("cut_off", "malformed_response"), ("error_500", "http_500")])
def test_each_transport_fault_is_retried_then_reported(cache_dir, fault, kind):
    with FakeChatServer(Faults(**{fault: 1.0}, hang_seconds=3)) as server:
        t = api_tagger(server, cache_dir, max_retries=1, timeout=0.3)
        (r,) = t.tag_queries(["Describe the water cycle"])
        assert r.status == "backend_error" and r.error.startswith(f"{kind} after 2 attempts")
        assert t.backend.stats()["failures"] == {kind: 1}
        assert server.requests_by_query[query_id("Describe the water cycle")] == 2


def test_client_errors_are_not_retried(cache_dir):
    with FakeChatServer(models=("fake-tagger",)) as server:
        t = api_tagger(server, cache_dir, model="missing-model")
        (r,) = t.tag_queries(["Summarize a novel"])
        assert r.status == "backend_error" and r.error.startswith("http_404") and "does not exist" in r.error
        assert server.outcomes["unknown_model"] == 1


@pytest.mark.parametrize("style", ["openai", "llama_cpp"])
def test_json_schema_rejection_falls_back_to_json_mode(cache_dir, caplog, style):
    with FakeChatServer(Faults(reject_json_schema=True, rejection_style=style)) as server:
        t = api_tagger(server, cache_dir, concurrency=1)
        with caplog.at_level(logging.WARNING, logger="instag_hf"):
            results = t.tag_queries(queries(5))
        assert [r.status for r in results] == ["ok"] * 5
        assert server.response_formats == Counter({"json_object": 5})
        assert server.outcomes["rejected_response_format"] == 1
        assert t.backend.stats()["retries"] == 0
        warned = [r for r in caplog.records if "does not support response_format" in r.getMessage()]
        assert len(warned) == 1 and "json_schema" in warned[0].getMessage()
        # remembered per server: a second backend for the same server starts in JSON mode
        api_tagger(server, cache_dir + "-2").tag_queries(["One more query about cats"])
        assert server.outcomes["rejected_response_format"] == 1


def test_both_formats_rejected_the_llama_cpp_way_fall_back_to_plain_text(cache_dir):
    faults = Faults(reject_json_schema=True, reject_json_object=True, rejection_style="llama_cpp")
    with FakeChatServer(faults) as server:
        results = api_tagger(server, cache_dir, concurrency=2).tag_queries(queries(4))
        assert [r.status for r in results] == ["ok"] * 4
        assert server.response_formats == Counter({"none": 4})


def test_an_error_not_about_the_format_never_turns_it_off(cache_dir):
    with FakeChatServer(Faults(max_query_chars=200, error_500=0.3)) as server:
        t = api_tagger(server, cache_dir, concurrency=1)
        long_one = "Summarize this: " + "words " * 100
        results = t.tag_queries([long_one] + queries(6))
        assert results[0].status == "backend_error" and "maximum context length" in results[0].error
        assert [r.status for r in results[1:]] == ["ok"] * 6
        assert set(server.response_formats) == {"json_schema"}
        assert t.backend.request_options() == {"response_format": "json_schema"}


@pytest.mark.parametrize("style", ["openai", "llama_cpp"])
def test_an_explicit_format_is_never_changed_behind_the_users_back(cache_dir, style):
    with FakeChatServer(Faults(reject_json_schema=True, rejection_style=style)) as server:
        t = api_tagger(server, cache_dir, response_format="json_schema")
        (r,) = t.tag_queries(["Plan a trip to Rome"])
        assert r.status == "backend_error" and "unsupported response_format json_schema" in r.error
        assert server.response_formats == Counter()
        assert t.backend.stats()["retries"] == 0 and server.outcomes["rejected_response_format"] == 1


def test_a_bug_in_the_client_raises_instead_of_becoming_row_errors(cache_dir):
    class Broken(OpenAIBackend):
        def _completion(self, raw):
            raise AttributeError("a bug")

    with FakeChatServer() as server:
        t = instag_hf.Tagger(backend=Broken(model="fake-tagger", base_url=server.url, **FAST), cache_dir=cache_dir)
        with pytest.raises(AttributeError, match="a bug"):
            t.tag_queries(queries(3))
    with FakeChatServer() as server:
        api_tagger(server, cache_dir + "-none", response_format="none").tag_queries(["Hello there friend"])
        assert server.response_formats == Counter({"none": 1})


def test_concurrency_is_bounded(cache_dir):
    # A timed-out attempt stays in flight on the server while its retry is sent, so the
    # timeout here is long enough that none happens on a loaded machine.
    with FakeChatServer(Faults(latency=0.05)) as server:
        t = api_tagger(server, cache_dir, concurrency=8, timeout=60.0)
        t.tag_queries(queries(120))
        assert t.backend.stats()["retries"] == 0
        assert 2 <= server.max_in_flight <= 8


def test_api_key_is_sent_but_never_kept(cache_dir, tmp_path, monkeypatch, caplog, capfd):
    secret = "sk-test-DO-NOT-LEAK-123456"
    monkeypatch.setenv("INSTAG_TEST_API_KEY", secret)
    with FakeChatServer(api_key=secret) as server:
        t = api_tagger(server, cache_dir, api_key_env="INSTAG_TEST_API_KEY")
        with caplog.at_level(logging.DEBUG):
            out = t.map(Dataset.from_dict({"query": queries(10)}))
        assert set(out[schema.STATUS]) == {"ok"}
        out.save_to_disk(str(tmp_path / "saved"))
        print(t.summary(), t, t.describe())
        leaks = [secret in caplog.text, secret in repr(t), secret in json.dumps(t.describe()),
                 secret.encode() in pickle.dumps(t), secret in Hasher.hash(t)]
        assert not any(leaks)
        for path in list(tmp_path.rglob("*")) + list(RequestCache(cache_dir).directory.rglob("*")):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        captured = capfd.readouterr()
        assert secret not in captured.out + captured.err

        monkeypatch.delenv("INSTAG_TEST_API_KEY")
        (r,) = api_tagger(server, cache_dir + "-nokey", api_key_env="INSTAG_TEST_API_KEY").tag_queries(["Any question"])
        assert r.status == "backend_error" and r.error.startswith("http_401")
    with pytest.raises(ValueError, match="NAME"):
        OpenAIBackend(api_key_env="sk-pasted-the-key-here")


def test_auto_backend_uses_the_api_configured_in_the_environment(monkeypatch):
    monkeypatch.setenv("INSTAG_API_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("INSTAG_API_MODEL", "my-tagger")
    backend = make_backend("auto")
    assert isinstance(backend, OpenAIBackend)
    assert (backend.base_url, backend.model) == ("http://127.0.0.1:8000/v1", "my-tagger")
    monkeypatch.delenv("INSTAG_API_BASE_URL")
    assert not isinstance(make_backend("auto"), OpenAIBackend)


def test_works_when_the_caller_already_runs_an_event_loop(cache_dir):
    with FakeChatServer() as server:
        t = api_tagger(server, cache_dir)

        async def notebook_cell():
            return t.tag_queries(["Inside a running loop"])

        (r,) = asyncio.run(notebook_cell())
        assert r.status == "ok"


def test_sigkill_mid_run_loses_nothing_and_repeats_nothing(tmp_path):
    n = 600
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"query": q}) + "\n" for q in queries(n, "Killed")))
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    cache = RequestCache(cache_dir)
    with FakeChatServer(Faults(latency=0.02)) as server:
        args = [sys.executable, "-m", "instag_hf", "tag", str(data), "--backend", "openai", "--model", "fake-tagger",
                "--base-url", server.url, "--concurrency", "4", "--cache-dir", str(cache_dir), "--output", str(out)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (cache.path.exists() and len(cache) >= 100):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        finished = len(cache)
        assert finished < n
        before = Counter(server.requests_by_query)
        done = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        asked_again = [q for q, c in server.requests_by_query.items() if c > before[q]]
        assert len(asked_again) == n - finished
        assert all(server.requests_by_query[q] - before[q] == 1 for q in asked_again)
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert [r["query"] for r in rows] == queries(n, "Killed")
    assert {r["instag_status"] for r in rows} == {"ok"}


def test_every_answer_says_why_generation_stopped():
    from instag_hf.tagging.backends.base import GenerationParams
    from instag_hf.tagging.prompts import get_template

    with FakeChatServer() as server:
        backend = OpenAIBackend(model="fake-tagger", base_url=server.url, **FAST)
        chat, text = backend.generate([get_template("teacher").render("Sort a list"),
                                       get_template("vicuna_v1.1").render("Sort a list")], GenerationParams())
        assert (chat.finish_reason, text.finish_reason) == ("stop", "stop")
        assert chat.error is None and text.error is None
        assert server.requests_by_endpoint == Counter({"chat": 1, "completions": 1})
        assert chat.options == text.options == backend.request_options() == {"response_format": "json_schema"}
    unknown = backend._completion(b'{"choices": [{"message": {"content": "[]"}}]}')
    assert unknown.text == "[]" and unknown.finish_reason is None


def test_describe_and_the_warning_show_no_url_credentials(caplog):
    backend = OpenAIBackend(model="m", base_url="http://bob:s3cret-in-the-url@127.0.0.1:9/v1")
    assert "s3cret" not in backend.label() and "127.0.0.1:9/v1" in backend.label()
    with caplog.at_level(logging.WARNING, logger="instag_hf"):
        backend._reject_format("json_schema", "http_400: no json_schema for bob:s3cret-in-the-url@host")
    assert "s3cret" not in caplog.text and "json_schema" in caplog.text
    from instag_hf.tagging.backends import openai as module

    module._UNSUPPORTED.clear()
