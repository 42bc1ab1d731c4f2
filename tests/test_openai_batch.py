"""The Batch API backend against the loopback server's files and batches endpoints (its clock is ours)."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from datasets import Dataset

import instag_hf
from instag_hf import schema
from instag_hf.publish import InstagDatasetCard
from instag_hf.tagging.backends.openai import OpenAIBackend
from instag_hf.tagging.backends.openai_batch import (
    BatchJournal,
    BatchPending,
    OpenAIBatchBackend,
)
from instag_hf.tagging.cache import RequestCache
from instag_hf.testing import keyword_tags
from support.batch_api import BatchConfig
from support.server import FakeChatServer, Faults, query_id

FAST = dict(poll_interval=0, timeout=5, max_retries=1)


def batch_tagger(server, cache_dir, **kw):
    return instag_hf.Tagger(backend="openai-batch", model="fake-tagger", base_url=server.url, cache_dir=cache_dir,
                            progress=False, **{**FAST, **kw})


def queries(n, prefix="Request"):
    return [f"{prefix} {i}: explain topic number {i} in detail" for i in range(n)]


def test_1000_queries_with_an_error_file_and_an_expiring_batch_then_a_rerun_submits_only_the_failed(cache_dir):
    config = BatchConfig(error_rate=0.05, expire=(1,), expire_done=0.5, advance_per_poll=200, seed=3)
    texts = queries(1000)
    ds = Dataset.from_dict({"query": texts, "row": list(range(1000))})
    with FakeChatServer(batch=config) as server:
        first = batch_tagger(server, cache_dir, max_batch_requests=300)
        out = first.map(ds)
        assert out["row"] == list(range(1000)) and out["query"] == texts
        statuses = Counter(out[schema.STATUS])
        assert set(statuses) == {"ok", "backend_error"}
        for row in out:
            if row[schema.STATUS] == "ok":
                assert [t["tag"] for t in row[schema.TAGS]] == [t["tag"] for t in keyword_tags(row["query"])]
            else:
                assert row[schema.TAGS] == [] and "batch batch_" in row[schema.ERROR]
        reasons = Counter(e.split(":")[0] for e in out[schema.ERROR] if e)
        assert reasons["batch_expired"] == 150  # the second batch (300 requests) expired half-way
        assert 20 <= reasons["http_500"] <= 70 and set(reasons) == {"batch_expired", "http_500"}
        stats = first.backend.stats()
        assert stats["batch_api"] is True and stats["batches_created"] == 4 and len(stats["batch_ids"]) == 4
        assert stats["failures"] == dict(reasons)
        assert server.batches.stats()["statuses"] == {"completed": 3, "expired": 1}
        assert max(server.batches.submitted.values()) == 1 and len(server.batches.submitted) == 1000
        assert "batch_api=True" in first.summary()

        failed = {first.cache_key(q) for q, s in zip(texts, out[schema.STATUS]) if s == "backend_error"}
        before = Counter(server.batches.submitted)
        second = batch_tagger(server, cache_dir, max_batch_requests=300)
        out2 = second.map(ds)
        resubmitted = {k for k, n in server.batches.submitted.items() if n > before[k]}
        assert resubmitted == failed
        assert second.stats.cache_hits == 1000 - len(failed)
        assert Counter(out2[schema.STATUS])["backend_error"] < len(failed) / 4
    assert not BatchJournal(cache_dir).entries()  # every batch was collected
    assert len(list(BatchJournal(cache_dir).done_dir.glob("*.json"))) == 4 + second.backend.stats()["batches_created"]


def test_requests_are_split_within_the_file_limits(cache_dir):
    config = BatchConfig(run_seconds=0, validate_seconds=0, max_requests=40, max_bytes=20_000)
    with FakeChatServer(batch=config) as server:
        t = batch_tagger(server, cache_dir, max_batch_requests=40, max_batch_bytes=20_000)
        results = t.tag_queries(queries(150))
        assert {r.status for r in results} == {"ok"}
        files = [f for f in server.batches.files.values() if f["purpose"] == "batch"]
        assert len(files) == t.backend.stats()["batches_created"] >= 150 / 40
        assert all(f["bytes"] <= 20_000 for f in files)
        assert all(len(server.batches.content(f["id"]).splitlines()) <= 40 for f in files)
        assert sum(len(server.batches.content(f["id"]).splitlines()) for f in files) == 150


def test_a_failed_and_a_cancelled_batch_give_their_reasons_and_are_not_cached(cache_dir):
    with FakeChatServer(batch=BatchConfig(fail=(0,), advance_per_poll=1000)) as server:
        t = batch_tagger(server, cache_dir)
        results = t.tag_queries(queries(5))
        assert {r.status for r in results} == {"backend_error"}
        assert all(r.error.startswith("batch_failed: batch batch_") and "injected batch validation failure" in r.error
                   for r in results)
        assert len(RequestCache(cache_dir)) == 0

    with FakeChatServer(batch=BatchConfig(validate_seconds=10, run_seconds=100)) as server:
        t = batch_tagger(server, cache_dir + "-c", submit_only=True)
        with pytest.raises(BatchPending) as pending:
            t.tag_queries(queries(10, "Cancelled"))
        assert pending.value.requests == 10 and len(pending.value.batches) == 1
        server.advance(60)  # half of the requests have run
        server.batches.cancel(pending.value.batches[0])
        again = batch_tagger(server, cache_dir + "-c")
        results = again.tag_queries(queries(10, "Cancelled"))
        assert [r.status for r in results] == ["ok"] * 5 + ["backend_error"] * 5
        assert all("batch_cancelled" in r.error and "cancelled" in r.error for r in results[5:])
        assert server.batches.created == 1


def test_submit_only_returns_and_the_same_call_collects(cache_dir):
    ds = Dataset.from_dict({"query": queries(30)})
    with FakeChatServer(batch=BatchConfig(validate_seconds=5, run_seconds=50)) as server:
        with pytest.raises(BatchPending, match="run the same again"):
            batch_tagger(server, cache_dir, submit_only=True).map(ds)
        assert server.batches.created == 1 and len(BatchJournal(cache_dir).entries()) == 1
        with pytest.raises(BatchPending):  # still running: nothing new is submitted
            batch_tagger(server, cache_dir, submit_only=True).map(ds)
        server.advance(100)
        t = batch_tagger(server, cache_dir, submit_only=True)
        out = t.map(ds)
        assert set(out[schema.STATUS]) == {"ok"}
        assert server.batches.created == 1 and max(server.batches.submitted.values()) == 1
        assert t.backend.stats()["batches_resumed"] == 1 and t.backend.stats()["batches_created"] == 0
        assert "batch_api=True" in t.summary()
        card = InstagDatasetCard(pretty_name="batch", tagger=t.describe()).render()
        assert "| requests | `OpenAI Batch API" in card  # the card says how the answers were asked for


def test_a_dataset_past_the_window_is_asked_window_by_window_and_only_failures_are_held(cache_dir):
    """1000 rows, windows of 300 requests, files of 100: each window's 3 batches are collected
    before the next window is sent, and what the settled map holds is the failures alone
    (the rest is read back from the request cache)."""
    ds = Dataset.from_dict({"query": queries(1000)})
    config = BatchConfig(error_rate=0.05, advance_per_poll=1000, seed=5)
    with FakeChatServer(batch=config) as server:
        whole = batch_tagger(server, cache_dir + "-whole", max_batch_requests=100)
        whole.map(ds)
        assert server.batches.created == 10 and server.batches.max_open == 10
    with FakeChatServer(batch=config) as server:
        t = batch_tagger(server, cache_dir, max_batch_requests=100, window_requests=300)
        settled = t._settle(ds)
        assert server.batches.created == 10 and server.batches.max_open == 3
        assert len(settled) == 1000 - len(RequestCache(cache_dir)) > 0
        assert all(r["text"] is None and r["error"] for r in settled.values())
        second = batch_tagger(server, cache_dir, max_batch_requests=100, window_requests=300)
        out = second.map(ds)  # the failures are sent again, the rest read from the cache
        assert second.stats.requests == len(settled) and second.stats.cache_hits == 1000 - len(settled)
    for row in out:
        if row[schema.STATUS] == "ok":
            assert [x["tag"] for x in row[schema.TAGS]] == [x["tag"] for x in keyword_tags(row["query"])]
    assert 0 < Counter(out[schema.STATUS])["backend_error"] < len(settled)

    with FakeChatServer(batch=config) as server:  # without a request cache every record is held
        uncached = instag_hf.Tagger(backend="openai-batch", model="fake-tagger", base_url=server.url,
                                    use_cache=False, progress=False, window_requests=300,
                                    max_batch_requests=100, **FAST)
        assert len(uncached._settle(ds)) == 1000


def test_submit_only_submits_every_window_then_one_run_collects_them_all(cache_dir):
    ds = Dataset.from_dict({"query": queries(250)})
    with FakeChatServer(batch=BatchConfig(validate_seconds=5, run_seconds=50)) as server:
        with pytest.raises(BatchPending) as pending:
            batch_tagger(server, cache_dir, submit_only=True, window_requests=100).map(ds)
        assert pending.value.requests == 250 and len(pending.value.batches) == 3 == server.batches.created
        server.advance(100)
        t = batch_tagger(server, cache_dir, window_requests=100)
        out = t.map(ds)
        assert set(out[schema.STATUS]) == {"ok"} and server.batches.created == 3
        assert t.backend.stats()["batches_resumed"] == 3 and t.stats.cache_hits == 0


def test_a_run_killed_after_uploading_but_before_saving_the_batch_id_adopts_the_batch(cache_dir):
    import openai

    with FakeChatServer(batch=BatchConfig(advance_per_poll=1000)) as server:
        t = batch_tagger(server, cache_dir)
        texts = queries(4)
        backend = t.backend
        keys = [t.cache_key(q) for q in texts]
        lines = "".join(json.dumps({"custom_id": k, "method": "POST", "url": "/v1/chat/completions",
                                    "body": backend._body(t.template.render(q), t.params, "json_schema")}) + "\n"
                        for k, q in zip(keys, texts))
        journal = BatchJournal(cache_dir)
        entry = journal.new(server=server.url, model="fake-tagger", keys=keys, format="json_schema")
        client = openai.OpenAI(api_key="unused", base_url=server.url)
        entry["file_id"] = client.files.create(file=("x.jsonl", lines.encode()), purpose="batch").id
        journal.save(entry)
        client.batches.create(input_file_id=entry["file_id"], endpoint="/v1/chat/completions",
                              completion_window="24h")  # ... and the process died here
        assert [r.status for r in t.tag_queries(texts)] == ["ok"] * 4
        assert server.batches.created == 1 and backend.stats()["batches_resumed"] == 1


def test_a_rejected_schema_falls_back_on_the_next_run(cache_dir):
    with FakeChatServer(Faults(reject_json_schema=True), batch=BatchConfig(advance_per_poll=1000)) as server:
        t = batch_tagger(server, cache_dir)
        results = t.tag_queries(queries(3))
        assert all(r.status == "backend_error" and "unsupported response_format json_schema" in r.error
                   and "next run sends json_object" in r.error for r in results)
        again = batch_tagger(server, cache_dir)
        assert [r.status for r in again.tag_queries(queries(3))] == ["ok"] * 3
        assert server.response_formats == Counter({"json_object": 3})


def test_identity_is_the_chat_apis_so_answers_are_shared(cache_dir):
    options = dict(model="m", base_url="http://127.0.0.1:9/v1")
    assert OpenAIBatchBackend(**options, poll_interval=5, submit_only=True).identity() == \
        OpenAIBackend(**options).identity()
    with FakeChatServer(batch=BatchConfig(advance_per_poll=1000)) as server:
        batch_tagger(server, cache_dir).tag_queries(queries(3))
        sync = instag_hf.Tagger(backend="openai", model="fake-tagger", base_url=server.url, cache_dir=cache_dir)
        assert [r.status for r in sync.tag_queries(queries(3))] == ["ok"] * 3
        assert sync.stats.cache_hits == 3 and sum(server.requests_by_query.values()) == 3


def test_generate_without_cache_keys_and_the_key_is_never_written(cache_dir, monkeypatch, tmp_path):
    secret = "sk-batch-DO-NOT-LEAK-42"
    monkeypatch.setenv("INSTAG_TEST_BATCH_KEY", secret)
    with FakeChatServer(api_key=secret, batch=BatchConfig(advance_per_poll=1000)) as server:
        backend = OpenAIBatchBackend(model="fake-tagger", base_url=server.url, api_key_env="INSTAG_TEST_BATCH_KEY",
                                     cache_dir=cache_dir, progress=False, **FAST)
        t = instag_hf.Tagger(backend=backend, cache_dir=cache_dir)
        prompts = [t.template.render(q) for q in ["Plan a trip to Oslo", "Sort a list in Go", "Plan a trip to Oslo"]]
        completions = backend.generate(prompts, t.params)
        assert [c.error for c in completions] == [None] * 3 and completions[0].text == completions[2].text
        assert server.batches.created == 1 and len(server.batches.submitted) == 2
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        monkeypatch.delenv("INSTAG_TEST_BATCH_KEY")
        (failed,) = backend.generate(prompts[:1], t.params)
        assert failed.error.startswith("submission: uploading the batch file failed: http_401")


def test_kill_while_polling_then_restart_submits_nothing_twice_and_submit_only_collects(tmp_path, capsys):
    from instag_hf.cli.main import main

    texts = queries(120, "Killed")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"query": q}) + "\n" for q in texts))
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    with FakeChatServer(batch=BatchConfig(validate_seconds=10, run_seconds=100)) as server:
        args = ["tag", str(data), "--backend", "openai-batch", "--model", "fake-tagger", "--base-url", server.url,
                "--cache-dir", str(cache_dir), "--output", str(out), "--poll-interval", "0.05"]
        proc = subprocess.Popen([sys.executable, "-m", "instag_hf", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while server.batches.polls < 3:  # submitted, journal written, polling a batch that does not move
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert server.batches.created == 1 and len(BatchJournal(cache_dir).entries()) == 1

        assert main([*args, "--submit-only"]) == 0  # the batch still runs: returns at once
        assert "still running" in capsys.readouterr().err
        assert not out.joinpath("rows.jsonl").exists() and server.batches.created == 1

        server.advance(1000)
        assert main([*args, "--submit-only"]) == 0  # the same command collects
        assert server.batches.created == 1 and max(server.batches.submitted.values()) == 1
        assert sum(server.answered_by_query.values()) == 120
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert [r["query"] for r in rows] == texts and {r["instag_status"] for r in rows} == {"ok"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend_stats"]["batch_api"] is True and summary["backend_stats"]["batches_resumed"] == 1
    assert set(server.answered_by_query) == {query_id(q) for q in texts}


def test_submit_only_is_refused_for_a_backend_that_does_not_wait(tmp_path, capsys):
    from instag_hf.cli.main import main

    data = tmp_path / "rows.jsonl"
    data.write_text('{"query": "Sort a list"}\n')
    assert main(["tag", str(data), "--backend", "openai", "--submit-only", "--output", str(tmp_path / "out")]) == 2
    assert "--backend openai-batch" in capsys.readouterr().err
    assert main(["tag", str(data), "--backend", "openai", "--window-requests", "5", "--output", str(tmp_path)]) == 2
    assert "--backend openai-batch" in capsys.readouterr().err


def test_the_cli_sends_a_dataset_window_by_window(tmp_path):
    from instag_hf.cli.main import main

    texts = queries(120, "Windowed")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"query": q}) + "\n" for q in texts))
    with FakeChatServer(batch=BatchConfig(advance_per_poll=1000)) as server:
        assert main(["tag", str(data), "--backend", "openai-batch", "--model", "fake-tagger", "--base-url", server.url,
                     "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out"), "--poll-interval", "0.01",
                     "--window-requests", "50"]) == 0
        assert server.batches.created == 3 and server.batches.max_open == 1
    rows = [json.loads(line) for line in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    assert [r["query"] for r in rows] == texts and {r["instag_status"] for r in rows} == {"ok"}


# --- text templates, finish reasons and hostile answers (issues 22 and 24) -------------------------
def test_a_text_template_runs_as_a_completions_batch_with_the_exact_prompt(cache_dir):
    from instag_hf.tagging.prompts import get_template

    texts = queries(4)
    with FakeChatServer(batch=BatchConfig(advance_per_poll=1000)) as server:
        t = batch_tagger(server, cache_dir, template="vicuna_v1.1")
        results = t.tag_queries(texts)
        assert [[x["tag"] for x in r.tags] for r in results] == [[x["tag"] for x in keyword_tags(q)] for q in texts]
        (batch,) = server.batches.batches.values()
        assert batch["endpoint"] == "/v1/completions"
        lines = [json.loads(line) for line in server.batches.content(batch["input_file_id"]).splitlines()]
        assert {line["url"] for line in lines} == {"/v1/completions"}
        assert sorted(line["body"]["prompt"] for line in lines) == \
            sorted(get_template("vicuna_v1.1").render(q).text for q in texts)
        assert server.requests_by_endpoint == Counter({"batch:completions": 4})


def test_chat_and_text_prompts_go_to_one_batch_per_endpoint_and_a_cut_answer_says_length(cache_dir):
    from instag_hf.tagging.backends.base import GenerationParams
    from instag_hf.tagging.prompts import get_template

    six = "Summarize photosynthesis, chlorophyll, respiration, glucose, oxygen and carbon"
    with FakeChatServer(Faults(enforce_max_tokens=True, tags_per_answer=6),
                        batch=BatchConfig(advance_per_poll=1000)) as server:
        backend = OpenAIBatchBackend(model="fake-tagger", base_url=server.url, cache_dir=cache_dir, progress=False,
                                     response_format="none", **FAST)
        prompts = [get_template("teacher").render(six), get_template("vicuna_v1.1").render(six)]
        chat, text = backend.generate(prompts, GenerationParams(max_new_tokens=16))
        assert {b["endpoint"] for b in server.batches.batches.values()} == {"/v1/chat/completions", "/v1/completions"}
        for cut in (chat, text):
            assert cut.error is None and cut.finish_reason == "length"
            assert cut.text == json.dumps(keyword_tags(six, 6))[:64]
        whole = backend.generate(prompts[1:], GenerationParams(max_new_tokens=512))[0]
        assert whole.finish_reason == "stop" and json.loads(whole.text) == keyword_tags(six, 6)


def test_answers_cut_in_a_batch_run_are_asked_again_in_one_batch_before_the_map(cache_dir):
    ds = Dataset.from_dict({"query": queries(200)})
    with FakeChatServer(Faults(enforce_max_tokens=True), batch=BatchConfig(advance_per_poll=1000)) as server:
        t = batch_tagger(server, cache_dir, max_new_tokens=32)
        out = t.map(ds, batch_size=20)  # ten map batches: none sends a batch of its own
        assert server.batches.created == 2 and t.stats.reasked == 200
        assert [b["request_counts"]["total"] for b in server.batches.batches.values()] == [200, 200]
    assert set(out[schema.STATUS]) == {"ok"}
    assert [[x["tag"] for x in tags] for tags in out[schema.TAGS]] == \
        [[x["tag"] for x in keyword_tags(q)] for q in ds["query"]]


@pytest.mark.parametrize("fault,error", [
    ("refusal", "refusal: I'm sorry"),
    ("content_filter", "content_filter: the server's content filter stopped this answer"),
    ("content_object", "malformed_response: message.content is a dict"),
])
def test_hostile_output_lines_are_error_rows_that_say_why(cache_dir, fault, error):
    with FakeChatServer(Faults(**{fault: 1.0}), batch=BatchConfig(advance_per_poll=1000)) as server:
        t = batch_tagger(server, cache_dir)
        results = t.tag_queries(queries(3))
        assert all(r.status == "backend_error" and r.error.startswith(error) for r in results)
        assert t.backend.stats()["failures"] == {error.split(":")[0]: 3}
        assert len(RequestCache(cache_dir)) == 0


def test_content_parts_in_the_output_file_are_joined(cache_dir):
    with FakeChatServer(Faults(content_parts=1.0), batch=BatchConfig(advance_per_poll=1000)) as server:
        results = batch_tagger(server, cache_dir).tag_queries(queries(3))
        assert [r.status for r in results] == ["ok"] * 3
