"""Record the vLLM API surface our backend calls, from a vLLM wheel or source tree.

vLLM needs a CUDA machine and pins its own torch, so CI cannot import it. This reads
the pinned release's source with `ast` (no import) and writes the parameter names of
``LLM.__init__``, ``LLM.generate``, ``LLM.chat``, ``LLM.get_tokenizer`` and the fields of
``SamplingParams``, ``StructuredOutputsParams`` and ``EngineArgs`` to ``tests/data/vllm_api.json``;
``tests/test_vllm_backend.py`` checks every call the backend makes against it.

    pip download --no-deps vllm==0.33.0 -d /tmp/vllm && \
    python scripts/snapshot_vllm_api.py /tmp/vllm/vllm-0.33.0-*.whl
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path

FILES = {"llm": "vllm/entrypoints/llm.py", "sampling": "vllm/sampling_params.py",
         "engine": "vllm/engine/arg_utils.py"}
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "vllm_api.json"


def read_sources(source: str) -> tuple[dict[str, str], str]:
    path = Path(source)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            texts = {k: wheel.read(v).decode() for k, v in FILES.items()}
        version = re.search(r"vllm-([^-]+)-", path.name).group(1)
        return texts, version
    texts = {k: (path / v).read_text() for k, v in FILES.items()}
    return texts, "source"


def params(fn: ast.FunctionDef) -> dict:
    a = fn.args
    positional = [x.arg for x in a.posonlyargs + a.args if x.arg != "self"]
    return {"positional": positional, "keyword_only": [x.arg for x in a.kwonlyargs], "var_keyword": a.kwarg is not None}


def class_node(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def fields(cls: ast.ClassDef) -> list[str]:
    return [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
            and not n.target.id.startswith("_")]


def main(source: str) -> None:
    texts, version = read_sources(source)
    llm = class_node(ast.parse(texts["llm"]), "LLM")
    methods = {n.name: params(n) for n in llm.body if isinstance(n, ast.FunctionDef)
               and n.name in ("__init__", "generate", "chat", "get_tokenizer")}
    sampling = ast.parse(texts["sampling"])
    snapshot = {
        "vllm_version": version,
        "LLM": methods,
        "SamplingParams": fields(class_node(sampling, "SamplingParams")),
        "StructuredOutputsParams": fields(class_node(sampling, "StructuredOutputsParams")),
        # LLM(**kwargs) goes to EngineArgs: max_model_len, load_format, ...
        "EngineArgs": fields(class_node(ast.parse(texts["engine"]), "EngineArgs")),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(snapshot, indent=1) + "\n")
    print(f"wrote {OUT} for vllm {version}")


if __name__ == "__main__":
    main(sys.argv[1])
