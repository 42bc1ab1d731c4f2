"""Tag-answer parsing on adversarial and long answers: linear growth, against baselines run here.

For inputs of 1K to 64K characters (64K is ``MAX_ANSWER_CHARS``, the most the parser
reads) of several shapes, prints the time of ``parse_tags`` and t(n)/t(1K): a linear
parser doubles its time when the input doubles, so the ratio should track n/1K
(1, 2, 4, ..., 64), where a quadratic one goes to 4096. Two baselines, measured in the
same run: the previous parser (``_old_parse`` below, a copy of it: it re-scanned from
every bracket and took ~10 s on ``"[" * 64000``; run only while its previous size took
under ``--old-budget`` seconds), and ``json.loads`` of the valid answer of the same size.
Times are CPU seconds of this process, the best of several runs, so that other jobs on a
shared machine do not blur the ratios.

    python benchmarks/bench_parsing.py [--sizes 1000 2000 ...] [--old-budget 1.5]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time

from instag_hf.tagging.parsing import parse_tags

SIZES = (1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000)


# --- the previous parser, kept only as this benchmark's baseline ----------------------------------
_O_TAG_KEYS = ("tag", "name", "title", "label", "intent", "intention")
_O_EXPL_KEYS = ("explanation", "description", "reason", "explain", "rationale")
_O_LIST_KEYS = ("tags", "intentions", "intents", "labels")
_O_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.MULTILINE)
_O_OPENERS = re.compile(r"[\[{]")
_O_STR = r"""(?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)')"""
_O_SALVAGE = re.compile(r"""["']tag["']\s*:\s*""" + _O_STR + r"""(?:\s*,\s*["']explanation["']\s*:\s*"""
                        + _O_STR + ")?", re.IGNORECASE)
_O_SPACE = re.compile(r"\s+")


def _o_lookup(obj, keys):
    for key in keys:
        if key in obj:
            return obj[key]
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    return next((lowered[k] for k in keys if k in lowered), None)


def _o_items(obj, depth=0):
    if depth > 3:
        return []
    if isinstance(obj, str):
        return [(obj, "")]
    if isinstance(obj, list):
        return [pair for element in obj for pair in _o_items(element, depth + 1)]
    if isinstance(obj, dict):
        tag = _o_lookup(obj, _O_TAG_KEYS)
        if tag is not None:
            return [(tag, _o_lookup(obj, _O_EXPL_KEYS))]
        nested = _o_lookup(obj, _O_LIST_KEYS)
        if isinstance(nested, list):
            return _o_items(nested, depth + 1)
        if obj and all(isinstance(v, str) for v in obj.values()) and _o_lookup(obj, _O_EXPL_KEYS) is None:
            return list(obj.items())
    return []


def _old_parse(text: str) -> list[str]:
    """The previous ``parse_tags``: raw_decode tried from every ``[``/``{``, then a regex salvage."""
    body = _O_FENCE.sub("", text[:64_000])
    decoder, values, pos = json.JSONDecoder(), [], 0
    while (match := _O_OPENERS.search(body, pos)) is not None:
        try:
            value, pos = decoder.raw_decode(body, match.start())
            values.append(value)
        except (ValueError, RecursionError):
            pos = match.start() + 1
    pairs = [pair for value in values for pair in _o_items(value)]
    if not pairs:
        pairs = [(m.group(1) or m.group(2), m.group(3) or m.group(4)) for m in _O_SALVAGE.finditer(body)]
    tags = []
    for tag, _ in pairs:
        if isinstance(tag, str) and (tag := _O_SPACE.sub(" ", tag).strip()) and len(tag) <= 80 and tag not in tags:
            tags.append(tag)
    return tags[:32]


# --- inputs -----------------------------------------------------------------------------------
def valid_answer(n: int) -> str:
    """A well-formed InsTag answer (a JSON list of tag objects) of about ``n`` characters."""
    items, size, i = [], 2, 0
    while True:
        item = {"tag": f"Topic {i}", "explanation": "The query asks about topic %d in some detail." % i}
        size += len(json.dumps(item)) + 2
        if size > n and items:
            return json.dumps(items)
        items.append(item)
        i += 1


SHAPES = {
    '"[" * n': lambda n: "[" * n,
    '"{" * n': lambda n: "{" * n,
    '\'{"tag":\' repeated': lambda n: ('{"tag":' * (n // 7 + 1))[:n],
    "nested lists, one ] short": lambda n: "[" * (n // 2) + "]" * (n // 2 - 1),
    "long valid answer": valid_answer,
}


def timed(fn, text: str, min_total: float = 1.0, max_runs: int = 9, min_runs: int = 3) -> float:
    """Best of several runs (fewer for slow calls), in CPU seconds of this process: on a shared
    machine wall time mostly measures the other jobs, CPU time the parser."""
    best, total, runs = float("inf"), 0.0, 0
    while runs < max_runs and (runs < min_runs or total < min_total):
        start = time.process_time()
        fn(text)
        elapsed = time.process_time() - start
        best, total, runs = min(best, elapsed), total + elapsed, runs + 1
    return best


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--old-budget", type=float, default=1.5,
                    help="skip the old parser's larger sizes once one size took longer than this (s)")
    args = ap.parse_args()
    sizes = sorted(args.sizes)
    print(f"Python {platform.python_version()}, {platform.machine()}; time: CPU time, best of up to 9 runs "
          f"(3 for the old parser); ratio: t(n)/t({sizes[0]:,}) (linear: n/{sizes[0]:,})\n")
    print("| input | chars | parse_tags (ms) | ratio | old parser (ms) | old ratio | old / new |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, make in SHAPES.items():
        base_new = base_old = None
        old_too_slow = False
        for n in sizes:
            text = make(n)
            new = timed(parse_tags, text)
            base_new = base_new or new
            if old_too_slow:
                old_cells = ["skipped", "", ""]
            else:
                old = timed(_old_parse, text, max_runs=3, min_runs=1)
                base_old = base_old or old
                old_too_slow = old > args.old_budget
                old_cells = [ms(old), f"{old / base_old:.1f}", f"{old / new:.1f}"]
            print(f"| {name} | {len(text):,} | {ms(new)} | {new / base_new:.1f} | " + " | ".join(old_cells) + " |",
                  flush=True)
    print("\nBaseline: json.loads of the same valid answer (the C decoder; no recovery, no tag rules)\n")
    print("| chars | json.loads (ms) | ratio | parse_tags (ms) | parse_tags / json.loads |")
    print("|---:|---:|---:|---:|---:|")
    base = None
    for n in sizes:
        text = valid_answer(n)
        loads, new = timed(json.loads, text), timed(parse_tags, text)
        base = base or loads
        print(f"| {len(text):,} | {ms(loads)} | {loads / base:.1f} | {ms(new)} | {new / loads:.1f} |", flush=True)


if __name__ == "__main__":
    main()
