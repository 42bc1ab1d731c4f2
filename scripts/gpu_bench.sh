#!/usr/bin/env bash
# Kept for old commands: the GPU benchmark is now one row of scripts/gpu_checks.sh, which runs
# every GPU check in one go. --collect, --dry-run, --cpu and the check's arguments pass through.
#
# Here, once:   bash scripts/gpu_bench.sh --collect   # tokenizer files + Python 3.12 wheels -> .gpu-wheels/
# There:        bash scripts/gpu_bench.sh             # = bash scripts/gpu_checks.sh
set -euo pipefail
exec bash "$(dirname "$0")/gpu_checks.sh" "$@"
