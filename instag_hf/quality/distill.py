"""Teacher-tagged data as supervised fine-tuning data for a local tagger (the paper's InsTagger).

Every tagged user turn becomes one training conversation: the project's own
template renders the query exactly as :class:`~instag_hf.Tagger` will at inference
(``vicuna_v1.1``: the FastChat Vicuna v1.1 prompt of OFA-Sys/InsTagger; ``chatml``:
the Qwen-1.8B InsTagger's ChatML with the raw query), and the assistant answers with
the teacher's tags as the JSON list the tag parser reads. A seeded held-out split
(the paper held out 1K) keeps identical queries on one side only.

Layouts, i.e. the columns common SFT trainers read:

- ``messages``: ``[{"role", "content"}]`` with system, user and assistant turns (TRL,
  axolotl ``chat_template``). The trainer applies the *model's* chat template, so
  this matches inference when that template is the one the tagging template assumes
  (ChatML models for ``chatml``).
- ``conversations``: the same turns as ShareGPT ``{"from", "value"}`` (axolotl, LLaMA-Factory).
- ``prompt_completion``: ``prompt`` is the exact text the Tagger sends, ``completion``
  the answer (TRL computes the loss on the completion only and appends EOS). This
  matches inference byte for byte whatever the model's chat template is.
- ``text``: prompt + answer + the template's end-of-turn marker in one string.
- ``auto`` (default): ``prompt_completion`` for templates that fix the prompt text
  (``vicuna_v1.1``), ``messages`` for chat templates (``chatml``).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import schema
from ..strict_json import write_json
from ..tagging.prompts import Template, get_template

LAYOUTS = ("auto", "messages", "conversations", "prompt_completion", "text")
DISTILL_TEMPLATES = ("vicuna_v1.1", "chatml")
META_COLUMNS = ("instag_query", "instag_row", "instag_turn", "instag_gold_tags")
_SHAREGPT_ROLE = {"system": "system", "user": "human", "assistant": "gpt"}


@dataclass
class DistillReport:
    """What :func:`distill_dataset` made and what it left out (and why)."""

    template: str
    layout: str
    examples: int
    train: int
    test: int
    seed: int
    skipped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_layout(layout: str, template: Template) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "auto":
        return "prompt_completion" if template.vicuna else "messages"
    return layout


def chatml_text(messages: list[dict]) -> str:
    """ChatML rendering of ``messages``, ending with an open assistant turn."""
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def inference_text(template: Template, query: str) -> str:
    """The exact prompt string the Tagger's template gives a completion-style model for ``query``."""
    prompt = template.render(query)
    if prompt.text is not None:
        return prompt.text + prompt.response_prefix
    return chatml_text(list(prompt.messages)) + prompt.response_prefix


def answer_json(items: list[dict]) -> str:
    """The assistant turn: the teacher's tags as a JSON list of ``{"tag", "explanation"}``."""
    return json.dumps([{"tag": i["tag"], "explanation": i.get("explanation") or ""} for i in items],
                      ensure_ascii=False)


def example(template: Template, query: str, items: list[dict], layout: str) -> dict:
    """One training record in ``layout`` (a resolved layout, not ``auto``)."""
    prompt = template.render(query)
    answer = answer_json(items)
    if prompt.response_prefix and not answer.startswith(prompt.response_prefix):
        raise ValueError(f"template {template.id} prefills {prompt.response_prefix!r}, which a JSON tag list "
                         "cannot start with; use vicuna_v1.1 or chatml")
    messages = [dict(m) for m in prompt.messages] + [{"role": "assistant", "content": answer}]
    if layout == "messages":
        return {"messages": messages}
    if layout == "conversations":
        return {"conversations": [{"from": _SHAREGPT_ROLE[m["role"]], "value": m["content"]} for m in messages]}
    text = inference_text(template, query)
    completion = answer[len(prompt.response_prefix):]
    if template.vicuna:
        completion = " " + completion
    if layout == "prompt_completion":
        return {"prompt": text, "completion": completion}
    end = "</s>" if template.vicuna else "<|im_end|>\n"
    return {"text": text + completion + end}


def _tag_items(value: Any) -> list[dict]:
    out, seen = [], set()
    for item in value or ():
        if isinstance(item, dict):
            tag, expl = item.get("tag"), item.get("explanation") or ""
        else:
            tag, expl = item, ""
        if isinstance(tag, str) and tag.strip() and tag.casefold() not in seen:
            seen.add(tag.casefold())
            out.append({"tag": tag.strip(), "explanation": expl})
    return out


def tagged_turns(dataset, tags_column: str | None = None, query_column: str | None = None,
                 format: str | None = None) -> tuple[list[tuple[int, int, str, list[dict]]], dict[str, int]]:
    """``(row, turn, query, tag items)`` of every successfully tagged user turn, and skip counts.

    Per-turn results (``instag_turn_tags``/``instag_turn_status``) are used when present
    and no other ``tags_column`` is named; otherwise a row's tags are used for a row with
    a single user turn, and multi-turn rows are skipped (their tags cannot be told apart).
    """
    from ..tagging.queries import detect_format

    columns = dataset.column_names
    own = {schema.TAGS, schema.NORM_TAGS, schema.STATUS, schema.ERROR, schema.TURN_TAGS, schema.TURN_STATUS}
    fmt = detect_format([c for c in columns if c not in own and c != tags_column], format, query_column)
    source = [c for c in (fmt.column, "instruction", "input", "context") if c and c in columns]
    per_turn = tags_column in (None, schema.TAGS) and schema.TURN_TAGS in columns and schema.TURN_STATUS in columns
    if not per_turn:
        tags_column = tags_column or (schema.TAGS if schema.TAGS in columns else None)
        if tags_column is None or tags_column not in columns:
            raise ValueError(f"no tags column: expected {schema.TURN_TAGS!r} or {schema.TAGS!r} or tags_column= "
                             f"among {columns}")
    skipped = {"failed_turns": 0, "empty_turns": 0, "multi_turn_rows_without_turn_tags": 0, "misaligned_rows": 0}
    status_col = schema.STATUS if (not per_turn and tags_column in (schema.TAGS, schema.NORM_TAGS)
                                   and schema.STATUS in columns) else None
    wanted = source + ([schema.TURN_TAGS, schema.TURN_STATUS] if per_turn else [tags_column])
    wanted += [status_col] if status_col else []
    out = []
    for row, record in enumerate(dataset.select_columns(list(dict.fromkeys(wanted)))):
        turns = fmt.extract(record)
        if per_turn:
            tags, status = record[schema.TURN_TAGS] or [], record[schema.TURN_STATUS] or []
            if len(tags) != len(turns) or len(status) != len(turns):
                skipped["misaligned_rows"] += 1
                continue
        else:
            if len(turns) != 1:
                skipped["multi_turn_rows_without_turn_tags"] += 1
                continue
            ok = status_col is None or record[status_col] in schema.TAGGED_STATUSES
            tags, status = [record[tags_column]], [schema.OK if ok else schema.PARSE_ERROR]
        for turn, (query, items, st) in enumerate(zip(turns, tags, status)):
            if not query.strip():
                skipped["empty_turns"] += 1
                continue
            items = _tag_items(items)
            if st not in schema.TAGGED_STATUSES or not items:
                skipped["failed_turns"] += 1
                continue
            out.append((row, turn, query, items))
    return out, skipped


#: held-out examples in the paper's tagger evaluation
PAPER_TEST_SIZE = 1000


def split_groups(keys: list[str], test_size: int | float, seed: int) -> np.ndarray:
    """A boolean test mask: whole groups of equal keys, shuffled by ``seed``, until ``test_size`` examples."""
    n = len(keys)
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise ValueError(f"test_size must be a count or a fraction, got {test_size!r}")
    if isinstance(test_size, float):
        if not 0.0 <= test_size < 1.0:
            raise ValueError(f"a fractional test_size must be in [0, 1), got {test_size}")
        target = int(round(test_size * n))
    else:
        if test_size < 0:
            raise ValueError(f"test_size must be >= 0, got {test_size}")
        target = test_size
    if target >= n and n:
        raise ValueError(f"test_size={test_size} leaves nothing to train on ({n} examples); pass a smaller count "
                         "or a fraction such as 0.1")
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    order = list(groups.values())
    perm = np.random.default_rng(seed).permutation(len(order))
    mask = np.zeros(n, dtype=bool)
    taken = 0
    for g in perm.tolist():
        if taken >= target:
            break
        mask[order[g]] = True
        taken += len(order[g])
    return mask


def distill_dataset(dataset, template: str | Template = "vicuna_v1.1", layout: str = "auto", *,
                    tags_column: str | None = None, test_size: int | float | None = None, seed: int = 0,
                    query_column: str | None = None, format: str | None = None,
                    return_report: bool = False):
    """Training conversations for a local tagger from a teacher-tagged ``Dataset``.

    Parameters
    ----------
    template:
        ``"vicuna_v1.1"`` or ``"chatml"`` (or another :class:`~instag_hf.tagging.prompts.Template`
        without a response prefix); the same name serves at inference:
        ``Tagger(backend="transformers", model=<fine-tuned>, template=<same>)``.
    layout:
        See the module docstring.
    tags_column:
        Default: per-turn teacher tags. A column of tag strings (normalized tags) gives
        answers with empty explanations.
    test_size:
        Held-out examples: a count or a fraction in [0, 1). Default: the paper's 1000,
        but at most a tenth of the examples, so a small teacher set still trains.
    seed:
        Seeds the split.

    Returns a ``DatasetDict`` with ``train`` and ``test`` splits, each holding the
    layout's columns plus ``instag_query``, ``instag_row``, ``instag_turn`` and
    ``instag_gold_tags`` (drop these before training if the trainer minds them;
    :func:`save_distill` does). With ``return_report=True`` also a :class:`DistillReport`.
    """
    from datasets import Dataset, DatasetDict

    tmpl = get_template(template)
    resolved = resolve_layout(layout, tmpl)
    turns, skipped = tagged_turns(dataset, tags_column, query_column, format)
    if not turns:
        raise ValueError(f"no tagged user turn to learn from (skipped: {skipped})")
    if test_size is None:
        test_size = min(PAPER_TEST_SIZE, len(turns) // 10)
    mask = split_groups([q for _, _, q, _ in turns], test_size, seed)
    records = []
    for row, turn, query, items in turns:
        rec = example(tmpl, query, items, resolved)
        rec.update(instag_query=query, instag_row=row, instag_turn=turn,
                   instag_gold_tags=[i["tag"] for i in items])
        records.append(rec)
    splits = {name: Dataset.from_list([r for r, m in zip(records, mask) if m == want])
              if any(m == want for m in mask) else Dataset.from_list([])
              for name, want in (("train", False), ("test", True))}
    out = DatasetDict(splits)
    if not return_report:
        return out
    report = DistillReport(tmpl.id, resolved, len(records), int((~mask).sum()), int(mask.sum()), seed,
                           {k: v for k, v in skipped.items() if v})
    return out, report


def save_distill(splits, output: str | Path, report: DistillReport | None = None) -> dict[str, Path]:
    """Write ``train.jsonl``/``test.jsonl`` (layout columns only, ready for a trainer),
    ``heldout_gold.jsonl`` (test queries with the teacher's tags, for ``instag eval``)
    and ``distill.json`` (the report). Returns the paths."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("train", "test"):
        split = splits[name]
        keep = split.remove_columns([c for c in META_COLUMNS if c in split.column_names])
        path = out / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for rec in keep:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        paths[name] = path
    test = splits["test"]
    path = out / "heldout_gold.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(len(test)):
            fh.write(json.dumps({"id": i, "query": test[i]["instag_query"], "tags": test[i]["instag_gold_tags"]},
                                ensure_ascii=False) + "\n")
    paths["heldout_gold"] = path
    if report is not None:
        paths["report"] = out / "distill.json"
        write_json(paths["report"], report.as_dict())
    return paths


def finetune_command(data_dir: str | Path, base_model: str = "Qwen/Qwen2.5-0.5B",
                     output_dir: str = "instagger-local", epochs: int = 3) -> str:
    """A TRL CLI command that fine-tunes ``base_model`` on a :func:`save_distill` folder (documented, not run).

    ``--dataset_name`` takes the folder: ``datasets`` reads ``train.jsonl`` and
    ``test.jsonl`` as the ``train`` and ``test`` splits.
    """
    args = ["trl", "sft", "--model_name_or_path", base_model, "--dataset_name", str(data_dir),
            "--dataset_train_split", "train", "--dataset_test_split", "test", "--eval_strategy", "epoch",
            "--num_train_epochs", str(epochs), "--learning_rate", "2e-5", "--lr_scheduler_type", "cosine",
            "--warmup_ratio", "0.03", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "4",
            "--max_length", "2048", "--bf16", "--report_to", "none", "--output_dir", output_dir]
    return " ".join(shlex.quote(a) for a in args)
