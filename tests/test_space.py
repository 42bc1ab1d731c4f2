"""The Gradio Space, for real: spaces/app.py launched on 127.0.0.1, driven with gradio_client and headless Chromium.

The tagger is the instant KeywordBackend (``INSTAG_BACKEND``), so the app, its queue and
its rendering are what is tested, not a model. Chromium tests skip when no chromium is
installed (``apt-get install chromium``).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

import instag_hf
from instag_hf import schema
from instag_hf.analysis.metrics import complexity, diversity
from instag_hf.testing import keyword_tags

gradio = pytest.importorskip("gradio", reason="the Space needs gradio (pip install 'instag_hf[space]')")
gradio_client = pytest.importorskip("gradio_client", reason="gradio_client comes with gradio")

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "spaces" / "app.py"
KEYWORD = "instag_hf.testing:KeywordBackend"
QUERY = "Write a Python function that validates email addresses"
CHIP_RGB = (224, 231, 255)  # the tag chips' background, #e0e7ff
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("space_data")
    tagger = instag_hf.Tagger(backend=KEYWORD, use_cache=False, progress=False)
    tagged = tagger.map(instag_hf.load_sample("chat"))
    tagged.save_to_disk(str(folder / "chat"))
    return folder, tagged


@pytest.fixture(scope="module")
def server(data_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("space_run")
    port = _free_port()
    prompts = work / "prompts.log"
    env = {**os.environ, "INSTAG_BACKEND": KEYWORD, "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "INSTAG_SPACE_DATA_DIRS": str(data_dir[0]), "INSTAG_HF_HOME": str(work / "home"),
           "GRADIO_TEMP_DIR": str(work / "gradio"), "INSTAG_TEST_LOG": str(prompts), "INSTAG_TEST_DELAY": "0.05",
           "INSTAG_SPACE_MAX_BATCH": "4"}
    env.pop("INSTAG_DATASET", None)
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, str(APP)], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the Space exited with {proc.returncode}:\n{(work / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the Space did not start in 120 s:\n{(work / 'server.log').read_text()}")
            time.sleep(0.3)
        yield {"url": url, "log": work / "server.log", "prompts": prompts, "work": work}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server["url"], verbose=False)


def test_tag_a_query_through_the_api(client):
    html, result = client.predict(QUERY, api_name="/tag")
    assert result["status"] == schema.OK and result["tags"] == keyword_tags(QUERY)
    assert result["query_chars"] == len(QUERY)
    for item in keyword_tags(QUERY):
        assert f">{item['tag']}</span>" in html
    assert 'data-status="ok"' in html


def test_queries_are_length_limited_and_html_is_escaped(client):
    _, result = client.predict("word " * 801, api_name="/tag")  # 4,005 characters
    assert result["status"] == "rejected" and "4,000" in result["error"] and result["tags"] == []
    _, result = client.predict("a" * 4000, api_name="/tag")
    assert result["status"] != "rejected"
    _, result = client.predict("   ", api_name="/tag")
    assert result["status"] == schema.EMPTY_QUERY
    html, _ = client.predict("Explain <script>alert(document.cookie)</script> injection", api_name="/tag")
    assert "<script>" not in html


def test_several_visitors_at_once_share_one_tagger(client, server):
    queries = [f"Summarize chapter {word} of the handbook about gardening"
               for word in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")]
    queries += queries[:4]  # repeated queries come from the shared request cache
    before = len(server["prompts"].read_text().splitlines()) if server["prompts"].exists() else 0
    jobs = [client.submit(q, api_name="/tag") for q in queries]
    stats = client.submit("", "default", "train", api_name="/stats")  # another event is served meanwhile
    results = [job.result(timeout=60) for job in jobs]
    for query, (_, result) in zip(queries, results):
        assert result["tags"] == keyword_tags(query)
    with pytest.raises(Exception, match="Hub dataset id"):
        stats.result(timeout=60)
    sent = len(server["prompts"].read_text().splitlines()) - before
    assert sent == len(set(queries))  # each distinct query reached the backend once
    log = server["log"].read_text()
    assert log.count("tagging backend:") == 1  # the tagger (and its model) was created once


def test_dataset_statistics_of_a_local_tagged_dataset(client, data_dir):
    folder, tagged = data_dir
    markdown, gallery, summary = client.predict(str(folder / "chat"), "default", "train", api_name="/stats")
    assert summary["rows"] == len(tagged) and summary["diversity"] == diversity(tagged)
    assert summary["complexity"] == pytest.approx(complexity(tagged))
    assert summary["statuses"] == {s: tagged[schema.STATUS].count(s) for s in set(tagged[schema.STATUS])}
    assert summary["tags_column"] == schema.TAGS and summary["top_tags"]
    assert f"| rows | {len(tagged):,} |" in markdown and "parse-failure rate" in markdown
    images = [Path(item["image"]) for item in gallery]
    assert len(images) >= 4 and all(p.read_bytes().startswith(b"\x89PNG") for p in images)
    captions = [item["caption"] for item in gallery]
    assert "Diversity against complexity" in captions


def test_local_paths_outside_the_allowed_folders_are_refused(client, tmp_path):
    (tmp_path / "x.jsonl").write_text('{"instag_tags": []}\n')
    for source in (str(tmp_path / "x.jsonl"), "/etc", "not a dataset"):
        with pytest.raises(Exception, match="INSTAG_SPACE_DATA_DIRS|Hub dataset id"):
            client.predict(source, "default", "train", api_name="/stats")


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args]
    return subprocess.run(command, capture_output=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (see scripts/install.sh)")
def test_the_page_renders_the_tag_box_and_a_result(server, tmp_path):
    from PIL import Image

    url = server["url"] + "?q=" + QUERY.replace(" ", "+")
    shot = tmp_path / "space.png"
    done = _chromium(["--window-size=1280,1400", f"--screenshot={shot}", url], tmp_path / "profile1")
    assert done.returncode == 0 and shot.is_file(), done.stderr.decode()[-2000:]
    assert shot.stat().st_size > 20_000
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1400)
    colors = image.getcolors(maxcolors=1 << 20)
    assert len(colors) > 100  # not a blank page
    assert max(count for count, _ in colors) < 0.97 * 1280 * 1400
    chip_pixels = sum(count for count, rgb in colors if rgb == CHIP_RGB)
    assert chip_pixels > 1000  # the tag chips are on screen

    dom = _chromium(["--dump-dom", url], tmp_path / "profile2").stdout.decode()
    assert "Query (at most 4,000 characters)" in dom and "refused" in dom  # the box and its limit
    assert 'data-status="ok"' in dom
    for item in keyword_tags(QUERY):
        assert f">{item['tag']}</span>" in dom


def test_space_metadata_and_requirements():
    text = (ROOT / "spaces" / "README.md").read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert header["sdk"] == "gradio" and (ROOT / "spaces" / header["app_file"]).is_file()
    assert header["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0]
    assert len(header["short_description"]) <= 60
    requirements = (ROOT / "spaces" / "requirements.txt").read_text()
    for package in ("datasets", "transformers", "torch", "matplotlib", "jinja2"):
        assert package in requirements
    assert "gradio" not in requirements.replace("# The Space's dependencies besides gradio (the Space SDK installs it)",
                                                "")
