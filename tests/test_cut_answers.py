"""Answers cut at the token budget: asked once more with a larger budget, never passed off as ``ok``."""

import json

import pytest

import instag_hf
from instag_hf.tagging.backends.base import Backend, Completion, EngineBackend, GenerationParams

TAGS = {
    "six": [{"tag": f"Tag Number {i}", "explanation": "an explanation of some length"} for i in range(6)],
    "huge": [{"tag": f"Tag Number {i}", "explanation": "x" * 400} for i in range(40)],
    "two": [{"tag": "Short", "explanation": "a"}, {"tag": "Answer", "explanation": "b"}],
}


class BudgetBackend(Backend):
    """Answers the tags of the first word of the query, cut at 4 characters per token of the budget."""

    name = "budget"
    asked: list = []

    def __init__(self, model: str = "budget", revision=None, context: int | None = None):
        self.model, self.revision, self.context = model, revision, context

    def identity(self):
        return {"backend": self.name, "model": self.model}

    def context_length(self):
        return self.context

    def prompt_tokens(self, prompt):
        return 10 if self.context else None

    def generate(self, prompts, params: GenerationParams):
        out = []
        for p in prompts:
            word = p.messages[-1]["content"].split("[begin]\n")[-1].split()[0]
            BudgetBackend.asked.append((word, params.max_new_tokens))
            text = json.dumps(TAGS[word])
            limit = params.max_new_tokens * 4
            if len(text) > limit:
                out.append(Completion(text=text[:limit], finish_reason="length"))
            else:
                out.append(Completion(text=text, finish_reason="stop"))
        return out


@pytest.fixture(autouse=True)
def _clear():
    BudgetBackend.asked = []


def tagger(cache_dir, **kw):
    return instag_hf.Tagger(backend=BudgetBackend(**kw.pop("backend_kw", {})), cache_dir=cache_dir, progress=False, **kw)


def test_a_cut_answer_that_fits_a_larger_budget_comes_back_whole(cache_dir):
    t = tagger(cache_dir, max_new_tokens=40)
    six, two = t.tag_queries(["six of them", "two of them"])
    assert six.status == "ok" and [x["tag"] for x in six.tags] == [x["tag"] for x in TAGS["six"]]
    assert two.status == "ok" and len(two.tags) == 2
    assert ("six", 160) in BudgetBackend.asked  # asked again with 4x the budget
    assert [w for w, _ in BudgetBackend.asked].count("two") == 1  # untouched rows are asked once
    assert t.stats.reasked == 1


def test_an_answer_cut_at_every_budget_is_never_ok(cache_dir):
    t = tagger(cache_dir, max_new_tokens=40)
    (huge,) = t.tag_queries(["huge list"])
    assert huge.status == "answer_truncated" and huge.tags == []
    assert "40 then 160" in huge.error and "not kept" in huge.error
    row = t({"instruction": ["huge list", "two tags"], "input": ["", ""]})
    assert row["instag_status"] == ["answer_truncated", "ok"]
    assert instag_hf.schema.ANSWER_TRUNCATED not in instag_hf.schema.TAGGED_STATUSES


def test_the_retry_never_repays_a_cached_answer(cache_dir):
    tagger(cache_dir, max_new_tokens=40).tag_queries(["six of them", "huge list"])
    first = len(BudgetBackend.asked)
    again = tagger(cache_dir, max_new_tokens=40)
    results = again.tag_queries(["six of them", "huge list"])
    assert len(BudgetBackend.asked) == first == 4
    assert [r.status for r in results] == ["ok", "answer_truncated"]
    assert again.stats.requests == 0


def test_the_larger_budget_stops_at_what_the_context_leaves(cache_dir):
    t = tagger(cache_dir, max_new_tokens=40, backend_kw={"context": 120})
    (six,) = t.tag_queries(["six of them"])
    budgets = [b for w, b in BudgetBackend.asked if w == "six"]
    assert budgets[0] == 40 and 40 < budgets[1] < 120
    assert six.status == "answer_truncated"  # 6 tags need ~100 tokens; the context leaves fewer


def test_no_room_to_grow_is_answer_truncated_without_a_second_request(cache_dir):
    t = tagger(cache_dir, max_new_tokens=40, backend_kw={"context": 50})
    (six,) = t.tag_queries(["six of them"])
    assert six.status == "answer_truncated" and len(BudgetBackend.asked) == 1


def test_default_budget_is_at_least_512_for_the_tagging_templates():
    for name in ("teacher", "paper", "vicuna_v1.1", "vicuna_v1.1_raw", "chatml"):
        assert instag_hf.get_template(name).max_new_tokens >= 512


@pytest.mark.parametrize("query", ["\u200b\u200b\u200d", "😀😀🎉", "\ufeff \u2060", "…!?"])
def test_a_turn_without_letters_or_digits_is_empty_and_never_sent(cache_dir, query):
    t = tagger(cache_dir)
    (result,) = t.tag_queries([query])
    assert result.status == "empty_query" and BudgetBackend.asked == []


class LoadProbe(EngineBackend):
    """An engine backend that writes a line to ``log`` each time a process loads or uses its engine."""

    name = "load-probe"

    def __init__(self, model: str = "probe", revision=None, log: str = ""):
        self.model, self.revision, self.log = model, revision, log

    def identity(self):
        return {"backend": self.name, "model": self.model}

    def _record(self, what):
        import os

        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()} {what}\n")

    def _tokenizer(self):
        self._record("tokenizer")
        raise RuntimeError("no tokenizer")

    def context_length(self):
        self._record("context")
        return None

    def _generate(self, prompts, params):
        self._record("engine")
        return [Completion(text='[{"tag": "Probe", "explanation": "e"}]', finish_reason="stop") for _ in prompts]


def test_the_parent_of_a_sharded_map_never_starts_an_engine(tmp_path):
    """map(num_proc=2, with_rank=True): the parent only fingerprints and describes the tagger."""
    import os

    log = tmp_path / "loads.txt"
    log.touch()
    rows = instag_hf.load_sample("alpaca").select(range(6))
    t = instag_hf.Tagger(backend=f"{__name__}:LoadProbe", log=str(log), cache_dir=str(tmp_path / "c"),
                         progress=False, batch_size=2)
    out = t.map(rows, num_proc=2, with_rank=True, batch_size=3)
    assert out["instag_status"] == ["ok"] * 6
    pids = {line.split()[0] for line in log.read_text().splitlines()}
    assert pids and str(os.getpid()) not in pids
    assert t._backend is None
    t.describe(), t.summary()
    assert str(os.getpid()) not in {line.split()[0] for line in log.read_text().splitlines()}
    assert t.stats.rows == 6 and t.stats.worker_rows == 6 and t.stats.statuses == {"ok": 6}


def test_on_a_loopback_server_that_cuts_at_max_tokens(cache_dir):
    """The issue's bar: a row that fits a larger budget is ok with all its tags, a row cut at
    every budget is never ok, and the other rows are asked once and untouched."""
    from support.server import Faults, FakeChatServer

    fits = "Compare apples oranges bananas cherries peaches melons"
    never = " ".join(w * 60 for w in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot"))
    short = "Translate hello"
    with FakeChatServer(Faults(enforce_max_tokens=True, tags_per_answer=6)) as server:
        t = instag_hf.Tagger(backend="openai", base_url=server.url, model="fake", cache_dir=cache_dir,
                             progress=False, max_new_tokens=40)
        out = t({"instruction": [fits, never, short], "input": ["", "", ""]})
        asked = server.stats()["requests_by_query"]
    assert out["instag_status"] == ["ok", "answer_truncated", "ok"]
    assert len(out["instag_tags"][0]) == 6 and out["instag_tags"][1] == []
    assert [x["tag"] for x in out["instag_tags"][2]] == ["Translate", "Hello"]
    assert sorted(asked.values()) == [1, 2, 2]  # the short row once, the cut rows twice


def test_a_retry_the_server_refuses_leaves_the_turn_answer_truncated_with_the_reason(cache_dir):
    """A server whose context cannot hold the larger budget answers 400: the turn is still known to be cut."""

    class SmallContext(BudgetBackend):
        def generate(self, prompts, params):
            if params.max_new_tokens > 100:
                return [Completion(error="http_400: maximum context length is 2048 tokens") for _ in prompts]
            return super().generate(prompts, params)

    t = instag_hf.Tagger(backend=SmallContext(), cache_dir=cache_dir, progress=False, max_new_tokens=40)
    (six,) = t.tag_queries(["six of them"])
    assert six.status == "answer_truncated"
    assert "asking again with 160 new tokens failed: http_400" in six.error
