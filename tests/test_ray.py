"""The Ray Data path gives the same rows and results as the datasets path (local Ray, CPU)."""

import json
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

import instag_hf  # noqa: E402
from instag_hf import schema  # noqa: E402
from instag_hf.tagging.ray_data import tag_dataset_with_ray  # noqa: E402
from support.server import FakeChatServer  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             object_store_memory=200 * 1024**2)
    yield
    ray.shutdown()


def test_ray_and_datasets_paths_agree_on_the_bundled_chat_sample(local_ray, tmp_path):
    ds = instag_hf.load_sample("chat")
    with FakeChatServer() as server:
        def tagger(name):
            return instag_hf.Tagger(backend="openai", model="fake-tagger", base_url=server.url,
                                    cache_dir=str(tmp_path / name), progress=False)

        local = tagger("local").map(ds)
        context = ray.data.DataContext.get_current()
        before = context.execution_options.preserve_order
        distributed = tag_dataset_with_ray(ds, tagger("ray"), actors=2, batch_size=16)
        assert ray.data.DataContext.get_current() is context
        assert context.execution_options.preserve_order == before  # the user's global context is untouched
    assert distributed.features == local.features
    assert distributed.to_list() == local.to_list()
    assert set(local[schema.STATUS]) <= {"ok", "parse_error"}  # a query with no long word gets no keyword tag
    fmt = instag_hf.detect_format(ds.column_names)
    queries = {q.strip() for row in ds for q in fmt.extract(row) if q.strip()}
    assert len(server.requests_by_query) == len(queries)
    assert set(server.requests_by_query.values()) == {2}  # once per path, each with its own cache


def test_cli_on_ray_matches_the_datasets_path_on_the_bundled_alpaca_sample(tmp_path):
    def run(*extra):
        out = tmp_path / ("ray" if extra else "local")
        done = subprocess.run([sys.executable, "-m", "instag_hf", "tag", "sample:alpaca", "--backend",
                               "instag_hf.testing:KeywordBackend", "--map-batch-size", "16", *extra,
                               "--cache-dir", str(out / "cache"), "--output", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return [json.loads(line) for line in (out / "sample_alpaca.jsonl").read_text().splitlines()]

    local, distributed = run(), run("--ray-actors", "2")
    assert len(distributed) == len(instag_hf.load_sample("alpaca"))
    assert distributed == local
    assert {r["instag_status"] for r in distributed} == {"ok"}
