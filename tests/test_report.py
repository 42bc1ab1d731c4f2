import base64
import json
import re

import pytest
from datasets import Dataset, Features, List, Value

from instag_hf import schema
from instag_hf.cli.main import main
from instag_hf.analysis.metrics import analyze
from instag_hf.reporting.plots import PLOT_FILES
from instag_hf.reporting.report import Document, write_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def two():
    a = Dataset.from_dict({schema.NORM_TAGS: [["code", "python"], ["code", "sql"], ["math"]]})
    b = Dataset.from_dict({schema.NORM_TAGS: [["math", "algebra"], ["math"], ["poetry | verse"]]})
    return {"code set": a, "math set": b}


def _embedded(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_report_writes_markdown_html_json_and_pngs(tmp_path, two):
    files = write_report(analyze(two), tmp_path / "rep")
    assert set(files.plots) == set(PLOT_FILES)
    for path in files.plots.values():
        assert path.exists() and path.read_bytes().startswith(PNG)
    md = files.markdown.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(links) == sorted(PLOT_FILES.values())
    assert all((files.markdown.parent / link).exists() for link in links)
    assert "| code set | 3 | 3 | 4 | 66.7% | 1.67 |" in md
    assert "poetry \\| verse" in md  # a pipe in a tag does not break the table
    html = files.html.read_text()
    images = _embedded(html)
    assert len(images) == len(PLOT_FILES) and all(i.startswith(PNG) for i in images)
    assert "<table>" in html and "code set" in html and ".png\"" not in html
    data = json.loads(files.json.read_text())
    assert [d["name"] for d in data["datasets"]] == ["code set", "math set"]
    assert data["recall"]["matrix"][0][1] == pytest.approx(0.25)


def test_single_dataset_report_has_no_recall_map(tmp_path, two):
    files = write_report(analyze(two["code set"]), tmp_path)
    assert "recall" not in files.plots and not (tmp_path / PLOT_FILES["recall"]).exists()
    assert "Tag recall" not in files.markdown.read_text()
    assert len(_embedded(files.html.read_text())) == len(files.plots)


def test_report_without_plots(tmp_path, two):
    files = write_report(analyze(two), tmp_path, plots=False)
    assert files.plots == {} and not list(tmp_path.glob("*.png"))
    assert "![" not in files.markdown.read_text()


def test_document_renders_both_ways(tmp_path):
    image = tmp_path / "sub" / "x.png"
    image.parent.mkdir()
    image.write_bytes(PNG + b"rest")
    doc = Document("T").heading("H").text("a < b").table(["k", "v"], [["x", 1234], ["y", 0.5]]).image(image, "alt")
    md = doc.to_markdown(relative_to=tmp_path)
    assert md.startswith("# T\n") and "| x | 1,234 |" in md and "|---|---:|" in md and "](sub/x.png)" in md
    html = doc.to_html()
    assert "a &lt; b" in html and _embedded(html) == [PNG + b"rest"]


def _raw_file(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_analyze(tmp_path, capsys):
    first = _raw_file(tmp_path / "first.jsonl", [
        {"q": "a", schema.TAGS: [{"tag": "Coding", "explanation": ""}], schema.STATUS: "ok", "source": "s1"},
        {"q": "b", schema.TAGS: [], schema.STATUS: "parse_error", "source": "s2"},
    ])
    folder = tmp_path / "second"
    Dataset.from_dict({schema.TAGS: [[{"tag": "Math", "explanation": ""}, {"tag": "Coding", "explanation": ""}]],
                       schema.STATUS: ["ok"], "source": ["s1"]},
                      features=Features({schema.TAGS: List(schema.TAG_ITEM), schema.STATUS: Value("string"),
                                         "source": Value("string")})).save_to_disk(str(folder))
    out = tmp_path / "report"
    assert main(["analyze", str(first), str(folder), "--source-column", "source", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| first/s1 | 1 | 1 | 1 | 50.0% | 1.00 |" in printed and f"Wrote {out.resolve()}" in printed
    assert (out / "report.md").exists() and (out / "report.html").exists() and (out / "tag_recall.png").exists()
    assert json.loads((out / "metrics.json").read_text())["source_column"] == "source"


def test_cli_analyze_explains_untagged_input(tmp_path, capsys):
    data = _raw_file(tmp_path / "plain.jsonl", [{"instruction": "hi", "output": "hello"}])
    assert main(["analyze", str(data), "--output", str(tmp_path / "o")]) == 2
    assert "instag tag" in capsys.readouterr().err
