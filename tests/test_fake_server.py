"""The loopback server itself: its process entry point, and its Batch API through the official SDK."""

import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from support.batch_api import BatchConfig
from support.server import FakeChatServer


def _line(i, model="fake-tagger"):
    return (f'{{"custom_id": "r{i}", "method": "POST", "url": "/v1/chat/completions", "body": {{"model": "{model}", '
            f'"messages": [{{"role": "user", "content": "Explain item {i} of the databases course"}}]}}}}\n')


def _client(server):
    return openai.OpenAI(api_key="unused", base_url=server.url, max_retries=0)


def test_runs_as_a_process_and_serves_chat_completions():
    tests = str(Path(__file__).parent)  # support/ is a package of the tests, not of instag_hf
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "support.server", "--lifetime", "30", "--latency", "0.01"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        client = openai.OpenAI(api_key="unused", base_url=url, max_retries=0)
        answer = client.chat.completions.create(model="fake-tagger",
                                                messages=[{"role": "user", "content": "Sort a list"}])
        assert '"Sort"' in answer.choices[0].message.content and answer.usage.completion_tokens > 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_batch_walks_through_its_states_on_the_servers_clock():
    with FakeChatServer(batch=BatchConfig(validate_seconds=10, run_seconds=100, error_rate=0.3, seed=1)) as server:
        client = _client(server)
        data = "".join(_line(i) for i in range(10)).encode()
        uploaded = client.files.create(file=("in.jsonl", data), purpose="batch")
        assert uploaded.purpose == "batch" and uploaded.bytes > 0
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                      completion_window="24h", metadata={"who": "test"})
        assert batch.status == "validating" and batch.request_counts.total == 10
        assert client.batches.retrieve(batch.id).status == "validating"  # the clock has not moved
        server.advance(60)
        running = client.batches.retrieve(batch.id)
        assert running.status == "in_progress" and running.request_counts.completed + running.request_counts.failed == 5
        server.advance(60)
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed" and done.output_file_id and done.error_file_id
        out = client.files.content(done.output_file_id).content.splitlines()
        err = client.files.content(done.error_file_id).content.splitlines()
        assert len(out) + len(err) == 10 and len(err) == done.request_counts.failed > 0
        assert [b.id for b in client.batches.list()] == [batch.id]


def test_expired_failed_and_cancelled_batches():
    with FakeChatServer(batch=BatchConfig(validate_seconds=0, run_seconds=100, expire=(0,), fail=(1,))) as server:
        client = _client(server)
        data = "".join(_line(i) for i in range(10)).encode()

        def submit():
            fid = client.files.create(file=("in.jsonl", data), purpose="batch").id
            return client.batches.create(input_file_id=fid, endpoint="/v1/chat/completions", completion_window="24h")

        expiring, failing, cancelled = submit(), submit(), submit()
        server.advance(30)
        assert client.batches.cancel(cancelled.id).status == "cancelling"
        server.advance(100)
        expired = client.batches.retrieve(expiring.id)
        assert expired.status == "expired" and expired.request_counts.completed == 5
        lines = client.files.content(expired.error_file_id).content.splitlines()
        assert len(lines) == 5 and all(b"batch_expired" in line for line in lines)
        failed = client.batches.retrieve(failing.id)
        assert failed.status == "failed" and failed.errors.data[0].code == "injected_failure"
        stopped = client.batches.retrieve(cancelled.id)
        assert stopped.status == "cancelled" and stopped.request_counts.completed == 3
        assert stopped.error_file_id is None  # cancelled requests are simply absent


def test_bad_uploads_and_batches_are_refused():
    with FakeChatServer(batch=BatchConfig(validate_seconds=0, max_requests=3)) as server:
        client = _client(server)
        with pytest.raises(openai.NotFoundError):
            client.batches.create(input_file_id="file-000000", endpoint="/v1/chat/completions", completion_window="24h")
        fid = client.files.create(file=("in.jsonl", "".join(_line(i) for i in range(4)).encode()), purpose="batch").id
        with pytest.raises(openai.BadRequestError):
            client.batches.create(input_file_id=fid, endpoint="/v1/embeddings", completion_window="24h")
        too_many = client.batches.create(input_file_id=fid, endpoint="/v1/chat/completions", completion_window="24h")
        refused = client.batches.retrieve(too_many.id)
        assert refused.status == "failed" and refused.errors.data[0].code == "too_many_requests"
        with pytest.raises(openai.NotFoundError):
            client.batches.retrieve("batch_missing")
        assert server.batches.submitted == {}  # a refused file runs nothing


# --- the hostile modes of issues 22 and 24 ------------------------------------------------------
def test_serves_completions_with_the_query_of_a_vicuna_prompt_and_shows_every_body_in_stats():
    import json
    import urllib.request

    from instag_hf.tagging.prompts import get_template
    from instag_hf.testing import keyword_tags

    with FakeChatServer() as server:
        client = _client(server)
        for template in ("vicuna_v1.1", "vicuna_v1.1_raw"):
            prompt = get_template(template).render("Sort a list of numbers").text
            answer = client.completions.create(model="fake-tagger", prompt=prompt, max_tokens=64)
            assert json.loads(answer.choices[0].text) == keyword_tags("Sort a list of numbers")
            assert answer.choices[0].finish_reason == "stop"
        client.chat.completions.create(model="fake-tagger", messages=[{"role": "user", "content": "Sort a list"}])
        stats = json.loads(urllib.request.urlopen(server.url.rsplit("/v1", 1)[0] + "/v1/stats").read())
        assert stats["requests_by_endpoint"] == {"completions": 2, "chat": 1}
        assert [b["endpoint"] for b in stats["bodies"]] == ["completions", "completions", "chat"]
        assert stats["bodies"][0]["body"]["prompt"] == get_template("vicuna_v1.1").render("Sort a list of numbers").text
        assert stats["finish_reasons"] == {"stop": 3}


def test_query_of_prompt_reads_both_vicuna_templates():
    from support.server import query_of_prompt

    assert query_of_prompt("System. USER: Tag this.\nUser query: Sort a list ASSISTANT:") == "Sort a list"
    assert query_of_prompt("System. USER: Say USER: hi ASSISTANT: ok ASSISTANT:") == "hi ASSISTANT: ok"
    assert query_of_prompt(None) == ""


def test_old_seeds_keep_their_fault_draws():
    import hashlib

    from support.server import OUTCOMES, Faults

    old = ("error_500", "rate_limit_429", "hang", "drop", "malformed", "bad_content", "cut_off")
    assert OUTCOMES[: len(old)] == old
    faults = Faults(error_500=0.1, rate_limit_429=0.05, hang=0.05, drop=0.1, malformed=0.1, bad_content=0.1,
                    cut_off=0.1, seed=7)

    def draw_before_the_new_outcomes(query, attempt):
        digest = hashlib.sha256(f"{faults.seed}\x00{attempt}\x00{query}".encode()).digest()
        u, edge = int.from_bytes(digest[:8], "big") / 2**64, 0.0
        for name in old:
            edge += getattr(faults, name)
            if u < edge:
                return name
        return "ok"

    server = FakeChatServer(faults)
    pairs = [(f"query {i}", attempt) for i in range(200) for attempt in (1, 2)]
    assert [server._fault(q, a) for q, a in pairs] == [draw_before_the_new_outcomes(q, a) for q, a in pairs]


def test_answers_longer_than_max_tokens_are_cut_with_finish_reason_length():
    from support.server import Faults

    query = "Summarize photosynthesis, chlorophyll, respiration, glucose, oxygen and carbon"
    with FakeChatServer(Faults(enforce_max_tokens=True, tags_per_answer=6)) as server:
        client = _client(server)
        cut = client.chat.completions.create(model="fake-tagger", messages=[{"role": "user", "content": query}],
                                             max_tokens=10)
        assert cut.choices[0].finish_reason == "length" and len(cut.choices[0].message.content) == 40
        whole = client.chat.completions.create(model="fake-tagger", messages=[{"role": "user", "content": query}],
                                               max_tokens=500)
        assert whole.choices[0].finish_reason == "stop" and whole.choices[0].message.content.count('"tag"') == 6


def test_echo_key_repeats_the_callers_authorization_in_error_messages():
    from support.server import Faults

    with FakeChatServer(Faults(echo_key=True), api_key="the-right-key-000") as server:
        client = openai.OpenAI(api_key="a-wrong-key-12345", base_url=server.url, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            client.models.list()
        assert "Bearer a-wrong-key-12345" in str(refused.value) and "key a-wrong-key-12345" in str(refused.value)
