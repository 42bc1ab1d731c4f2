#!/usr/bin/env python3
"""Tag a fixed set of queries through a real OpenAI-compatible server, and capture its error bodies.

Run by scripts/real_servers.sh (which starts llama-cpp-python's server and `vllm serve`
on loopback); it can also be pointed at any server that is already running:

    .venv/bin/python scripts/real_servers_check.py --server llama-cpp-python \
        --base-url http://127.0.0.1:8391/v1 [--model NAME] [--capture out.json]

1. Tagging: the 12 QUERIES below go through ``instag_hf.Tagger(backend="openai", ...)``
   once per ``response_format`` ("auto", "json_schema", "json_object", "none"), with no
   request cache, and one markdown table row is printed per format: row statuses,
   mean tags per ok row, the backend's stats() counters, and the first backend error.
2. Capture (``--capture FILE``): plain HTTP requests (urllib, no instag_hf code)
   with a json_schema response_format, a json_object one, a malformed and an unknown
   one, an over-long prompt (without and with json_schema), an unknown parameter and
   a wrongly typed known parameter; the exact HTTP status and
   body of each answer are written to FILE as a JSON list of
   {server, server_version, request_summary, request, status, body}.

Needs only instag_hf's own dependencies (aiohttp, datasets). Takes about 5-10 minutes
per server on 2 busy CPU cores with SmolLM2-135M (48 tagging requests of up to 256
tokens; vLLM's CPU build generated about 20 tokens/s in all here).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

# Run from a checkout without installing: the repository root goes first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FORMATS = ("auto", "json_schema", "json_object", "none")

# Real, varied user queries (code, math, writing, translation, QA, ...); none empty.
QUERIES = (
    "Write a Python function that returns the n-th Fibonacci number using memoization.",
    "Solve for x: 3x + 7 = 22. Show each step.",
    "Write a short poem about autumn leaves falling in a quiet park.",
    "Translate into French: 'The meeting has been moved to Thursday afternoon.'",
    "What is the capital of Australia, and why was it chosen over Sydney and Melbourne?",
    "Fix the bug in this JavaScript: for (var i = 0; i < 5; i++) { setTimeout(() => console.log(i), 100); }",
    "Summarize the main causes of the French Revolution in three bullet points.",
    "Draft a polite email to my landlord asking to repair a leaking kitchen faucet.",
    "Explain the difference between TCP and UDP to a beginner, with an example of when to use each.",
    "A recipe needs 250 g of flour for 4 people. How much flour do I need for 10 people?",
    "Give me five name ideas for a small coffee shop that also sells used books.",
    "Write a SQL query that lists the top 3 customers by total order amount in 2023.",
)


def _backend_module():
    from instag_hf.tagging.backends import openai

    return openai


def schema_format() -> dict:
    """The JSON schema response format instag_hf sends."""
    return _backend_module().SCHEMA_FORMAT


# --- HTTP helpers (stdlib only) -----------------------------------------------------
def http(method: str, url: str, body: dict | None = None, timeout: float = 300.0) -> tuple[int, object]:
    """(status, parsed JSON body or raw text); status 0 with the error text when no answer came."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def code_version() -> str:
    """Which instag_hf code ran: HEAD and a hash of the openai backend as it is on disk (edits included)."""
    import hashlib
    import subprocess

    root = Path(__file__).resolve().parents[1]
    module = _backend_module()
    backend = Path(module.__file__) if module is not None and module.__file__ else root / "missing"
    digest = hashlib.sha256(backend.read_bytes()).hexdigest()[:12] if backend.exists() else "missing"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "?"
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", str(backend)], cwd=root,
                               timeout=10).returncode != 0
    except (OSError, subprocess.SubprocessError):
        head, dirty = "?", False
    try:
        shown = backend.relative_to(root)
    except ValueError:
        shown = backend
    return f"instag_hf at {head}, {shown} sha256 {digest}{' (edited since HEAD)' if dirty else ''}"


def served_model(base_url: str) -> str:
    status, body = http("GET", f"{base_url}/models", timeout=30)
    if status != 200 or not isinstance(body, dict) or not body.get("data"):
        raise SystemExit(f"{base_url}/models answered {status}: {body!r:.300}")
    return body["data"][0]["id"]


# --- 1. tagging -----------------------------------------------------------------------
def tag_run(server: str, base_url: str, model: str, fmt: str, concurrency: int, timeout: float,
            max_retries: int, template: str = "teacher") -> dict:
    import instag_hf

    tagger = instag_hf.Tagger(backend="openai", base_url=base_url, model=model, api_key_env="", use_cache=False,
                              response_format=fmt, progress=False, concurrency=concurrency, timeout=timeout,
                              max_retries=max_retries, template=template)
    started = time.monotonic()
    rows = tagger.tag_rows([[q] for q in QUERIES])
    seconds = time.monotonic() - started
    statuses = Counter(r["instag_status"] for r in rows)
    ok_tags = [len(r["instag_tags"]) for r in rows if r["instag_status"] == "ok"]
    errors = [r["instag_error"] for r in rows if r["instag_status"] == "backend_error" and r["instag_error"]]
    parse_errors = [r["instag_error"] for r in rows if r["instag_status"] == "parse_error" and r["instag_error"]]
    stats = tagger.backend.stats()
    tagger.backend.close()
    return {
        "server": server, "template": tagger.template.id, "response_format": fmt, "rows": len(rows),
        "statuses": dict(statuses),
        "mean_tags_per_ok_row": (sum(ok_tags) / len(ok_tags)) if ok_tags else None,
        "seconds": round(seconds, 1), "backend_stats": stats,
        "first_backend_error": errors[0] if errors else "",
        "first_parse_error": parse_errors[0] if parse_errors else "",
        "summary": tagger.summary(),
    }


def _stat(stats: dict, *names: str):
    """A counter from stats(), whatever the backend calls it now; dict counters are summed."""
    for name in names:
        if name in stats:
            value = stats[name]
            return sum(value.values()) if isinstance(value, dict) else value
    return "?"


def markdown_table(results: list[dict]) -> str:
    cols = ["server", "template", "response_format", "ok", "parse_error", "backend_error", "other", "mean tags/ok row",
            "requests", "retries", "failures", "s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        st = dict(r["statuses"])
        ok, pe, be = st.pop("ok", 0), st.pop("parse_error", 0), st.pop("backend_error", 0)
        other = ", ".join(f"{k}={v}" for k, v in sorted(st.items())) or "0"
        mean = "-" if r["mean_tags_per_ok_row"] is None else f"{r['mean_tags_per_ok_row']:.2f}"
        s = r["backend_stats"]
        failures = s.get("failures")
        failures = (", ".join(f"{k}={v}" for k, v in failures.items()) or "0") if isinstance(failures, dict) \
            else _stat(s, "failures")
        lines.append("| " + " | ".join(str(x) for x in [
            r["server"], r.get("template", "teacher@1"), r["response_format"], ok, pe, be, other, mean,
            _stat(s, "requests", "requests_sent"), _stat(s, "retries"), failures, r["seconds"]]) + " |")
    return "\n".join(lines)


# --- 2. capture -------------------------------------------------------------------------
LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog near the quiet river bank."] * 220)  # ~3300 tokens


def capture(server: str, version: str, base_url: str, model: str) -> list[dict]:
    short = [{"role": "user", "content": "Tag the intentions of: 'Write a haiku about the sea.' "
                                         "Answer as JSON with a list of tags."}]
    base = {"model": model, "messages": short, "max_tokens": 48, "temperature": 0.0}
    long_messages = [{"role": "user", "content": LONG_TEXT}]
    cases = [
        ("response_format json_schema (instag_tags, strict)", {**base, "response_format": schema_format()}),
        ("response_format json_object", {**base, "response_format": {"type": "json_object"}}),
        ("malformed response_format: type json_schema without its json_schema member",
         {**base, "response_format": {"type": "json_schema"}}),
        ("unknown response_format type 'instag_bogus_type'", {**base, "response_format": {"type": "instag_bogus_type"}}),
        ("over-long prompt (~3300 tokens, max_tokens 256), no response_format",
         {**base, "messages": long_messages, "max_tokens": 256}),
        ("over-long prompt (~3300 tokens, max_tokens 256) with response_format json_schema",
         {**base, "messages": long_messages, "max_tokens": 256, "response_format": schema_format()}),
        ("unknown parameter instag_bogus_param=true, no response_format", {**base, "instag_bogus_param": True}),
        ("known parameter with a wrong type (temperature='hot'), no response_format",
         {**base, "temperature": "hot"}),
    ]
    out = []
    for summary, body in cases:
        status, answer = http("POST", f"{base_url}/chat/completions", body)
        shown = dict(body)
        if shown["messages"] is long_messages:
            shown["messages"] = [{"role": "user", "content": f"<{len(LONG_TEXT)} characters: the same sentence "
                                                             f"repeated 220 times>"}]
        out.append({"server": server, "server_version": version, "request_summary": summary, "request": shown,
                    "status": status, "body": answer})
        print(f"  capture: {summary}: HTTP {status}", file=sys.stderr)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", help="name shown in the table, e.g. llama-cpp-python")
    ap.add_argument("--server-version", default="", help="recorded with the captured bodies")
    ap.add_argument("--base-url", help="e.g. http://127.0.0.1:8391/v1")
    ap.add_argument("--model", help="served model name (default: the first of GET /models)")
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated response_format values")
    ap.add_argument("--template", default="teacher",
                    help="prompt template (vicuna_v1.1 goes to /v1/completions as the exact prompt text)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per request attempt")
    ap.add_argument("--max-retries", type=int, default=5)
    ap.add_argument("--capture", help="write the captured raw exchanges (JSON list) to this file")
    ap.add_argument("--results", help="append the tagging results (JSON lines) to this file")
    ap.add_argument("--skip-tagging", action="store_true")
    ap.add_argument("--report", metavar="JSONL", help="only print one table of the results in JSONL (--results)")
    args = ap.parse_args(argv)
    if args.report:
        results = [json.loads(line) for line in open(args.report) if line.strip()]
        print(f"{code_version()}\n")
        print(markdown_table(results) if results else "(no results)")
        errors = [r for r in results if r["first_backend_error"]]
        if errors:
            print("\nFirst backend error per run:\n")
            for r in errors:
                print(f"- {r['server']} / {r['response_format']}: {r['first_backend_error'][:500]}")
        return 0
    if not (args.server and args.base_url):
        ap.error("--server and --base-url are needed (or --report)")
    logging.basicConfig(level=logging.WARNING, format="  %(levelname)s %(name)s: %(message)s")

    base_url = args.base_url.rstrip("/")
    model = args.model or served_model(base_url)
    print(f"## {args.server} {args.server_version} at {base_url}, model {model!r}\n")
    print(f"{code_version()}\n")

    if args.capture:
        records = capture(args.server, args.server_version, base_url, model)
        Path(args.capture).write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
        print("Captured raw exchanges:\n")
        for rec in records:
            print(f"- {rec['request_summary']}: HTTP {rec['status']}: {json.dumps(rec['body'])[:400]}")
        print()

    if not args.skip_tagging:
        results = []
        for fmt in args.formats.split(","):
            print(f"  tagging {len(QUERIES)} queries with response_format={fmt} ...", file=sys.stderr, flush=True)
            results.append(tag_run(args.server, base_url, model, fmt.strip(), args.concurrency, args.timeout,
                                   args.max_retries, args.template))
        print(markdown_table(results))
        print()
        for r in results:
            print(f"- {r['response_format']}: backend stats {json.dumps(r['backend_stats'])}")
            if r["first_backend_error"]:
                print(f"  first backend error: {r['first_backend_error'][:500]}")
            if r["first_parse_error"]:
                print(f"  first parse error: {r['first_parse_error'][:200]}")
        print()
        if args.results:
            with open(args.results, "a") as fh:
                for r in results:
                    fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
