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


# --- issue 24: statistics are strict JSON, printed text says n/a ------------------------------
def _strict(path):
    """Parse a file as strict JSON: NaN / Infinity are errors."""
    def reject(constant):
        raise ValueError(f"{path.name} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


def _all_failed(path, rows=3):
    return _raw_file(path, [{"q": f"q{i}", schema.TAGS: [], schema.STATUS: "backend_error"} for i in range(rows)])


def test_every_row_failed_gives_null_statistics_not_nan(tmp_path, capsys):
    data = _all_failed(tmp_path / "failed.jsonl")
    assert main(["analyze", str(data), "--output", str(tmp_path / "an")]) == 0
    printed = capsys.readouterr().out
    assert "nan" not in printed.lower() and "| n/a |" in printed
    metrics = _strict(tmp_path / "an" / "metrics.json")
    assert metrics["datasets"][0]["coverage"] is None and metrics["datasets"][0]["tagged_rows"] == 0

    assert main(["sample", str(data), "-n", "2", "--output", str(tmp_path / "sa")]) == 0
    printed = capsys.readouterr().out
    assert "nan" not in printed.lower() and "n/a of the pool's" in printed
    selection = _strict(tmp_path / "sa" / "selection.json")
    assert selection["coverage"] is None and selection["js_divergence"] is None
    assert "nan" not in (tmp_path / "sa" / "selection.md").read_text().lower()

    assert main(["sample", str(data), "-n", "2", "--compare", "cfd,random", "--output", str(tmp_path / "cmp")]) == 0
    assert "nan" not in capsys.readouterr().out.lower()
    _strict(tmp_path / "cmp" / "comparison.json")


def test_strict_json_helper_turns_non_finite_numbers_into_null(tmp_path):
    import numpy as np

    from instag_hf.strict_json import dumps, finite, write_json

    value = {"a": float("nan"), "b": [1.5, float("inf"), np.float32("nan"), np.int64(3)],
             2: (np.array([1.0, -np.inf]),), "ok": True, "none": None, "text": "NaN"}
    assert finite(value) == {"a": None, "b": [1.5, None, None, 3], "2": [[1.0, None]], "ok": True, "none": None,
                             "text": "NaN"}
    assert json.loads(dumps(value)) == finite(value)
    path = write_json(tmp_path / "s.json", {"x": float("-inf")})
    assert _strict(path) == {"x": None}


def test_report_objects_give_json_ready_dicts():
    from instag_hf.selection.report import selection_report

    failed = Dataset.from_dict({schema.TAGS: [[], []], schema.STATUS: ["parse_error", "backend_error"]},
                               features=Features({schema.TAGS: List(schema.TAG_ITEM), schema.STATUS: Value("string")}))
    analysis = analyze({"a": failed, "b": failed})
    json.dumps(analysis.as_dict(), allow_nan=False)
    assert analysis.as_dict()["recall"]["matrix"] == [[None, None], [None, None]]
    report = selection_report(failed, [0])
    assert report.as_dict()["coverage"] is None and report.as_dict()["js_divergence"] is None
    json.dumps(report.as_dict(), allow_nan=False)
