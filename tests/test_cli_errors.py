"""Bad input on the command line: one line on stderr naming the file (and line), exit status 2, no traceback."""

import json
import subprocess
import sys

import pytest

from instag_hf.cli.main import main

KEYWORD = ["--backend", "instag_hf.testing:KeywordBackend"]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("instag: "), err
    return lines[0]


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tagged(path):
    return jsonl(path, [{"q": "a", "instag_tags": [{"tag": "Math", "explanation": ""}], "instag_status": "ok"}])


def commands(data, tmp_path):
    """Every command that reads a dataset, on ``data``."""
    out = str(tmp_path / "out")
    return {
        "tag": ["tag", str(data), *KEYWORD, "--output", out, "--cache-dir", str(tmp_path / "c")],
        "normalize": ["normalize", str(data), "--output", out],
        "analyze": ["analyze", str(data), "--output", out],
        "sample": ["sample", str(data), "-n", "1", "--output", out],
        "compare": ["sample", str(data), "-n", "1", "--compare", "cfd,random", "--output", out],
        "push": ["push", str(data), "owner/name", "--dry-run", out],
        "eval": ["eval", str(data), "--gold-column", "instag_tags", "--exact-only"],
        "judge": ["judge", str(data), *KEYWORD, "--output", out],
        "distill": ["distill", str(data), "--output", out],
        "train-local": ["train-local", str(data), "--output", out],
    }


@pytest.mark.parametrize("command", ["tag", "normalize", "analyze", "sample", "compare", "push", "eval", "judge",
                                     "distill", "train-local"])
def test_an_empty_file_is_one_line_for_every_command(tmp_path, capsys, command):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(commands(empty, tmp_path)[command]) == 2
    line = one_line(capsys)
    assert str(empty) in line and "empty" in line


@pytest.mark.parametrize("content", ["", "\n\n  \n", "[]"])
def test_empty_files_of_every_kind(tmp_path, capsys, content):
    path = tmp_path / ("rows.json" if content == "[]" else "rows.jsonl")
    path.write_text(content)
    assert main(["analyze", str(path), "--output", str(tmp_path / "o")]) == 2
    line = one_line(capsys)
    assert str(path) in line and "empty" in line


@pytest.mark.parametrize("command", ["tag", "analyze", "normalize"])
def test_a_file_that_is_not_utf8_names_the_line(tmp_path, capsys, command):
    path = tmp_path / "latin1.jsonl"
    good = json.dumps({"instruction": "plain", "input": ""}).encode()
    bad = '{"instruction": "un café noir", "input": ""}'.encode("latin-1")
    path.write_bytes(good + b"\n" + good + b"\n" + bad + b"\n")
    assert main(commands(path, tmp_path)[command]) == 2
    line = one_line(capsys)
    assert f"{path}, line 3" in line and "UTF-8" in line and "iconv" in line


def test_a_malformed_jsonl_line_is_named(tmp_path, capsys):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"instruction": "a"}\n\n{"instruction": "b"}\n{"instruction": "c"\n{"instruction": "d"}\n')
    assert main(commands(path, tmp_path)["tag"]) == 2
    line = one_line(capsys)
    assert f"{path}, line 4" in line and "not valid JSON" in line
    not_object = jsonl(tmp_path / "numbers.jsonl", [{"a": 1}, 42])
    assert main(["analyze", str(not_object)]) == 2
    line = one_line(capsys)
    assert f"{not_object}, line 2" in line and "object" in line


def test_a_json_list_with_a_bad_item_and_a_broken_json_file(tmp_path, capsys):
    items = tmp_path / "items.json"
    items.write_text(json.dumps([{"a": "x"}, "oops"]))
    assert main(["analyze", str(items)]) == 2
    assert "item 1" in one_line(capsys)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"a": "x"},\n  {"a": \n]\n')
    assert main(["analyze", str(broken)]) == 2
    line = one_line(capsys)
    assert f"{broken}, line 4" in line


def test_missing_files_and_unknown_kinds(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nothing.jsonl")]) == 2
    assert "no such file" in one_line(capsys)
    odd = tmp_path / "data.txt"
    odd.write_text("hello")
    assert main(["analyze", str(odd)]) == 2
    line = one_line(capsys)
    assert str(odd) in line and ".jsonl" in line
    assert main(["analyze", "sample:nope"]) == 2
    assert "sample:alpaca" in one_line(capsys)


def test_normalize_on_an_untagged_file_says_what_to_do(tmp_path, capsys):
    plain = jsonl(tmp_path / "plain.jsonl", [{"instruction": "hi", "input": ""}])
    assert main(["normalize", str(plain), "--output", str(tmp_path / "o")]) == 2
    line = one_line(capsys)
    assert str(plain) in line and "'instag_tags'" in line and "instag tag" in line and "--tags-column" in line
    assert main(["sample", str(plain), "-n", "1", "--output", str(tmp_path / "o")]) == 2
    assert "--tags-column" in one_line(capsys)


@pytest.mark.parametrize("argv, option", [
    (["tag", "x.jsonl", "--limit", "-5"], "--limit"),
    (["tag", "x.jsonl", "--limit", "0"], "--limit"),
    (["tag", "x.jsonl", "--batch-size", "0"], "--batch-size"),
    (["tag", "x.jsonl", "--map-batch-size", "-1"], "--map-batch-size"),
    (["tag", "x.jsonl", "--concurrency", "0"], "--concurrency"),
    (["tag", "x.jsonl", "--timeout", "0"], "--timeout"),
    (["tag", "x.jsonl", "--max-retries", "-1"], "--max-retries"),
    (["demo", "--select", "0"], "--select"),
    (["sample", "x.jsonl", "-n", "0"], "-n/--n"),
    (["analyze", "x.jsonl", "--top", "-1"], "--top"),
    (["judge", "x.jsonl", "--cases", "0"], "--cases"),
    (["normalize", "x.jsonl", "--min-samples", "0"], "--min-samples"),
])
def test_non_positive_counts_are_rejected_by_argparse(capsys, argv, option):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "Traceback" not in err


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for argv in (["--debug", "analyze", str(empty)], ["analyze", str(empty), "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and "InputError" in err and err.strip().splitlines()[-1].startswith("instag: ")


def test_good_input_still_works(tmp_path, capsys):
    data = tagged(tmp_path / "tagged.jsonl")
    assert main(["analyze", str(data), "--output", str(tmp_path / "o")]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_the_installed_command_prints_one_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    done = subprocess.run([sys.executable, "-m", "instag_hf", "tag", str(empty), *KEYWORD, "--output",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 2
    expected = f"instag: {empty}: the file is empty; give a file with at least one row"
    assert done.stderr.strip().splitlines() == [expected]
