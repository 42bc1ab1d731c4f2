#!/usr/bin/env bash
# Every check that needs a GPU, in one command, printed as one Markdown table (benchmarks/gpu_checks.py).
#
#   bash scripts/gpu_checks.sh --collect   # here, once: tokenizer files + wheels for Python 3.12 -> .gpu-wheels/
#   bash scripts/gpu_checks.sh --dry-run   # what --collect writes, with sizes; no network; fails over 64 MiB
#   bash scripts/gpu_checks.sh             # on a CUDA machine: installs .gpu-wheels/ offline if needed, runs all
#   bash scripts/gpu_checks.sh --cpu       # the same checks on a CPU (2 layers, 4 rows), about a minute
#   bash scripts/gpu_checks.sh --install   # only the offline install of .gpu-wheels/ and its preflight
#
# The table also goes to $GPU_CHECKS_OUT (default $OUT/gpu_checks.md on the device machine, else
# .gpu-checks/gpu_checks.md), to be copied into benchmarks/RESULTS.md. Other arguments go to
# gpu_checks.py (--rows, --batch-size, --max-tokens, --layers, --repeats, --tokenizer).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=${GPU_CARRY:-.gpu-wheels}
PY=${PYTHON:-python3}
BUILD_PY=.venv/bin/python  # collect reads the lock's metadata and the GGUF file from the project's venv
[[ -x $BUILD_PY ]] || BUILD_PY=$PY

case "${1:-}" in
    --collect) exec "$BUILD_PY" benchmarks/gpu_collect.py collect "$CARRY" ;;
    --dry-run) exec "$BUILD_PY" benchmarks/gpu_collect.py dry-run "$CARRY" ;;
esac

# No datasets here (the device machine): install the carried wheels offline, beside the system's packages.
if ! "$PY" -c "import datasets" 2>/dev/null; then
    if ! ls "$CARRY"/*.whl >/dev/null 2>&1; then
        echo "no datasets in $PY and no wheels in $CARRY/: run 'bash scripts/gpu_checks.sh --collect' on a" \
             "machine with network and carry $CARRY, or 'pip install -e .' here" >&2
        exit 2
    fi
    SITE=${GPU_CHECKS_SITE:-/tmp/instag-gpu-site}
    "$PY" -m pip install -q --no-index --find-links "$CARRY" --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$CARRY"/*.whl
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
    "$PY" benchmarks/gpu_collect.py preflight || echo "preflight: continuing; the run shows whether it matters" >&2
fi
if [[ "${1:-}" == "--install" ]]; then
    PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} "$PY" -c "import datasets, dill, multiprocess, instag_hf; print('importable:', datasets.__file__)"
    exit 0
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
ARGS=()
if [[ -d $CARRY/tokenizer ]] && [[ " $* " != *" --tokenizer "* ]]; then
    ARGS+=(--tokenizer "$CARRY/tokenizer")
fi
if [[ " $* " != *" --cpu "* ]]; then
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: use --cpu'; print(torch.cuda.get_device_name(0))"
fi
OUT_DIR=${OUT:-.gpu-checks}
exec "$PY" benchmarks/gpu_checks.py --out "${GPU_CHECKS_OUT:-$OUT_DIR/gpu_checks.md}" "${ARGS[@]}" "$@"
