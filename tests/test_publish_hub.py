"""push_to_hub / push_space / `instag push|space` at the HfApi boundary (a recording fake; no network)."""

import fnmatch
import io
import json
import logging
import re

import huggingface_hub
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

import instag_hf
from instag_hf import schema
from instag_hf.cli.main import main
from instag_hf.publish import (
    MissingTokenError,
    UploadError,
    push_space,
    push_to_hub,
    redact,
    upload_publication,
)
from support.fake_hub import RecordingHub

TOKEN = "hf_FakeTokenForTests0123456789abcdef"
KEYWORD = "instag_hf.testing:KeywordBackend"


@pytest.fixture(scope="module")
def tagger():
    return instag_hf.Tagger(backend=KEYWORD, use_cache=False, progress=False)


@pytest.fixture(scope="module")
def tagged(tagger):
    return tagger.map(instag_hf.load_sample("alpaca"))


@pytest.fixture
def hub(monkeypatch):
    hub = RecordingHub()
    monkeypatch.setattr(huggingface_hub, "HfApi", hub.api)
    return hub


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    assert huggingface_hub.get_token() is None


@pytest.fixture
def env_token(monkeypatch, no_token):
    monkeypatch.setenv("HF_TOKEN", TOKEN)


@pytest.fixture
def logs(caplog):
    """Every record of the instag_hf loggers (they do not propagate to the root logger)."""
    logger = logging.getLogger("instag_hf")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="instag_hf")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture
def private_tmp(monkeypatch, tmp_path):
    """Temporary folders of the code under test go here, to check that they are cleaned up."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _assert_no_token(*texts):
    for text in texts:
        data = text if isinstance(text, bytes) else str(text).encode()
        assert TOKEN.encode() not in data


def _all_bytes(folder):
    return [p.read_bytes() for p in folder.rglob("*") if p.is_file()]


def test_push_uploads_every_config_card_and_plot_in_one_commit(hub, env_token, tagged, tagger, private_tmp, logs,
                                                                capsys):
    subset, report = instag_hf.sample(tagged, 15, return_report=True)
    result = push_to_hub("me/alpaca-tags", tagged, tagger=tagger, subsets={"selected_cfd_15": (subset, report)},
                         private=True, license="apache-2.0")
    assert hub.names() == ["HfApi", "create_repo", "list_repo_files", "upload_folder", "create_commit"]
    assert hub.calls[0][1]["library_name"] == "instag_hf" and set(hub.tokens) == {TOKEN}
    create = hub.calls[1][1]
    assert create["repo_type"] == "dataset" and create["exist_ok"] is True and create["private"] is True
    assert len(hub.commits) == 1
    files = hub.files("me/alpaca-tags")
    assert sorted(files) == sorted(result.files)
    upload = hub.calls[3][1]  # the upload's own patterns: exactly our files, stale ones under our folders
    assert sorted(upload["allow_patterns"]) == sorted(result.files)
    assert upload["delete_patterns"] == ["data/default/*", "data/tag_vocabulary/*", "data/selected_cfd_15/*",
                                         "plots/*"]
    card = DatasetCard(files["README.md"].decode())
    assert card.data.license == "apache-2.0"
    configs = {c["config_name"]: c for c in card.data.configs}
    assert list(configs) == ["default", "tag_vocabulary", "selected_cfd_15"]
    rows = {"default": len(tagged), "selected_cfd_15": 15}
    for name, config in configs.items():
        matched = [f for f in files if fnmatch.fnmatch(f, config["data_files"][0]["path"])]
        assert matched, name
        if name in rows:
            assert sum(pq.read_table(io.BytesIO(files[f])).num_rows for f in matched) == rows[name]
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card.text)
    assert links and all(link in files and files[link].startswith(b"\x89PNG") for link in links)
    assert sorted(links) == sorted(f for f in files if f.startswith("plots/"))
    assert "| backend | `keyword` |" in card.text and "### `selected_cfd_15`" in card.text
    assert result.commit_url.endswith(result.commit_oid) and result.folder is None
    assert not list(private_tmp.iterdir())  # the staging folder is gone after a successful upload
    out = capsys.readouterr()
    _assert_no_token(*files.values(), out.out, out.err, logs.text, repr(result))


def test_a_second_push_removes_stale_shards_but_nothing_else(hub, env_token, tagged):
    push_to_hub("me/t", tagged, plots=False, max_shard_size="10KB")
    hub.files("me/t")["notes/mine.md"] = b"uploaded by hand"
    first = {f for f in hub.files("me/t") if f.startswith("data/default/")}
    assert len(first) > 1
    result = push_to_hub("me/t", tagged.select(range(8)), plots=False)
    now = hub.files("me/t")
    assert {f for f in now if f.startswith("data/default/")} == {"data/default/train-00000-of-00001.parquet"}
    deleted_default = {f for f in result.deleted if f.startswith("data/default/")}
    assert deleted_default == first - {"data/default/train-00000-of-00001.parquet"}
    assert now["notes/mine.md"] == b"uploaded by hand"
    assert len(hub.commits) == 2 and any(op[0] == "CommitOperationDelete" for op in hub.commits[1]["operations"])


def test_missing_token_is_a_clear_error_before_anything_happens(hub, no_token, tagged, tmp_path, private_tmp):
    with pytest.raises(MissingTokenError, match="HF_TOKEN") as err:
        push_to_hub("me/t", tagged, local_dir=tmp_path / "local")
    assert "--dry-run" in str(err.value) and "Nothing was uploaded" in str(err.value)
    assert hub.calls == [] and not (tmp_path / "local").exists() and not list(private_tmp.iterdir())
    with pytest.raises(MissingTokenError, match="MY_HF_TOKEN"):
        push_to_hub("me/t", tagged, token_env="MY_HF_TOKEN")
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        push_to_hub("me/t", tagged, token_env=TOKEN + "-x")
    with pytest.raises(MissingTokenError):
        push_space("me/space", token="  ")
    assert hub.calls == []


def test_a_failed_upload_keeps_the_files_and_never_shows_the_token(hub, env_token, tagged, logs, capsys):
    hub.fail["create_commit"] = RuntimeError(
        f"500 Server Error for url https://huggingface.co/api/datasets/me/t/commit/main "
        f"(request headers: Authorization: Bearer {TOKEN}; token={TOKEN})")
    with pytest.raises(UploadError) as err:
        push_to_hub("me/t", tagged)
    message = str(err.value)
    assert "500 Server Error" in message and "instag push" in message and str(err.value.folder) in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    folder = err.value.folder
    kept = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "README.md" in kept and any(k.startswith("data/default/") for k in kept)
    _assert_no_token(message, repr(err.value), capsys.readouterr().err, logs.text, *_all_bytes(folder))
    del hub.fail["create_commit"]
    retry = upload_publication(folder, "me/t")  # the same files, uploaded later
    assert sorted(hub.files("me/t")) == sorted(retry.files) and retry.folder == folder


def test_dry_run_needs_no_token_and_calls_nothing(hub, no_token, tagged, tmp_path):
    result = push_to_hub("me/t", tagged, dry_run=tmp_path / "dry")
    assert result.dry_run and hub.calls == []
    assert (tmp_path / "dry" / "README.md").is_file() and "dry run" in result.summary()


def test_cli_dry_run_then_upload_the_same_folder(hub, no_token, monkeypatch, tagged, tagger, tmp_path, capsys,
                                                logs):
    out = tmp_path / "tagged-out"
    tagged.save_to_disk(str(out / "alpaca"))
    (out / "summary.json").write_text(json.dumps({"tagger": tagger.describe(), "datasets": {}}))
    dry = tmp_path / "dry"
    assert main(["push", str(out / "alpaca"), "me/cli", "--dry-run", str(dry), "--select", "cfd:10",
                 "--select", "random:10", "--license", "mit", "--tag", "alpaca", "--source-column", "category"]) == 0
    printed = capsys.readouterr().out
    assert "tagger settings from" in printed and f"instag push {dry} me/cli" in printed
    card = DatasetCard((dry / "README.md").read_text())
    assert [c["config_name"] for c in card.data.configs] == ["default", "tag_vocabulary", "selected_cfd_10",
                                                           "selected_random_10"]
    assert "alpaca" in card.data.tags and card.data.license == "mit"
    assert "| prompt template | `teacher@1` |" in card.text and "uniform random sampling" in card.text
    assert "| `category=" in card.text and "plots/by_source/tag_recall.png" in card.text
    assert hub.calls == []

    assert main(["push", str(dry), "me/cli"]) == 2  # no token anywhere
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and hub.calls == []

    monkeypatch.setenv("MY_HF", TOKEN)
    assert main(["push", str(dry), "me/cli", "--token-env", "MY_HF"]) == 0
    captured = capsys.readouterr()
    assert "uploaded" in captured.out and "https://huggingface.co/datasets/me/cli/commit/" in captured.out
    uploaded = hub.files("me/cli")
    assert uploaded["README.md"] == (dry / "README.md").read_bytes()
    assert ".instag-publication.json" not in uploaded
    _assert_no_token(captured.out, captured.err, logs.text, *uploaded.values())

    hub.fail["create_repo"] = PermissionError(f"403 Forbidden: token {TOKEN} cannot write to me/cli")
    assert main(["push", str(dry), "me/cli", "--token-env", "MY_HF"]) == 1
    err = capsys.readouterr().err
    assert "403 Forbidden: token *** cannot" in err and str(dry) in err
    _assert_no_token(err)


def test_cli_push_reports_bad_options(tmp_path, tagged, capsys):
    tagged.save_to_disk(str(tmp_path / "d"))
    assert main(["push", str(tmp_path / "d"), "me/x", "--dry-run", str(tmp_path / "o"), "--select", "best:3"]) == 2
    assert "--select takes STRATEGY:N" in capsys.readouterr().err
    assert main(["push", str(tmp_path / "d"), "not-a-repo", "--dry-run", str(tmp_path / "o")]) == 2
    assert "owner/name" in capsys.readouterr().err


def test_space_dry_run_holds_the_app_and_the_package(no_token, tmp_path):
    result = push_space("me/space", dry_run=tmp_path / "space", dataset="me/alpaca-tags", title="My tagger")
    files = set(result.files)
    assert {"app.py", "README.md", "requirements.txt", "instag_hf/__init__.py", "instag_hf/publish/hub.py",
            "instag_hf/cards/dataset_card.md.j2", "instag_hf/data/sample_chat.jsonl"} <= files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    readme = (tmp_path / "space" / "README.md").read_text()
    header = huggingface_hub.SpaceCard(readme).data
    assert header.title == "My tagger" and header.sdk == "gradio" and header.app_file == "app.py"
    assert result.variables == {"INSTAG_DATASET": "me/alpaca-tags"}
    assert all((tmp_path / "space" / f).is_file() for f in files)


def test_space_upload_creates_the_space_commits_once_and_sets_variables(hub, env_token, logs):
    result = push_space("me/space", dataset="me/alpaca-tags", variables={"INSTAG_MODEL": "Qwen/Qwen2.5-0.5B",
                                                                         "INSTAG_API_KEY_ENV": "OPENAI_API_KEY"})
    assert hub.names() == ["HfApi", "create_repo", "list_repo_files", "upload_folder", "create_commit",
                           "add_space_variable",
                           "add_space_variable", "add_space_variable"]
    create = hub.calls[1][1]
    assert create["repo_type"] == "space" and create["space_sdk"] == "gradio" and create["exist_ok"]
    files = hub.files("me/space", "space")
    assert sorted(files) == sorted(result.files) and "app.py" in files and "instag_hf/tagging/tagger.py" in files
    assert hub.variables["me/space"]["INSTAG_DATASET"] == "me/alpaca-tags"
    assert result.url == "https://huggingface.co/spaces/me/space"
    _assert_no_token(logs.text, *files.values())


def test_space_refuses_secret_looking_variables_before_any_call(hub, env_token, capsys):
    for variables in ({"OPENAI_API_KEY": "x"}, {"INSTAG_NOTE": "hf_abcdefghijklmnop"}, {"bad name": "x"}):
        with pytest.raises(ValueError):
            push_space("me/space", variables=variables)
    assert main(["space", "me/space", "--var", "HF_TOKEN=abc"]) == 2
    err = capsys.readouterr().err
    assert "looks like a secret" in err and "abc" not in err
    assert hub.calls == []


def test_cli_space_dry_run(tmp_path, capsys, no_token):
    assert main(["space", "me/space", "--dry-run", str(tmp_path / "s"), "--dataset", "me/d",
                 "--var", "INSTAG_BACKEND=openai"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "INSTAG_DATASET=me/d" in out and "INSTAG_BACKEND=openai" in out
    assert (tmp_path / "s" / "app.py").is_file()


def test_redact():
    assert redact(f"x {TOKEN} y", [TOKEN]) == "x *** y"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact("hf_abcdefghijklmnopqrstu leaked") == "hf_*** leaked"
    assert schema.TAGS in redact(schema.TAGS)
