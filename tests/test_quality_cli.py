"""``instag eval``, ``judge``, ``distill`` and ``train-local`` end to end."""

import json

import pytest

from instag_hf.cli.main import main
from support.synthetic_queries import make_tagged_queries

KEYWORD = ["--backend", "instag_hf.testing:KeywordBackend"]


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.jsonl"
    make_tagged_queries(150, seed=5).to_dataset().to_json(str(path), lines=True)
    return path


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_eval_two_files_joined_on_id(tmp_path, capsys):
    pred = _write(tmp_path / "p.jsonl", [{"id": 2, "tags": ["Cosplay", "Humor"]}, {"id": 1, "tags": ["Math"]}])
    gold = _write(tmp_path / "g.jsonl", [{"id": 1, "tags": ["math"]}, {"id": 2, "tags": ["Cosplay"]}])
    out = tmp_path / "report.json"
    assert main(["eval", pred, gold, "--on", "id", "--predicted-column", "tags", "--exact-only",
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| exact | micro | 66.7% | 100.0% | 80.0% | 2 | 3 | 2 |" in text
    assert json.loads(out.read_text())["exact"]["matched"] == 2
    assert main(["eval", pred, "--predicted-column", "tags"]) == 2  # one dataset needs --gold-column


def test_distill_writes_splits_and_prints_the_trl_command(teacher_file, tmp_path, capsys):
    out = tmp_path / "distill"
    assert main(["distill", str(teacher_file), "--template", "chatml", "--test-size", "20",
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "trl sft" in text and "--template chatml" in text
    assert len((out / "test.jsonl").read_text().splitlines()) >= 20
    assert (out / "train.jsonl").exists() and (out / "heldout_gold.jsonl").exists()
    assert main(["distill", str(teacher_file), "--test-size", "1000", "--output", str(out)]) == 2


def test_judge_with_a_backend_that_only_speaks_tags(teacher_file, tmp_path, capsys):
    out = tmp_path / "judge"
    assert main(["judge", str(teacher_file), *KEYWORD, "--cases", "8", "--output", str(out),
                 "--cache-dir", str(tmp_path / "c")]) == 0
    cases = [json.loads(x) for x in (out / "cases.jsonl").read_text().splitlines()]
    assert len([c for c in cases if c["metric"] == "precision"]) == 8
    assert all(c["status"] == "parse_error" and c["verdict"] is None and c["answer"] for c in cases)
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary["precision"]["judged"] == 0 and summary["precision"]["parse_errors"] == 8
    assert "| precision | precision@1 | 8 | 0 |" in capsys.readouterr().out
    assert main(["judge", str(teacher_file), *KEYWORD, "--template", "teacher", "--output", str(out)]) == 2


def test_train_local_then_tag_with_it(teacher_file, tmp_path, capsys):
    model = tmp_path / "local"
    assert main(["train-local", str(teacher_file), "--output", str(model), "--test-size", "0.2",
                 "--exact-only"]) == 0
    text = capsys.readouterr().out
    assert "Held-out evaluation" in text and "| exact | micro |" in text
    assert (model / "config.json").exists()
    data = _write(tmp_path / "q.jsonl", [{"query": "Write a poem about a haunted lighthouse."}])
    assert main(["tag", data, "--backend", "local", "--model", str(model), "--output", str(tmp_path / "t"),
                 "--no-cache"]) == 0
    row = json.loads((tmp_path / "t" / "q.jsonl").read_text())
    assert row["instag_status"] == "ok" and row["instag_tags"]
