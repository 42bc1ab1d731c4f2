import json
import subprocess
import sys

import pytest

from instag_hf.cli.main import main
from instag_hf.samples import SAMPLES, load_sample

KEYWORD = ["--backend", "instag_hf.testing:KeywordBackend"]


def test_templates_lists_versioned_ids(capsys):
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    assert "teacher@1" in out and "vicuna_v1.1@1" in out and "chatml@1" in out


def test_tag_a_file_writes_dataset_jsonl_and_summary(tmp_path, capsys):
    data = tmp_path / "mine.jsonl"
    rows = [{"instruction": "Design a database schema for a library", "input": "", "output": "..."},
            {"instruction": "", "input": "", "output": "nothing asked"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["tag", str(data), *KEYWORD, "--output", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    lines = [json.loads(x) for x in (out / "mine.jsonl").read_text().splitlines()]
    assert [r["instag_status"] for r in lines] == ["ok", "empty_query"]
    assert (out / "mine" / "dataset_info.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["datasets"]["mine"]["rows"] == 2 and summary["datasets"]["mine"]["tagged_rows"] == 1
    assert summary["tagger"]["template"] == "teacher@1"
    assert "diversity" in capsys.readouterr().out


def test_unknown_layout_exits_2_with_a_helpful_message(tmp_path):
    data = tmp_path / "odd.jsonl"
    data.write_text(json.dumps({"foo": "x", "bar": "y"}) + "\n")
    done = subprocess.run([sys.executable, "-m", "instag_hf", "tag", str(data), *KEYWORD, "--output", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "'foo'" in done.stderr and "--query-column" in done.stderr
    ok = subprocess.run([sys.executable, "-m", "instag_hf", "tag", str(data), *KEYWORD, "--query-column", "foo",
                         "--output", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def check_demo_folder(out, rows, selected):
    """`instag demo`'s output folder, file by file."""
    from datasets import load_from_disk

    from instag_hf.normalize import TagMapping

    tagged = load_from_disk(str(out / "tagged"))
    assert len(tagged) == rows and set(tagged["source"]) == set(SAMPLES)
    assert {"messages", "instag_tags", "instag_status", "instag_norm_tags"} <= set(tagged.column_names)
    assert len((out / "tagged.jsonl").read_text().splitlines()) == rows
    mapping = TagMapping.load(out / "tag_mapping.json")
    norm = {t for row in tagged["instag_norm_tags"] for t in row}
    assert norm and norm <= set(mapping.vocabulary)
    assert "frequency" in (out / "normalization.md").read_text().lower()
    report = out / "report"
    assert {"report.md", "report.html", "metrics.json", "diversity_complexity.png", "tag_recall.png"} <= {
        p.name for p in report.iterdir()}
    assert "data:image/png;base64," in (report / "report.html").read_text()
    subset = load_from_disk(str(out / "selected"))
    assert len(subset) == selected and len((out / "selected.jsonl").read_text().splitlines()) == selected
    assert "coverage" in (out / "selection.md").read_text().lower()
    card = (out / "hub" / "README.md").read_text()
    assert card.startswith("---\n") and f"selected_cfd_{selected}" in card and "tag_mapping" in card
    for config in ("default", "tag_vocabulary", "tag_mapping", f"selected_cfd_{selected}"):
        assert list((out / "hub" / "data" / config).glob("*.parquet")), config
    for png in (out / "hub" / "plots").glob("*.png"):
        assert f"plots/{png.name}" in card
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == rows and summary["selected"] == selected
    return summary


def test_demo_runs_the_whole_pipeline_into_one_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", *KEYWORD, "--output", str(out), "--cache-dir", str(tmp_path / "c"), "--select", "30"]) == 0
    rows = sum(len(load_sample(n)) for n in SAMPLES)
    summary = check_demo_folder(out, rows, 30)
    assert summary["stats"]["rows"] == rows
    printed = capsys.readouterr().out
    assert str((out / "hub").resolve()) in printed and str((out / "report").resolve()) in printed
    compared = json.loads((out / "comparison" / "comparison.json").read_text())  # the demo compares strategies
    assert [r["strategy"] for r in compared["results"]] == ["random", "complexity", "diversity", "cfd", "mig"]
    assert "## Selection strategies compared" in (out / "hub" / "README.md").read_text()


def test_bundled_sample_covers_the_promised_mix():
    alpaca, chat = load_sample("alpaca"), load_sample("chat")
    assert 180 <= len(alpaca) + len(chat) <= 240
    multi = [m for m in chat["messages"] if sum(x["role"] == "user" for x in m) > 1]
    assert len(multi) >= 20
    cats = set(alpaca["category"]) | set(chat["category"])
    assert {"code", "math", "writing", "qa", "roleplay"} <= cats


@pytest.mark.slow
def test_demo_on_the_cpu_default(tmp_path):
    """README's main command, shortened: the real default backend end to end."""
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "instag_hf", "demo", "--limit", "4", "--max-new-tokens", "48",
                           "--select", "5", "--output", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    announced = next(line for line in done.stderr.splitlines() if "tagging backend:" in line)
    # the retrieval tagger uses no prompt template: the log (and the card) do not name one (issue 23)
    assert announced.endswith("retrieval (tags of the 20 nearest of fewshot_bank.jsonl, ranked; no language model)")
    summary = check_demo_folder(out, 8, 5)
    assert summary["tagger"]["backend"]["backend"] == "retrieval"
    assert summary["tagger"]["backend"]["method"].startswith("ranker")
    assert "these tags were not written by a language model" in (out / "hub" / "README.md").read_text()
