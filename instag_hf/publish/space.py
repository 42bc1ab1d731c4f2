"""The files of the Gradio Space: the app folder (``spaces/``) plus a copy of this package.

A Space runs ``app.py`` from its repo root, so :func:`write_space` puts the app
files there and the ``instag_hf`` package beside them (the Space then needs no
``instag_hf`` release on PyPI); ``requirements.txt`` lists the rest.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Mapping

REQUIRED_APP_FILES = ("app.py", "README.md", "requirements.txt")
#: package files a Space needs: the code, the bundled sample and the card templates
PACKAGE_PATTERNS = ("**/*.py", "data/*.jsonl", "cards/*.j2")
_SKIP_PARTS = {"__pycache__", ".gradio", "flagged", ".ipynb_checkpoints"}
#: variable names that would put a secret in a Space's public settings
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: values shaped like credentials (Hugging Face, OpenAI-style keys, bearer strings)
_SECRET_VALUE = re.compile(r"(\bhf_[A-Za-z0-9]{8,}|\bsk-[A-Za-z0-9_-]{8,}|\bBearer\s)")


def default_app_dir() -> Path:
    """``spaces/`` of the current folder, else of the source checkout this package runs from."""
    for candidate in (Path.cwd() / "spaces", package_dir().parent / "spaces"):
        if (candidate / "app.py").is_file():
            return candidate
    raise ValueError("found no spaces/app.py in the current folder or the instag_hf checkout; pass app_dir= "
                     "(--app-dir) pointing to the Space folder")


def package_dir() -> Path:
    """The installed ``instag_hf`` folder (this file is ``instag_hf/publish/space.py``)."""
    return Path(__file__).resolve().parents[1]


def check_variables(variables: Mapping[str, str]) -> dict[str, str]:
    """Space variables are public: refuse names that look like secrets (set those as Space secrets)."""
    out = {}
    for key, value in variables.items():
        if not isinstance(key, str) or not _VARIABLE_NAME.match(key):
            raise ValueError(f"Space variable name {key!r} is not valid (letters, digits, '_')")
        if not isinstance(value, str):
            raise ValueError(f"Space variable {key!r} must be a string, got {type(value).__name__}")
        # a *_ENV variable holds the NAME of another variable (INSTAG_API_KEY_ENV=OPENAI_API_KEY), not a secret
        if (_SECRET_NAME.search(key) and not key.endswith("_ENV")) or _SECRET_VALUE.search(value):
            raise ValueError(f"Space variable {key!r} looks like a secret; variables are public. Set it as a "
                             "secret in the Space settings instead")
        out[key] = value
    return out


def split_front_matter(text: str) -> tuple[dict, str]:
    """``(YAML header, body)`` of a README that starts with ``---``."""
    import yaml

    if not text.startswith("---"):
        raise ValueError("the Space README.md must start with a YAML header between '---' lines")
    end = text.find("\n---", 3)
    if end < 0:
        raise ValueError("the Space README.md YAML header is not closed by a '---' line")
    header = yaml.safe_load(text[3:end]) or {}
    if not isinstance(header, dict):
        raise ValueError("the Space README.md YAML header is not a mapping")
    body = text[end + 4:].lstrip("\n")
    return header, body


def _app_files(app_dir: Path) -> list[Path]:
    files = []
    for path in sorted(app_dir.rglob("*")):
        rel = path.relative_to(app_dir)
        if path.is_file() and not any(p in _SKIP_PARTS or p.startswith(".") for p in rel.parts) \
                and path.suffix != ".pyc":
            files.append(rel)
    return files


def write_space(output_dir: str | Path, *, app_dir: str | Path | None = None, title: str | None = None,
                include_package: bool = True, overwrite: bool = False) -> list[str]:
    """Copy the Space's files into ``output_dir``; returns their POSIX paths relative to it (README.md last)."""
    import yaml

    app = Path(app_dir) if app_dir is not None else default_app_dir()
    missing = [f for f in REQUIRED_APP_FILES if not (app / f).is_file()]
    if missing:
        raise ValueError(f"{app} is not a Space folder: it lacks {missing}")
    header, body = split_front_matter((app / "README.md").read_text(encoding="utf-8"))
    if header.get("sdk") != "gradio":
        raise ValueError(f"{app / 'README.md'}: expected 'sdk: gradio' in its header, got {header.get('sdk')!r}")
    app_file = header.get("app_file", "app.py")
    if not (app / app_file).is_file():
        raise ValueError(f"{app / 'README.md'}: app_file {app_file!r} does not exist")
    if title is not None:
        if not title.strip() or len(title) > 100:
            raise ValueError("title must be 1 to 100 characters")
        header["title"] = title

    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"{out} is not empty; pick a new folder or pass overwrite=True (--overwrite)")
        if not (out / "app.py").is_file():
            raise ValueError(f"{out} is not empty and holds no Space; refusing to overwrite it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    written: list[str] = []
    for rel in _app_files(app):
        if rel.as_posix() == "README.md" or rel.parts[0] == "instag_hf":
            continue
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(app / rel, out / rel)
        written.append(rel.as_posix())
    if include_package:
        pkg = package_dir()
        seen: set[Path] = set()
        for pattern in PACKAGE_PATTERNS:
            for path in sorted(pkg.glob(pattern)):
                rel = path.relative_to(pkg)
                if path in seen or not path.is_file() or any(p in _SKIP_PARTS for p in rel.parts):
                    continue
                seen.add(path)
                target = out / "instag_hf" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                written.append(f"instag_hf/{rel.as_posix()}")
    readme = "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n" + body
    (out / "README.md").write_text(readme, encoding="utf-8")
    written.append("README.md")
    return written
