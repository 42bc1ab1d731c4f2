"""Deita scores (issue 25): the expectation by hand, statuses, multi-turn averages, resume, fingerprint,
the loopback server's log-probabilities, and MIG weighted by the scores (both ``norm`` settings)."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

from instag_hf import LabelGraph, Scorer, sample, schema, select_indices
from instag_hf.scoring import COMPLEXITY, QUALITY, expected_score
from instag_hf.tagging.backends.base import Backend, Completion
from instag_hf.tagging.cache import RequestCache
from instag_hf.tagging.queries import detect_format, extract_pairs
from support.server import Faults, FakeChatServer, fake_score_logprobs
from test_mig import dense_mig, graph_matrix, names

DIGITS = ("1", "2", "3", "4", "5", "6")


def by_hand(top: dict) -> float:
    """Deita's score written out: softmax over the exact tokens "1".."6", then the expectation."""
    w = [math.exp(top[d]) for d in DIGITS if d in top]
    k = [int(d) for d in DIGITS if d in top]
    return sum(a * b for a, b in zip(k, w)) / sum(w)


class LogprobBackend(Backend):
    """Answers every prompt with :func:`fake_score_logprobs` of its text; ``bare`` answers carry none."""

    name = "logprob-fake"

    def __init__(self, model="fake", bare=False, fail=None):
        self.model, self.bare, self.fail, self.seen = model, bare, fail, []

    def identity(self):
        return {"backend": self.name, "model": self.model, "bare": self.bare}

    def generate(self, prompts, params):
        out = []
        for p in prompts:
            self.seen.append(p.text)
            if self.fail and self.fail in p.text:
                out.append(Completion(error="injected failure"))
                continue
            top = fake_score_logprobs(p.text)
            completion = Completion(text=max(DIGITS, key=top.get))
            if not self.bare and params.logprobs:
                completion.top_logprobs = [top]
            out.append(completion)
        return out


def test_expected_score_by_hand():
    top = {"1": -3.0, "2": -2.0, "3": -1.0, "4": -0.5, "5": -2.5, "6": -4.0, " 3": -0.1, "The": -0.2}
    assert expected_score(top) == pytest.approx(by_hand(top))
    assert expected_score({"5": -0.1}) == 5.0
    assert expected_score({" 4": -0.3, "▁2": -0.3}) == pytest.approx(3.0)  # spaced digits when no exact one
    assert expected_score({"The": -0.1}) is None and expected_score({}) is None and expected_score(None) is None


def test_prompts_are_deitas_word_for_word():
    assert COMPLEXITY.render("Q").text == ("You are a helpful assistant. Please identify the complexity score of the "
                                           "following user query. \n##Query: Q  \n##Complexity: ")
    assert QUALITY.render("Q", "A").text == ("You are a helpful assistant. Please identify the quality score of the "
                                             "Response corresponding to the Question. \n #Question#:\nQ\n#Response#:"
                                             "\nA \n##Quality: ")


def test_pairs_of_every_layout():
    sharegpt = {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"},
                                  {"from": "human", "value": "c"}]}
    assert extract_pairs(sharegpt, detect_format(sharegpt)) == [("a", "b"), ("c", None)]
    messages = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                             {"role": "assistant", "content": "b"}]}
    assert extract_pairs(messages, detect_format(messages)) == [("a", "b")]
    alpaca = {"instruction": "do", "input": "this", "output": "done"}
    assert extract_pairs(alpaca, detect_format(alpaca)) == [("do\n\nthis", "done")]
    dolly = {"instruction": "do", "context": "ctx", "response": "r"}
    assert extract_pairs(dolly, detect_format(dolly)) == [("do\n\nctx", "r")]
    assert extract_pairs({"query": "q"}, detect_format(["query"])) == [("q", None)]


def _rows():
    return Dataset.from_list([
        {"conversations": [{"from": "human", "value": "Write a haiku"}, {"from": "gpt", "value": "Leaves fall"}]},
        {"conversations": [{"from": "human", "value": "Sort a list"}, {"from": "gpt", "value": "sorted(x)"},
                           {"from": "human", "value": "In reverse?"}, {"from": "gpt", "value": "reverse=True"}]},
        {"conversations": [{"from": "human", "value": "Nobody answers me"}]},
        {"conversations": [{"from": "human", "value": "  "}]},
    ])


def test_scores_statuses_and_multi_turn_average(tmp_path):
    scorer = Scorer(backend=LogprobBackend(), cache_dir=str(tmp_path / "c"))
    out = scorer.map(_rows())
    c = lambda q: by_hand(fake_score_logprobs(COMPLEXITY.render(q).text))  # noqa: E731
    q = lambda a, b: by_hand(fake_score_logprobs(QUALITY.render(a, b).text))  # noqa: E731
    first = out[0]
    assert first[schema.SCORE_STATUS] == "ok" and first[schema.SCORE_ERROR] == ""
    assert first[schema.COMPLEXITY] == pytest.approx(c("Write a haiku"))
    assert first[schema.QUALITY] == pytest.approx(q("Write a haiku", "Leaves fall"))
    assert first[schema.SCORE] == pytest.approx(first[schema.QUALITY] * first[schema.COMPLEXITY])
    turns = [("Sort a list", "sorted(x)"), ("In reverse?", "reverse=True")]
    second = out[1]
    assert second[schema.SCORE] == pytest.approx(np.mean([q(a, b) * c(a) for a, b in turns]))
    assert second[schema.COMPLEXITY] == pytest.approx(np.mean([c(a) for a, _ in turns]))
    assert second[schema.QUALITY] == pytest.approx(np.mean([q(a, b) for a, b in turns]))
    third = out[2]
    assert third[schema.SCORE_STATUS] == "no_answer" and "no assistant answer" in third[schema.SCORE_ERROR]
    assert third[schema.QUALITY] is None and third[schema.SCORE] is None
    assert third[schema.COMPLEXITY] == pytest.approx(c("Nobody answers me"))
    assert out[3][schema.SCORE_STATUS] == "empty_query" and out[3][schema.SCORE] is None
    assert scorer.stats.requests == 7
    again = Scorer(backend=LogprobBackend(), cache_dir=str(tmp_path / "c"))
    again.score_rows([extract_pairs(r, detect_format(["conversations"])) for r in _rows()])
    assert again.stats.requests == 0 and again.stats.cache_hits == 7


def test_each_prompt_may_have_its_own_model(tmp_path):
    scorer = Scorer(backend="test_scoring:LogprobBackend", complexity_model="c", quality_model="q",
                    cache_dir=str(tmp_path / "c"))
    out = scorer.map(_rows().select([0]))
    assert out[0][schema.SCORE_STATUS] == "ok"
    seen = {role: scorer.backend_for(role).seen for role in ("complexity", "quality")}
    assert len(seen["complexity"]) == len(seen["quality"]) == 1
    assert "##Complexity" in seen["complexity"][0] and "##Quality" in seen["quality"][0]
    described = scorer.describe()
    assert described["complexity"]["backend"]["model"] == "c" and described["quality"]["backend"]["model"] == "q"
    assert described["stand_in"] and described["quality"]["template"] == "deita-quality@1"


def test_no_logprobs_and_backend_errors_are_never_scored(tmp_path):
    out = Scorer(backend=LogprobBackend(bare=True), use_cache=False).map(_rows().select([0]))
    assert out[0][schema.SCORE_STATUS] == "no_logprobs" and out[0][schema.SCORE] is None
    assert out[0][schema.COMPLEXITY] is None and "log-probabilities" in out[0][schema.SCORE_ERROR]
    out = Scorer(backend=LogprobBackend(fail="reverse"), use_cache=False).map(_rows().select([1]))
    assert out[0][schema.SCORE_STATUS] == "backend_error" and out[0][schema.SCORE] is None
    assert out[0][schema.SCORE_ERROR].startswith("turn 2: ")


def test_fingerprint_follows_identity_and_failures(tmp_path):
    a = Scorer(backend=LogprobBackend("m1"), cache_dir=str(tmp_path / "c"))
    b = Scorer(backend=LogprobBackend("m2"), cache_dir=str(tmp_path / "c"))
    assert Hasher.hash(a) == Hasher.hash(Scorer(backend=LogprobBackend("m1"), cache_dir=str(tmp_path / "c")))
    assert Hasher.hash(a) != Hasher.hash(b)
    before = Hasher.hash(a)
    Scorer(backend=LogprobBackend("m1", fail="haiku"), cache_dir=str(tmp_path / "c")).map(_rows().select([0]))
    assert Hasher.hash(a) != before  # a failed request: the same map is not served from datasets' cache
    fewer = Scorer(backend=LogprobBackend(), top_logprobs=5)
    assert Hasher.hash(fewer) != Hasher.hash(Scorer(backend=LogprobBackend()))


def test_loopback_server_scores_equal_the_expectation_by_hand(tmp_path):
    rows = [{"instruction": f"Explain topic {i}", "output": f"Answer {i}"} for i in range(12)]
    with FakeChatServer(Faults(score_logprobs=True, omit_logprobs=0.25, seed=3)) as server:
        scorer = Scorer(backend="openai", model="fake", base_url=server.url, use_cache=False)
        out = scorer.map(Dataset.from_list(rows))
        chat = _chat_answer(server.url)
    statuses = out[schema.SCORE_STATUS]
    assert "no_logprobs" in statuses and "ok" in statuses
    for row, got in zip(rows, out):
        c = fake_score_logprobs(COMPLEXITY.render(row["instruction"]).text)
        q = fake_score_logprobs(QUALITY.render(row["instruction"], row["output"]).text)
        if got[schema.SCORE_STATUS] == "ok":
            assert got[schema.SCORE] == pytest.approx(by_hand(c) * by_hand(q))
        else:
            assert got[schema.SCORE_STATUS] == "no_logprobs" and got[schema.SCORE] is None
    top = chat["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert {t["token"]: t["logprob"] for t in top} == pytest.approx(fake_score_logprobs("a prompt"))
    from instag_hf.tagging.backends.openai import _top_logprobs

    assert _top_logprobs(chat["choices"][0]["logprobs"]) == [pytest.approx(fake_score_logprobs("a prompt"))]
    assert _top_logprobs(None) is None and _top_logprobs({"content": []}) is None


def test_batch_api_scores_a_whole_dataset_at_once(tmp_path):
    from support.batch_api import BatchConfig

    rows = [{"instruction": f"Explain topic {i}", "output": f"Answer {i}"} for i in range(6)]
    with FakeChatServer(Faults(score_logprobs=True), batch=BatchConfig(advance_per_poll=200)) as server:
        scorer = Scorer(backend="openai-batch", model="fake", base_url=server.url, cache_dir=str(tmp_path / "c"),
                        progress=False, poll_interval=0, timeout=5, max_retries=1)
        out = scorer.map(Dataset.from_list(rows))
        assert server.requests_by_endpoint["batch:completions"] == 12
    for row, got in zip(rows, out):
        c = fake_score_logprobs(COMPLEXITY.render(row["instruction"]).text)
        q = fake_score_logprobs(QUALITY.render(row["instruction"], row["output"]).text)
        assert got[schema.SCORE_STATUS] == "ok" and got[schema.SCORE] == pytest.approx(by_hand(c) * by_hand(q))


def test_vllm_logprobs_are_read_by_decoded_token():
    from types import SimpleNamespace as NS

    from instag_hf.tagging.backends.vllm import _top_logprobs

    position = {7: NS(decoded_token="3", logprob=-0.2), 8: NS(decoded_token=" 3", logprob=-1.0),
                9: NS(decoded_token="3", logprob=-5.0), 10: NS(decoded_token=None, logprob=-2.0)}
    assert _top_logprobs([position]) == [{"3": -0.2, " 3": -1.0, "10": -2.0}]
    assert _top_logprobs(None) is None


def _chat_answer(url):
    import urllib.request

    body = {"model": "fake", "messages": [{"role": "user", "content": "a prompt"}], "logprobs": True,
            "top_logprobs": 20, "max_tokens": 1}
    req = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_killed_score_run_reasks_only_unanswered_rows(tmp_path):
    rows = [{"instruction": f"Explain item {i} to students", "output": f"Item {i} is ..."} for i in range(40)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    cache = RequestCache(cache_dir)
    with FakeChatServer(Faults(score_logprobs=True, latency=0.05)) as server:
        args = [sys.executable, "-m", "instag_hf", "score", str(data), "--backend", "openai", "--model", "fake",
                "--base-url", server.url, "--concurrency", "2", "--batch-size", "4", "--map-batch-size", "8",
                "--cache-dir", str(cache_dir), "--output", str(out)]
        env = dict(os.environ)
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while not (cache.path.exists() and len(cache) >= 20):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finished = len(cache)
        assert 20 <= finished < 80
        first = dict(server.requests_by_query)
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        second = {k: v - first.get(k, 0) for k, v in server.requests_by_query.items()}
    assert sum(second.values()) == 80 - finished  # only what the killed run had not committed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stats"]["cache_hits"] == finished and summary["stats"]["requests"] == 80 - finished
    scored = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert {r[schema.SCORE_STATUS] for r in scored} == {"ok"}


@pytest.mark.slow
def test_cpu_default_is_the_embedded_stand_in(tmp_path):
    from instag_hf import load_sample

    scorer = Scorer(progress=False, cache_dir=str(tmp_path / "c"))
    assert scorer.configured_backend.name == "transformers" and scorer.describe()["stand_in"]
    out = scorer.map(load_sample("alpaca").select(range(3)))
    assert set(out[schema.SCORE_STATUS]) == {"ok"}
    for row in out:
        assert 1 <= row[schema.COMPLEXITY] <= 6 and 1 <= row[schema.QUALITY] <= 6
        assert row[schema.SCORE] == pytest.approx(row[schema.QUALITY] * row[schema.COMPLEXITY])


# ------------------------------------------------------------------ MIG weighted by the scores


@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_mig_with_scores_matches_the_dense_reference(norm, seed):
    rng = np.random.default_rng(seed)
    k, size = 8, 30
    tags = [f"t{i}" for i in range(k)]
    s = graph_matrix(rng, k, 10)
    rows = [list(rng.choice(k, size=rng.integers(1, 5), replace=False)) for _ in range(size)]
    scores = rng.uniform(1, 36, size)
    want, _ = dense_mig(names(rows), tags, s, size, scores, 1.0, norm=norm)
    got = select_indices(names(rows), size, "mig", label_graph=LabelGraph(tags, s), scores=scores, norm=norm)
    assert got.tolist() == want


def test_norm_false_weighs_a_row_by_its_full_score():
    g = LabelGraph(["a", "b", "c"], np.eye(3))
    rows = [["a", "b", "c"], ["a"]]
    # gains at the start: norm 1 * 3 * (1/3) against 2 * 1; norm=False 1 * 3 against 2 * 1
    assert select_indices(rows, 1, "mig", label_graph=g, scores=[1, 2]).tolist() == [1]
    assert select_indices(rows, 1, "mig", label_graph=g, scores=[1, 2], norm=False).tolist() == [0]
    with pytest.raises(ValueError, match="only to strategy='mig'"):
        select_indices(rows, 1, "cfd", norm=False)


def test_mig_picks_up_the_score_column(caplog):
    g = LabelGraph(["a", "b"], np.eye(2))
    ds = Dataset.from_dict({schema.TAGS: [[{"tag": "a", "explanation": ""}], [{"tag": "b", "explanation": ""}]],
                            schema.STATUS: ["ok", "ok"], schema.SCORE: [1.0, 9.0]})
    import logging

    logger = logging.getLogger("instag_hf")
    logger.addHandler(caplog.handler)
    try:
        picked, report = sample(ds, 1, strategy="mig", label_graph=g, return_report=True)
        assert report.params["mig"]["score_column"] == schema.SCORE and picked[schema.SCORE] == [9.0]
        assert "weighing rows by the instag_score column" in caplog.text
        holed = ds.remove_columns(schema.SCORE).add_column(schema.SCORE, [1.0, None])
        picked = sample(holed, 1, strategy="mig", label_graph=g)
        assert picked[schema.SCORE] == [1.0] and "have no score" in caplog.text
    finally:
        logger.removeHandler(caplog.handler)
