"""Test isolation: no network, a private datasets cache and request cache per session.

The embedded model's one-time conversion is kept in the user's real instag_hf home
(it is a pure function of the installed weights), so it happens once per machine.
"""

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    real_home = Path(os.environ.get("INSTAG_HF_HOME", Path.home() / ".cache" / "instag_hf"))
    models = real_home / "models"
    models.mkdir(parents=True, exist_ok=True)
    home = tmp_path_factory.mktemp("instag_home")
    (home / "models").symlink_to(models, target_is_directory=True)
    os.environ["INSTAG_HF_HOME"] = str(home)
    os.environ["HF_DATASETS_CACHE"] = str(tmp_path_factory.mktemp("hf_datasets_cache"))
    import datasets

    datasets.config.HF_DATASETS_CACHE = Path(os.environ["HF_DATASETS_CACHE"])
    yield home


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "requests")
