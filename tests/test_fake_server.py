"""The loopback server itself: its process entry point, and its Batch API through the official SDK."""

import subprocess
import sys

import openai
import pytest

from instag_hf.testing.batch_api import BatchConfig
from instag_hf.testing.server import FakeChatServer


def _line(i, model="fake-tagger"):
    return (f'{{"custom_id": "r{i}", "method": "POST", "url": "/v1/chat/completions", "body": {{"model": "{model}", '
            f'"messages": [{{"role": "user", "content": "Explain item {i} of the databases course"}}]}}}}\n')


def _client(server):
    return openai.OpenAI(api_key="unused", base_url=server.url, max_retries=0)


def test_runs_as_a_process_and_serves_chat_completions():
    proc = subprocess.Popen([sys.executable, "-m", "instag_hf.testing.server", "--lifetime", "30", "--latency", "0.01"],
                            stdout=subprocess.PIPE, text=True)
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
