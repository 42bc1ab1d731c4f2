"""LLM judge: verdict parsing, sampling, statuses, caching, and the fault-injecting server."""

import json

import pytest

from instag_hf.tagging.backends.base import Backend, Completion
from instag_hf.quality import (JUDGE_TEMPLATES, LLMJudge, get_judge_template, make_judge_backend, parse_verdict,
                               wilson_interval)
from support.server import FakeChatServer, Faults
from support.synthetic_queries import make_tagged_queries


@pytest.mark.parametrize("answer, verdict", [
    ('{"verdict": "yes", "reason": "all tags fit"}', "yes"),
    ('```json\n{"verdict": "No", "reason": "Cooking is unrelated"}\n```', "no"),
    ('{"Verdict": true}', "yes"),
    ('{"answer": "inconsistent"}', "no"),
    ('Sure. {"verdict": "yes", "reason": "cut off', "yes"),
    ("{'verdict': 'no', 'reason': 'python dict'}", "no"),
    ('{"verdict": false, "reason": "x"', "no"),
    ("Yes. Every tag names an intention.", "yes"),
    ("**No**, the second tag is wrong.", "no"),
])
def test_clear_verdicts_are_read(answer, verdict):
    v = parse_verdict(answer)
    assert (v.verdict, v.status) == (verdict, "ok")


@pytest.mark.parametrize("answer", [
    "", None, '{"verdict": "maybe"}', "The tags are mostly fine.", "Yesterday I would have said no.",
    '[{"tag": "Cooking", "explanation": "x"}]', '{"verdict": "ye', '{"verdict": "yes',
    '{"verdict": "yes" or "no", "reason": "one short sentence"}\n\nThe tags fit.',
])
def test_unclear_answers_are_parse_errors_not_verdicts(answer):
    v = parse_verdict(answer)
    assert v.verdict is None and v.status == "parse_error" and v.error


def test_wilson_interval_hand_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and round(low, 4) == 0.7225
    assert all(x != x for x in wilson_interval(0, 0))  # NaN without cases


def test_templates_are_versioned_and_checked():
    assert {t.id for t in JUDGE_TEMPLATES.values()} == {"precision@1", "consistency@1"}
    assert get_judge_template("precision@1").metric == "precision"
    with pytest.raises(ValueError, match="not available"):
        get_judge_template("precision@9")
    with pytest.raises(ValueError, match="judges precision"):
        get_judge_template("precision", "consistency")
    prompt = JUDGE_TEMPLATES["consistency"].render(["q one", "q two"], ["Cooking"])
    user = prompt.messages[-1]["content"]
    assert '"Cooking"' in user and "Query 2:" in user and "verdict" in user


class FakeJudge(Backend):
    """Says "no" when a case shows a joke query or a Humor-ish tag, junk for "Quick question", fails for "Hey,"."""

    name = "fake-judge"

    def __init__(self, model=None, revision=None):
        self.calls = 0

    def identity(self):
        return {"backend": self.name, "model": "fake", "revision": None}

    def generate(self, prompts, params):
        self.calls += 1
        out = []
        for p in prompts:
            text = p.messages[-1]["content"]
            if "Hey," in text:
                out.append(Completion(error="injected failure"))
            elif "Quick question" in text:
                out.append(Completion(text="Hard to say, honestly."))
            elif "joke" in text or "Hum" in text:
                out.append(Completion(text='{"verdict": "no", "reason": "a tag does not fit"}'))
            else:
                out.append(Completion(text='{"verdict": "yes", "reason": "fits"}'))
        return out


@pytest.fixture(scope="module")
def tagged():
    return make_tagged_queries(120, seed=3).to_dataset()


def _expected(case):
    text = " ".join(case.queries + case.tags)
    if "Hey," in text:
        return None, "backend_error"
    if "Quick question" in text:
        return None, "parse_error"
    if "joke" in text or "Hum" in text:
        return "no", "ok"
    return "yes", "ok"


def test_every_case_keeps_answer_verdict_and_status(tagged, tmp_path):
    judge = LLMJudge(FakeJudge(), n=40, seed=1, cache_dir=str(tmp_path))
    result = judge.judge(tagged)
    precision = [c for c in result.cases if c.metric == "precision"]
    consistency = [c for c in result.cases if c.metric == "consistency"]
    assert len(precision) == 40 and consistency
    assert {c.status for c in precision} == {"ok", "parse_error", "backend_error"}
    assert len({c.case_id for c in result.cases}) == len(result.cases)
    for c in result.cases:
        assert (c.verdict, c.status) == _expected(c), c.case_id
        assert c.template in ("precision@1", "consistency@1")
        if c.status == "backend_error":
            assert c.answer is None and c.error == "injected failure"
        else:
            assert c.answer
    for c in precision:
        assert len(c.queries) == 1 and c.tags
    for c in consistency:
        assert 2 <= len(c.queries) <= 5 and len(set(c.queries)) == len(c.queries) and len(c.tags) == 1
    s = result.summary()["precision"]
    assert s.yes + s.no == s.judged and s.judged + s.parse_errors + s.backend_errors == s.cases == 40
    assert s.yes == sum(c.verdict == "yes" for c in precision)
    assert s.rate == pytest.approx(s.yes / s.judged) and s.ci_low <= s.rate <= s.ci_high
    assert s.strict_rate == pytest.approx(s.yes / 40)
    md = result.to_markdown()
    assert "| precision | precision@1 | 40 |" in md and "Wilson" in md
    path = tmp_path / "cases.jsonl"
    result.to_jsonl(str(path))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == len(result.cases) and {"case_id", "answer", "verdict", "status"} <= set(lines[0])


def test_sampling_is_seeded(tagged, tmp_path):
    ids = lambda seed: [c.case_id for c in LLMJudge(FakeJudge(), n=10, seed=seed, use_cache=False)  # noqa: E731
                        .judge(tagged).cases]
    assert ids(5) == ids(5)
    assert ids(5) != ids(6)


def test_answers_are_cached_and_failures_retried(tagged, tmp_path):
    backend = FakeJudge()
    first = LLMJudge(backend, n=15, seed=2, cache_dir=str(tmp_path)).judge(tagged, ["precision"])
    calls = backend.calls
    again = LLMJudge(backend, n=15, seed=2, cache_dir=str(tmp_path), batch_size=1).judge(tagged, ["precision"])
    assert [(c.verdict, c.status) for c in again.cases] == [(c.verdict, c.status) for c in first.cases]
    failed = sum(c.status == "backend_error" for c in first.cases)
    assert backend.calls - calls == failed  # only the failed cases were asked again (one per call)


def test_unit_tag_judges_one_pair_per_case(tagged):
    result = LLMJudge(FakeJudge(), n=25, unit="tag", use_cache=False).judge(tagged, "precision")
    assert len(result.cases) == 25 and all(len(c.tags) == 1 for c in result.cases)
    assert all(c.case_id.count("/") == 2 for c in result.cases)


def test_bad_parameters_are_rejected(tagged):
    with pytest.raises(ValueError, match="unit"):
        LLMJudge(FakeJudge(), unit="row")
    with pytest.raises(ValueError, match="min_queries"):
        LLMJudge(FakeJudge(), min_queries=1)
    with pytest.raises(ValueError, match="metrics"):
        LLMJudge(FakeJudge(), use_cache=False).judge(tagged, ["fluency"])


def test_judge_backends_are_not_held_to_the_tag_schema():
    backend = make_judge_backend("openai", base_url="http://127.0.0.1:9/v1", model="m")
    assert backend.response_format == "json_object"
    assert make_judge_backend("vllm", model="m").structured is False  # no tag-list schema for verdicts
    assert make_judge_backend("instag_hf.testing:KeywordBackend").name == "keyword"


def test_fault_server_answers_never_become_verdicts(tagged, tmp_path):
    faults = Faults(error_500=0.2, rate_limit_429=0.1, bad_content=0.2, retry_after=0.01, seed=4)
    with FakeChatServer(faults, lifetime=120) as server:
        judge = LLMJudge("openai", "fake-tagger", base_url=server.url, n=12, seed=0, max_retries=1,
                         backoff_base=0.01, backoff_max=0.05, timeout=10, cache_dir=str(tmp_path), progress=False)
        result = judge.judge(tagged)
        stats = server.stats()
    # the server only ever answers with tag lists or prose: nothing is a yes/no
    assert result.cases and all(c.verdict is None for c in result.cases)
    statuses = {c.status for c in result.cases}
    assert statuses <= {"parse_error", "backend_error"} and "parse_error" in statuses
    assert stats["response_formats"].get("json_object", 0) > 0
    s = result.summary()["precision"]
    assert s.judged == 0 and s.rate is None and s.strict_rate == 0.0
    assert "n/a" in result.to_markdown()
