"""The Gradio Space, for real: spaces/app.py launched on 127.0.0.1, driven with gradio_client and headless Chromium.

The tagger is the instant KeywordBackend (``INSTAG_BACKEND``), so the app, its queue and
its rendering are what is tested, not a model. Chromium tests skip when no chromium is
installed (``apt-get install chromium``).
"""

import asyncio
import base64
import json
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
from datasets import concatenate_datasets

import instag_hf
from instag_hf import schema
from instag_hf.analysis.metrics import complexity, diversity
from instag_hf.reporting.explore import Explorer
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
    sample = instag_hf.load_sample("chat")
    tagged = tagger.map(sample)
    tagged.save_to_disk(str(folder / "chat"))
    tagged.select(range(30)).save_to_disk(str(folder / "chat_head"))  # a subset, to compare with
    concatenate_datasets([tagged, tagged]).save_to_disk(str(folder / "big"))  # over INSTAG_SPACE_MAX_ROWS
    tagged.select([]).to_parquet(str(folder / "empty.parquet"))
    sample.save_to_disk(str(folder / "untagged"))
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
           "INSTAG_SPACE_MAX_BATCH": "4", "INSTAG_SPACE_MAX_ROWS": "100", "INSTAG_SPACE_MAX_UPLOAD_MB": "1",
           "INSTAG_SPACE_MAX_UPLOAD_ROWS": "12", "INSTAG_SPACE_PAGE_ROWS": "4"}
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


def _records(value) -> list[dict]:
    """A Dataframe output as gradio_client returns it, as one dict per row."""
    return [dict(zip(value["headers"], row)) for row in value["data"]]


def test_tag_table_endpoint(client, data_dir):
    folder, tagged = data_dir
    chat = str(folder / "chat")
    note, table = client.predict(chat, "default", "train", "auto", "", api_name="/tag_table")
    records = _records(table)
    expected = Explorer(tagged).tag_table()
    assert [(r["tag"], r["rows"]) for r in records] == [(e["tag"], e["rows"]) for e in expected]
    assert records[0]["share %"] == pytest.approx(round(100 * expected[0]["share"], 2))
    assert f"**{len(tagged):,} rows**" in note and "raw tags" in note and "sample" not in note
    needle = expected[0]["tag"][:3].lower()
    _, found = client.predict(chat, "default", "train", "raw", needle, api_name="/tag_table")
    assert found["data"] and all(needle in r["tag"].lower() for r in _records(found))
    note, table = client.predict(str(folder / "big"), "", "train", "auto", "", api_name="/tag_table")
    assert "random sample of 100 of its 180 rows" in note and "**100 rows**" in note
    for source, view, message in ((chat, "normalized", "no normalized tags"),
                                  (str(folder / "empty.parquet"), "auto", "the dataset is empty"),
                                  (str(folder / "untagged"), "auto", "no tags column"),
                                  ("/etc", "auto", "INSTAG_SPACE_DATA_DIRS"),
                                  ("upload:0123456789abcdef", "auto", "not an upload of this Space")):
        with pytest.raises(Exception, match=message):
            client.predict(source, "default", "train", view, "", api_name="/tag_table")


def test_rows_for_tag_endpoint(client, data_dir):
    folder, tagged = data_dir
    chat = str(folder / "chat")
    explorer = Explorer(tagged)
    tag, second = (t["tag"] for t in explorer.tag_table(limit=2))
    note, rows, cooc = client.predict(chat, "default", "train", "auto", [tag], "all", 1, api_name="/rows_for_tag")
    want = explorer.rows_for_tags([tag], page_size=4)
    got = _records(rows)
    assert f"**{want.total:,} rows** carry `{tag}`" in note and len(got) == len(want.rows)
    assert [r["row"] for r in got] == [r["row"] for r in want.rows]
    assert got[0]["query"] == want.rows[0]["query"][:600] + (" …" if len(want.rows[0]["query"]) > 600 else "")
    assert f"page 1 of {want.pages}" in note and want.pages > 1
    assert got[0]["tags"] == ", ".join(want.rows[0]["tags"]) and got[0]["status"] == want.rows[0]["status"]
    assert [(c["tag"], c["rows"]) for c in _records(cooc)] == [(c["tag"], c["rows"]) for c in want.cooccurring]
    for mode in ("all", "any"):
        note, rows, _ = client.predict(chat, "default", "train", "auto", [tag, second], mode, 1,
                                       api_name="/rows_for_tag")
        assert f"**{explorer.rows_for_tags([tag, second], mode).total:,} rows** carry {mode} of" in note
    note, rows, _ = client.predict(chat, "default", "train", "auto", [tag, second], "any", 2,
                                   api_name="/rows_for_tag")
    page2 = explorer.rows_for_tags([tag, second], "any", page=2, page_size=4)
    assert f"page 2 of {page2.pages}" in note and [r["row"] for r in _records(rows)] == [r["row"] for r in page2.rows]
    with pytest.raises(Exception, match=f"'{tag}x' is not in this dataset's raw tags; did you mean '{tag}'"):
        client.predict(chat, "default", "train", "auto", [tag + "x"], "all", 1, api_name="/rows_for_tag")
    with pytest.raises(Exception, match="choose at least one tag"):
        client.predict(chat, "default", "train", "auto", [], "all", 1, api_name="/rows_for_tag")
    with pytest.raises(Exception, match="no tags column"):
        client.predict(str(folder / "untagged"), "", "train", "auto", [tag], "all", 1, api_name="/rows_for_tag")


def test_compare_endpoint(client, data_dir):
    folder, tagged = data_dir
    note, only_a, only_b, heatmap, scatter = client.predict(
        str(folder / "chat"), "", str(folder / "chat_head"), "", "train", "auto", api_name="/compare")
    full, head = Explorer(tagged), Explorer(tagged.select(range(30)))
    only = {t["tag"] for t in full.tag_table()} - {t["tag"] for t in head.tag_table()}
    assert {r["tag"] for r in _records(only_a)} == only and _records(only_b) == []
    share = len(head.tag_table()) / len(full.tag_table())
    assert f"| coverage of the other's tags | 100.0% | {100 * share:.1f}% |" in note
    assert Path(heatmap).read_bytes().startswith(b"\x89PNG")
    points = {row[0]: row[1:3] for row in scatter["data"]}  # both datasets marked on the plot
    assert points == {"chat": [len(full.tag_table()), pytest.approx(full.metrics().complexity, abs=1e-3)],
                      "chat_head": [len(head.tag_table()), pytest.approx(head.metrics().complexity, abs=1e-3)]}
    with pytest.raises(Exception, match="two different datasets"):
        client.predict(str(folder / "chat"), "", str(folder / "chat"), "", "train", "auto", api_name="/compare")
    with pytest.raises(Exception, match="no tags column"):
        client.predict(str(folder / "chat"), "", str(folder / "untagged"), "", "train", "auto", api_name="/compare")


def test_tag_file_endpoint(client, tmp_path):
    rows = [{"instruction": q, "input": ""} for q in (QUERY, "Translate this email to French", "", "Sort a list")]
    good = tmp_path / "mine.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in rows * 4))  # 16 rows: over the 12-row upload limit
    note, download, handle = client.predict(gradio_client.handle_file(str(good)), api_name="/tag_file")
    assert handle.startswith("upload:") and "random sample of 12" in note and "Tagged 12 rows" in note
    lines = [json.loads(line) for line in Path(download).read_text().splitlines()]
    assert len(lines) == 12 and all(schema.TAGS in r and schema.STATUS in r for r in lines)
    by_query = {r["instruction"]: r for r in lines}
    if QUERY in by_query:
        assert [t["tag"] for t in by_query[QUERY][schema.TAGS]] == [t["tag"] for t in keyword_tags(QUERY)]
    note, table = client.predict(handle, "", "train", "auto", "", api_name="/tag_table")
    assert "**12 rows**" in note and table["data"]
    bad = {"not_json.jsonl": "this is { not json\n", "no_queries.jsonl": '{"number": 1}\n',
           "empty.jsonl": "", "notes.txt": "hello\n", "big.jsonl": "x" * (1024 * 1024 + 10)}
    messages = {"not_json.jsonl": "not_json.jsonl is not a dataset", "empty.jsonl": "the dataset has no rows",
                "no_queries.jsonl": r"Could not find the user queries.*Columns seen: \['number'\]",
                "notes.txt": "Invalid file type", "big.jsonl": "exceeds the maximum file size"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(Exception, match=messages[name]):
            client.predict(gradio_client.handle_file(str(tmp_path / name)), api_name="/tag_file")


class Browser:
    """Headless Chromium driven over the DevTools protocol (aiohttp's websocket client): one page, real
    clicks and typing. Use as ``async with Browser(url, profile) as page``."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--remote-debugging-port=0"]

    def __init__(self, url: str, profile: Path, size: tuple[int, int] = (1280, 1400)):
        self.url, self.profile, self.size, self._id = url, profile, size, 0

    async def __aenter__(self):
        import aiohttp

        self.proc = subprocess.Popen([CHROMIUM, *self.FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={self.size[0]},{self.size[1]}", self.url],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.2)
        port = port_file.read_text().split()[0]
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                pages = [t for t in json.load(response) if t["type"] == "page"]
            if pages or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()
        await self.session.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def call(self, method: str, **params):
        self._id += 1
        await self.ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=60)
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait(self, expression: str, what: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while not await self.js(expression):
            if time.monotonic() > deadline:
                text = await self.js("document.body.innerText")
                raise AssertionError(f"timed out waiting for {what}; the page says:\n{(text or '')[:3000]}")
            await asyncio.sleep(0.25)

    async def click(self, element: str, what: str):
        """A real mouse click at the middle of the element the JS expression ``element`` finds."""
        await self.wait(f"!!({element})", what)
        x, y = await self.js(f"(() => {{ const e = {element}; e.scrollIntoView({{block: 'center'}}); "
                             "const r = e.getBoundingClientRect(); "
                             "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def type(self, element: str, text: str, what: str):
        await self.click(element, what)
        await self.call("Input.insertText", text=text)

    async def screenshot(self, path: Path, height: int | None = None) -> Path:
        metrics = await self.call("Page.getLayoutMetrics")
        full = int(metrics["cssContentSize"]["height"])
        clip = {"x": 0, "y": 0, "width": self.size[0], "height": min(full, height or full), "scale": 1}
        shot = await self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def _chip_pixels(path: Path) -> int:
    from PIL import Image

    colors = Image.open(path).convert("RGB").getcolors(maxcolors=1 << 20) or []
    return sum(count for count, rgb in colors if rgb == CHIP_RGB)


async def settled_screenshot(page, path: Path, height: int, tries: int = 40) -> Path:
    """A screenshot once the tag chips are painted: on a loaded machine Gradio may still show its
    pending overlay (dimmed output) after the chips are in the DOM."""
    for _ in range(tries):
        await page.screenshot(path, height=height)
        if _chip_pixels(path) > 1000:
            break
        await asyncio.sleep(0.5)
    return path


def _by_text(selector: str, text: str) -> str:
    """A JS expression for the first element matching ``selector`` whose text is ``text``."""
    return (f"[...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText.trim() === {json.dumps(text)})")


def _inner_text(elem_id: str) -> str:
    return f"(document.getElementById({json.dumps(elem_id)}) || {{innerText: ''}}).innerText"


async def explore_in_browser(page: Browser, source: str, tag: str, expect: str, shot: Path) -> Path:
    """In the Explore tab: type ``source``, load it, click ``tag`` in the tag table, wait for a row showing
    ``expect``; the screenshot of the page goes to ``shot``."""
    await page.click(_by_text("button[role=tab]", "Explore a dataset"), "the Explore tab")
    await page.type("document.querySelector('#instag-x-source textarea, #instag-x-source input')", source,
                    "the dataset box")
    await page.click("document.querySelector('#instag-load')", "the Load button")
    await page.wait(f"{_inner_text('instag-summary')}.includes('Click a tag')", "the dataset summary")
    cell = _by_text("#instag-tag-table .body-cell, #instag-tag-table td", tag)
    await page.click(cell, f"the tag {tag!r} in the tag table")
    await page.wait(f"{_inner_text('instag-rows-note')}.includes('rows carry')", "the rows of the tag")
    await page.wait(f"{_inner_text('instag-rows')}.replace(/\\s+/g, ' ').includes({json.dumps(expect)})",
                    f"a row reading {expect!r}")
    await page.js("window.scrollTo(0, 0)")
    return await page.screenshot(shot)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (see scripts/install.sh)")
def test_the_page_tags_a_query_and_explores_a_dataset(server, data_dir, tmp_path):
    """One page load: ?q= tags a query on load; then typing a dataset path, loading it and clicking a tag
    shows the tag's rows. Screenshots stay in tmp_path (space.png, explorer.png) as artefacts."""
    from PIL import Image

    folder, tagged = data_dir
    explorer = Explorer(tagged)
    tag = explorer.tag_table(limit=1)[0]["tag"]
    first = explorer.rows_for_tags([tag]).rows[0]["query"]
    expect = " ".join(first.split())[:40].strip()
    url = server["url"] + "?q=" + QUERY.replace(" ", "+")

    async def scenario():
        async with Browser(url, tmp_path / "profile") as page:
            await page.wait("document.querySelectorAll('#instag-result .instag-tag').length > 0", "the tag chips")
            dom = await page.js("document.body.innerHTML")
            first_shot = await settled_screenshot(page, tmp_path / "space.png", height=1400)
            explored = await explore_in_browser(page, str(folder / "chat"), tag, expect, tmp_path / "explorer.png")
            rows = await page.js(_inner_text("instag-rows"))
            return dom, first_shot, explored, rows

    dom, shot, explored, rows = asyncio.run(scenario())
    assert "Query (at most 4,000 characters)" in dom and "refused" in dom  # the box and its limit
    assert 'data-status="ok"' in dom
    for item in keyword_tags(QUERY):
        assert f">{item['tag']}</span>" in dom
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20)
    assert len(colors) > 100 and max(count for count, _ in colors) < 0.97 * image.size[0] * image.size[1]
    assert sum(count for count, rgb in colors if rgb == CHIP_RGB) > 1000  # the tag chips are on screen
    assert explored.stat().st_size > 20_000 and Image.open(explored).size[0] == 1280
    assert tag in rows and "ok" in rows


def test_the_deployed_space_carries_the_explorer(tmp_path):
    from instag_hf.publish.space import write_space

    written = write_space(tmp_path / "space", app_dir=ROOT / "spaces")
    assert {"app.py", "requirements.txt", "instag_hf/reporting/explore.py", "README.md"} <= set(written)


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
