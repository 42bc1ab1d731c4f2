"""A rerun of the same command after a failed run asks again exactly the rows that failed."""

import json

import pytest

from instag_hf.cli.main import main
from support.server import Faults, FakeChatServer


def _rows(path, n=20):
    path.write_text("".join(json.dumps({"instruction": f"Write a poem about topic number {i} and rivers",
                                        "input": ""}) + "\n" for i in range(n)))
    return path


def _tagged(out, name="data"):
    return [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]


def test_rerun_after_a_down_backend_retries_only_the_failed_rows(tmp_path, monkeypatch, capsys):
    data = _rows(tmp_path / "data.jsonl")
    log = tmp_path / "asked.txt"
    command = ["tag", str(data), "--backend", "instag_hf.testing:KeywordBackend", "--output", str(tmp_path / "out"),
               "--cache-dir", str(tmp_path / "requests")]
    monkeypatch.setenv("INSTAG_TEST_LOG", str(log))
    monkeypatch.setenv("INSTAG_TEST_FAIL", "topic number 1[0-9]")  # 10 of 20 rows fail
    assert main(command) == 0
    first = _tagged(tmp_path / "out")
    assert sum(r["instag_status"] == "backend_error" for r in first) == 10
    asked_first = len(log.read_text().splitlines())

    monkeypatch.delenv("INSTAG_TEST_FAIL")
    capsys.readouterr()
    assert main(command) == 0
    again = _tagged(tmp_path / "out")
    assert [r["instag_status"] for r in again] == ["ok"] * 20
    assert len(log.read_text().splitlines()) - asked_first == 10  # exactly the failed ones
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["stats"]
    assert summary["rows"] == 20 and summary["requests"] == 10 and summary["cache_hits"] == 10

    capsys.readouterr()
    assert main(command) == 0  # nothing failed since: datasets' own cache serves the same output
    assert len(log.read_text().splitlines()) - asked_first == 10
    out = capsys.readouterr().out
    assert "20 rows (20 served by datasets' cache" in out
    assert _tagged(tmp_path / "out") == again


def test_rerun_against_a_server_that_came_back(tmp_path, capsys):
    data = _rows(tmp_path / "data.jsonl", 8)
    with FakeChatServer(Faults()) as server:
        url = server.url
    # the server is gone: every request fails to connect
    command = ["tag", str(data), "--backend", "openai", "--base-url", url, "--max-retries", "0", "--timeout", "2",
               "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "requests")]
    assert main(command) == 0
    assert {r["instag_status"] for r in _tagged(tmp_path / "out")} == {"backend_error"}
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        server = FakeChatServer(Faults(), port=port).start()
    except OSError:
        pytest.skip("the port was taken by another process meanwhile")
    try:
        assert main(command) == 0
        assert [r["instag_status"] for r in _tagged(tmp_path / "out")] == ["ok"] * 8
        assert server.stats()["requests"] >= 8
    finally:
        server.stop()
