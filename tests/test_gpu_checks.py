"""scripts/gpu_checks.sh between GPU sessions: its CPU mode fills every row of the table, on a Python
that holds only the device machine's packages, and what it carries there stays under 64 MiB.

The device machine (the `device` tool's KINDS.md) has torch, transformers, accelerate, pyarrow, ...
but not datasets, dill or multiprocess. ``device_like_python`` builds a venv whose site-packages
links only those of this project's .venv packages, so an import the device cannot serve fails here.
The real collect downloads from the package index: it runs only with INSTAG_TEST_COLLECT=1; the
size is always checked from the dry run (collected files, else installed sizes as an upper bound).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_collect import DEVICE_PACKAGES, ROOTS, norm, pins  # noqa: E402

CARRIED = {norm(r) for r in ROOTS}


def env(**extra) -> dict:
    """This environment with the project's .venv first on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""), **extra}


def device_like_python(folder: Path, extra: set[str]) -> str:
    """A venv holding only the device's packages (and ``extra``), linked from this interpreter's site-packages.

    Our versions of the device's packages come with what they need here (huggingface_hub 2 needs
    httpx2, the device's 1.33 does not), as the device's own versions come with theirs.
    """
    from importlib.metadata import PackageNotFoundError, distribution, distributions

    from gpu_collect import requirements

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next((folder / "lib").glob("python*/site-packages"))
    allowed, todo = set(), list(DEVICE_PACKAGES | extra)
    while todo:
        name = todo.pop()
        if name in allowed:
            continue
        allowed.add(name)
        try:
            todo += [norm(r.name) for r in requirements(distribution(name))]
        except PackageNotFoundError:
            pass
    for dist in distributions():
        if norm(dist.metadata["Name"] or "") not in allowed:
            continue
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if (base / top).exists() and not (site / top).exists():
                (site / top).symlink_to(base / top)
    return str(folder / "bin" / "python")


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the Markdown table in ``text``, split into cells."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[1:]]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tokenizer")
    subprocess.run([sys.executable, "benchmarks/gpu_collect.py", "tokenizer", str(folder)], cwd=ROOT, check=True,
                   env=env(), capture_output=True)
    return str(folder)


@pytest.mark.timeout(900)
def test_cpu_mode_fills_every_row_on_the_device_packages(tmp_path, tokenizer):
    python = device_like_python(tmp_path / "device", CARRIED)
    out = tmp_path / "table.md"
    run = subprocess.run(["bash", "scripts/gpu_checks.sh", "--cpu", "--tokenizer", tokenizer], cwd=ROOT,
                         env=env(PYTHON=python, GPU_CHECKS_OUT=str(out), GPU_CARRY=str(tmp_path / "none")),
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = table_rows(out.read_text())
    assert table_rows(run.stdout) == rows
    assert len(rows) == 3
    for row in rows:
        assert len(row) == 6 and all(cell for cell in row), row
    overhead, engines, scoring = rows
    assert overhead[0].startswith("transformers backend, LLaMA-2-7B shape (2 layers")
    assert overhead[4] == "4/4 rows"  # both paths generated the same tokens, row by row
    assert re.fullmatch(r"[+-]\d+\.\d%", overhead[3])
    assert engines[-1] == "n/a (no vLLM on this machine)"
    assert scoring[-1] == "n/a (not built yet)" or not scoring[-1].startswith("FAIL")


def test_the_carried_packages_are_what_the_device_lacks_pinned_to_the_lock():
    run = subprocess.run([sys.executable, "benchmarks/gpu_collect.py", "missing"], cwd=ROOT, env=env(),
                         capture_output=True, text=True, check=True)
    lock = pins()
    assert run.stdout.split() == [f"{n}=={lock[n]}" for n in sorted(CARRIED)]


def test_the_dry_run_fits_the_carry_limit(tmp_path):
    run = subprocess.run(["bash", "scripts/gpu_checks.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                         env=env(GPU_CARRY=str(tmp_path / "none")))
    assert run.returncode == 0, run.stdout + run.stderr
    total = re.search(r"([\d.]+) MiB  sent by one device call: fits", run.stdout)
    assert total and float(total.group(1)) < 64
    assert "tokenizer/tokenizer.json" in run.stdout
    assert "gguf" not in run.stdout.lower() and "smollm2" not in run.stdout.lower()  # no model weights


@pytest.mark.skipif(os.environ.get("INSTAG_TEST_COLLECT") != "1",
                    reason="downloads wheels from the package index; set INSTAG_TEST_COLLECT=1")
@pytest.mark.timeout(900)
def test_collect_writes_under_the_limit_and_installs_offline(tmp_path):
    carry = tmp_path / "carry"
    run = subprocess.run(["bash", "scripts/gpu_checks.sh", "--collect"], cwd=ROOT, capture_output=True, text=True,
                         env=env(GPU_CARRY=str(carry)))
    assert run.returncode == 0, run.stdout + run.stderr
    files = [p for p in carry.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 64 << 20
    wheels = sorted(p.name for p in carry.glob("*.whl"))
    assert [w.split("-")[0] for w in wheels] == sorted(n.replace("-", "_") for n in CARRIED)
    assert all(re.search(r"-(py3|py312|cp312)-", w) for w in wheels), wheels  # for the device's Python 3.12
    assert (carry / "tokenizer" / "tokenizer.json").is_file()
    # The offline install, on a Python without the carried packages (wheels for this one's version).
    local = tmp_path / "local"
    lock = pins()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(local)]
                   + [f"{n}=={lock[n]}" for n in sorted(CARRIED)], check=True)
    bare = device_like_python(tmp_path / "bare", set())
    run = subprocess.run(["bash", "scripts/gpu_checks.sh", "--install"], cwd=ROOT, capture_output=True, text=True,
                         env=env(PYTHON=bare, GPU_CARRY=str(local), GPU_CHECKS_SITE=str(tmp_path / "site")))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "importable:" in run.stdout and str(tmp_path / "site") in run.stdout
