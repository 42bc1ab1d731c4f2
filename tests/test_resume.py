"""A tagging process killed with SIGKILL and started again re-computes nothing it had finished."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from instag_hf.tagging.cache import RequestCache


def _start(args, env):
    return subprocess.Popen([sys.executable, "-m", "instag_hf", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _kill_when(proc, ready, limit=240):
    deadline = time.monotonic() + limit
    while not ready():
        if proc.poll() is not None:
            pytest.fail("the tagging process ended before it could be killed:\n" + proc.stdout.read().decode()[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the tagging process made no progress")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _finish(args, env):
    done = subprocess.run([sys.executable, "-m", "instag_hf", *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_killed_run_resumes_without_repeating_finished_requests(tmp_path):
    queries = [f"Explain item {i}: {'photosynthesis' if i % 2 else 'compilers'} for students" for i in range(60)]
    data = tmp_path / "queries.jsonl"
    data.write_text("".join(json.dumps({"query": q}) + "\n" for q in queries))
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    args = [str(data), "--backend", "instag_hf.testing:KeywordBackend", "--batch-size", "5",
            "--map-batch-size", "10", "--cache-dir", str(cache_dir), "--output", str(out)]
    log1, log2 = tmp_path / "log1", tmp_path / "log2"
    env = {**os.environ, "INSTAG_TEST_DELAY": "0.2", "INSTAG_TEST_LOG": str(log1)}
    cache = RequestCache(cache_dir)
    proc = _start(["tag", *args], env)
    # Kill on committed answers, not on logged requests: a batch is logged before its answers are cached.
    _kill_when(proc, lambda: cache.path.exists() and len(cache) >= 20)
    finished = len(cache)
    assert 20 <= finished < 60
    assert len(log1.read_text().split()) >= finished

    done = _finish(["tag", *args], {**env, "INSTAG_TEST_DELAY": "0", "INSTAG_TEST_LOG": str(log2)})
    # the killed process's claims on its in-flight requests are void at once: nothing waits for them to expire
    assert "waiting for" not in done.stdout + done.stderr
    asked_again = log2.read_text().split()
    assert len(asked_again) == len(set(asked_again)) == 60 - finished
    assert not set(asked_again) & set(log1.read_text().split()[:finished])
    rows = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    assert sorted(r["query"] for r in rows) == sorted(queries)
    assert {r["instag_status"] for r in rows} == {"ok"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stats"]["cache_hits"] == finished and summary["stats"]["requests"] == 60 - finished


@pytest.mark.slow
def test_killed_embedded_model_run_resumes(tmp_path):
    """The same with the real embedded LLM in a real `instag tag` process."""
    from instag_hf.samples import sample_path

    n = 24
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    args = ["tag", sample_path("alpaca"), "--limit", str(n), "--batch-size", "4", "--map-batch-size", "8",
            "--max-new-tokens", "48", "--cache-dir", str(cache_dir), "--output", str(out)]
    cache = RequestCache(cache_dir)
    proc = _start(args, dict(os.environ))
    _kill_when(proc, lambda: cache.path.exists() and len(cache) >= 8, limit=400)
    finished = len(cache)
    assert 8 <= finished < n
    _finish(args, dict(os.environ))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stats"]["cache_hits"] == finished
    assert summary["stats"]["requests"] == n - finished
    rows = [json.loads(line) for line in (out / "sample_alpaca.jsonl").read_text().splitlines()]
    assert len(rows) == n
