"""Versioned prompts for an LLM judge of tag quality (precision and consistency).

Like :mod:`instag_hf.tagging.prompts`, each template has a ``name@version`` that goes into
the judge's cache key and into every verdict it records: change the wording, bump
the version. The wording is ours; the paper only says what GPT-4 was asked to judge.

Backends that can prefill the answer (transformers, vLLM) start it with
``{"verdict": "``, which keeps small local judges on the JSON answer; chat APIs get
the same request without the prefill.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from ..tagging.prompts import Prompt

METRICS = ("precision", "consistency")

JUDGE_SYSTEM = (
    "You review the output of an automatic tagging system. It labels each query that a user sends to an AI "
    "assistant with short tags naming the user's intentions. You answer only with JSON."
)

PRECISION_PROMPT = (
    "Here is a user query, shown between [begin] and [end], and the tags the tagging system gave it.\n"
    "[begin]\n{query}\n[end]\n"
    "Tags: {tags}\n\n"
    "Does every one of these tags correctly name an intention of the query? Answer \"yes\" only if all of "
    "them fit; answer \"no\" if at least one tag is wrong, unrelated or misleading for this query.\n"
    'Reply with JSON only: {{"verdict": "yes" or "no", "reason": "one short sentence"}}'
)

CONSISTENCY_PROMPT = (
    "The tagging system attached the tag {tag} to each of the {count} user queries below.\n\n"
    "{queries}\n\n"
    "Does this tag keep one and the same meaning across all of these queries? Answer \"no\" if the tag "
    "means different things in different queries (for example \"Python\" for the programming language in "
    "one query and for the snake in another), otherwise \"yes\". Whether the tag is a good fit is not the "
    "question here, only whether its meaning stays the same.\n"
    'Reply with JSON only: {{"verdict": "yes" or "no", "reason": "one short sentence"}}'
)


@dataclass(frozen=True)
class JudgeTemplate:
    """A named, versioned question to the judge for one metric."""

    name: str
    version: str
    metric: str
    user: str
    system: str | None = JUDGE_SYSTEM
    response_prefix: str = '{"verdict": "'
    max_new_tokens: int = 128
    description: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def render(self, queries: Sequence[str], tags: Sequence[str]) -> Prompt:
        """The prompt for one case: a query and its tags (precision) or a tag and its queries (consistency)."""
        if self.metric == "precision":
            if len(queries) != 1:
                raise ValueError(f"a precision case has one query, got {len(queries)}")
            user = self.user.format(query=queries[0], tags=json.dumps(list(tags), ensure_ascii=False))
        else:
            if len(tags) != 1:
                raise ValueError(f"a consistency case has one tag, got {len(tags)}")
            shown = "\n\n".join(f"Query {i}:\n[begin]\n{q}\n[end]" for i, q in enumerate(queries, 1))
            user = self.user.format(tag=json.dumps(tags[0], ensure_ascii=False), count=len(queries), queries=shown)
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": user}]
        return Prompt(tuple(messages), None, self.response_prefix)


JUDGE_TEMPLATES: dict[str, JudgeTemplate] = {
    t.name: t
    for t in (
        JudgeTemplate("precision", "1", "precision", PRECISION_PROMPT,
                      description="Do all tags of a query name its intentions? One verdict per case."),
        JudgeTemplate("consistency", "1", "consistency", CONSISTENCY_PROMPT,
                      description="Does one tag keep its meaning across the queries it is attached to?"),
    )
}


def get_judge_template(template: str | JudgeTemplate, metric: str | None = None) -> JudgeTemplate:
    """A judge template by name (``"precision"``, ``"consistency"``, optionally ``@version``) or as given."""
    if isinstance(template, JudgeTemplate):
        found = template
    else:
        name = template.split("@", 1)[0]
        if name not in JUDGE_TEMPLATES:
            raise ValueError(f"unknown judge template {template!r}; known: {sorted(JUDGE_TEMPLATES)} "
                             "(or pass a JudgeTemplate)")
        found = JUDGE_TEMPLATES[name]
        if "@" in template and template != found.id:
            raise ValueError(f"judge template {template!r} is not available; this version of instag_hf has {found.id}")
    if found.metric not in METRICS:
        raise ValueError(f"judge template {found.id} has metric {found.metric!r}; expected one of {METRICS}")
    if metric is not None and found.metric != metric:
        raise ValueError(f"judge template {found.id} judges {found.metric}, not {metric}")
    return found
