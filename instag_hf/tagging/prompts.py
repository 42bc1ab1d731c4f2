"""Versioned prompt templates for tagging one user query.

A template's ``name@version`` goes into every cache key and every published card:
change a template's wording and you must bump its version, so cached answers to the
old wording are never reused for the new one.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from .parsing import MAX_TAG_CHARS, MAX_TAGS

TAGS_JSON_SCHEMA: dict = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"tag": {"type": "string"}, "explanation": {"type": "string"}},
        "required": ["tag", "explanation"],
        "additionalProperties": False,
    },
}

# For engines that enforce string and array bounds while decoding (vLLM): a weak model's
# run-away string is closed at the bound instead of running into max_tokens and losing the
# whole answer. Bounds match what the parser keeps; explanations are one sentence.
SCHEMA_EXPLANATION_CHARS = 200
BOUNDED_TAGS_SCHEMA_ID = "tags-bounded@1"
BOUNDED_TAGS_JSON_SCHEMA: dict = {
    "type": "array",
    "maxItems": MAX_TAGS,
    "items": {
        "type": "object",
        "properties": {"tag": {"type": "string", "maxLength": MAX_TAG_CHARS},
                       "explanation": {"type": "string", "maxLength": SCHEMA_EXPLANATION_CHARS}},
        "required": ["tag", "explanation"],
        "additionalProperties": False,
    },
}

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

# Our own wording of the paper's teacher prompt (InsTag paper, section 2.1).
TEACHER_PROMPT = (
    "You are a tagging system that labels the intentions behind instructions people "
    "give to a helpful AI assistant. The instruction is shown between [begin] and [end].\n"
    "[begin]\n{query}\n[end]\n"
    "Give coarse-grained tags that capture what the user wants, at about the "
    'granularity of "Spelling and Grammar Check" or "Cosplay". For each tag add a brief '
    "explanation. Answer in English and strictly as a JSON list, with nothing before or "
    'after it: [{{"tag": str, "explanation": str}}].'
)

INSTAGGER_PROMPT = (
    "Please identify tags of user intentions in the following user query and provide an "
    'explanation for each tag. Please respond in the JSON format {{"tag": str, '
    '"explanation": str}}.\nUser query: {query}'
)

# The InsTag paper's own ChatGPT prompt (its prompt table), sentence for sentence: the system
# sentence as the system message, the instruction, "Query:" with the query, and "Assistant:".
PAPER_SYSTEM = "You are a helpful assistant."
PAPER_PROMPT = (
    "Please identify tags of user intentions in the following user query and explain each tag. "
    'Please respond in the JSON format {{"tag": str, "explanation": str}}.\n'
    "Query: {query}\n"
    "Assistant:"
)

#: answer budget of the templates that ask for tags with explanations; the tools that run
#: InsTagger use 512 to 1024 new tokens, and a cut answer is asked again with a larger one
TAGGING_MAX_NEW_TOKENS = 512

_FEW_SHOT = (
    (
        "Write a Flask endpoint that creates and deletes users, returns JSON and handles errors.",
        [
            {"tag": "Web Development", "explanation": "Building a web API endpoint with Flask."},
            {"tag": "CRUD Operation", "explanation": "Creating and deleting user records."},
            {"tag": "JSON Data Format", "explanation": "Responses are returned as JSON."},
            {"tag": "Error Handling", "explanation": "The endpoint must handle failures."},
        ],
    ),
    (
        "Fix the grammar in this sentence: 'She don't like apples.'",
        [{"tag": "Spelling and Grammar Check", "explanation": "Correcting a grammatical error."}],
    ),
    (
        "Pretend you are Sherlock Holmes and describe your morning in three sentences.",
        [
            {"tag": "Cosplay", "explanation": "Speaking as a fictional character."},
            {"tag": "Creative Writing", "explanation": "Inventing a short narrative."},
            {"tag": "Length Constraint", "explanation": "Limited to three sentences."},
        ],
    ),
    (
        "A train travels 120 km in 1.5 hours. What is its average speed?",
        [
            {"tag": "Math Word Problem", "explanation": "A numeric question set in a story."},
            {"tag": "Speed Calculation", "explanation": "Dividing distance by time."},
        ],
    ),
)


FEWSHOT_SYSTEM = (
    "You label a user's query with short lowercase intention tags: what task the user wants done, "
    "the topic or domain, and every constraint on the answer (format, length, style, audience). "
    "Answer only with a JSON list of strings."
)


@dataclass(frozen=True)
class Prompt:
    """What a backend sends for one query.

    ``messages`` feed chat APIs and chat templates. ``text`` is set when the
    template fixes the exact prompt string (Vicuna), which completion-style backends
    then use verbatim. ``response_prefix`` is text the assistant's answer is forced
    to start with where the backend can prefill it; the parser sees prefix + answer.
    """

    messages: tuple[dict, ...]
    text: str | None = None
    response_prefix: str = ""


@dataclass(frozen=True)
class Template:
    """A named, versioned way to ask a model for the tags of one query."""

    name: str
    version: str
    user: str
    system: str | None = None
    few_shot: tuple = ()
    response_prefix: str = ""
    vicuna: bool = False
    stop: tuple[str, ...] = ()
    #: default answer budget when the Tagger is not given one
    max_new_tokens: int = TAGGING_MAX_NEW_TOKENS
    description: str = ""
    #: few-shot examples taken per query from the packaged bank (:mod:`.fewshot`) instead of ``few_shot``
    retrieve: int = 0

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def examples(self, query: str) -> tuple:
        """The few-shot ``(query, answer)`` pairs for ``query``: fixed, or the nearest of the bank."""
        if not self.retrieve:
            return self.few_shot
        from .fewshot import default_bank

        return tuple((e.query, list(e.tags)) for e in default_bank().nearest([query], self.retrieve)[0])

    def render(self, query: str) -> Prompt:
        messages: list[dict] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for q, answer in self.examples(query):
            messages.append({"role": "user", "content": self.user.format(query=q)})
            messages.append({"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)})
        user = self.user.format(query=query)
        messages.append({"role": "user", "content": user})
        text = f"{self.system} USER: {user} ASSISTANT:" if self.vicuna else None
        return Prompt(tuple(messages), text, self.response_prefix)


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="teacher",
            version="1",
            user=TEACHER_PROMPT,
            description="Zero-shot teacher prompt of the paper (ChatGPT/GPT-4), in our own wording.",
        ),
        Template(
            name="vicuna_v1.1",
            version="1",
            user=INSTAGGER_PROMPT,
            system=VICUNA_SYSTEM,
            vicuna=True,
            description="InsTagger (OFA-Sys/InsTagger, LLaMA-2-7B): the paper's instruction with the query in "
                        "FastChat Vicuna v1.1, as the tools that run InsTagger use it; unconfirmed by the authors.",
        ),
        Template(
            name="vicuna_v1.1_raw",
            version="1",
            user="{query}",
            system=VICUNA_SYSTEM,
            vicuna=True,
            description="InsTagger, the other reading: the query alone as the user turn under the Vicuna v1.1 "
                        "system line (what a maintainer said of the later Qwen tagger); unconfirmed.",
        ),
        Template(
            name="paper",
            version="1",
            user=PAPER_PROMPT,
            system=PAPER_SYSTEM,
            description="The InsTag paper's ChatGPT prompt, verbatim (system sentence, instruction, "
                        "'Query:', 'Assistant:'); for chat APIs.",
        ),
        Template(
            name="chatml",
            version="1",
            user="{query}",
            system="You are a helpful assistant.",
            description="Qwen-1.8B InsTagger: ChatML with the raw query as the user turn.",
        ),
        Template(
            name="fewshot",
            version="1",
            user="Tag the intentions of this query. Answer with a one-line JSON list of {{\"tag\", \"explanation\"}} objects; keep each explanation short.\nQuery: {query}",
            system="You label user queries with short intention tags in Title Case and answer only with JSON.",
            few_shot=_FEW_SHOT,
            response_prefix='[{"tag": "',
            stop=("]", "\n"),
            max_new_tokens=128,
            description="Few-shot prompt with a JSON prefill, for small local chat models (the embedded default).",
        ),
        Template(
            name="fewshot_retrieval",
            version="2",
            user="Tag the intentions of this query.\nQuery: {query}",
            system=FEWSHOT_SYSTEM,
            retrieve=4,
            response_prefix='["',
            stop=("]", "\n"),
            max_new_tokens=48,
            # version 2: the bank grew from 240 to 2,009 queries, so the examples changed
            description="For small local chat models: the 4 examples of the packaged bank "
                        "nearest to each query (MiniLM), tags only, as a prefilled JSON list of strings.",
        ),
    )
}


def get_template(template: str | Template) -> Template:
    """A template by name (one of :data:`TEMPLATES`: ``"teacher"``, ``"paper"``, ``"vicuna_v1.1"``,
    ``"vicuna_v1.1_raw"``, ``"chatml"``, ``"fewshot"``, ``"fewshot_retrieval"``) or as given."""
    if isinstance(template, Template):
        return template
    name = template.split("@", 1)[0]
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; known: {sorted(TEMPLATES)} (or pass a Template)")
    found = TEMPLATES[name]
    if "@" in template and template != found.id:
        raise ValueError(f"template {template!r} is not available; this version of instag_hf has {found.id}")
    return found


@functools.cache
def _wrappers() -> tuple[tuple[str, str], ...]:
    """(text before, text after) the query in each registered template's user turn, longest first."""
    found = set()
    for t in TEMPLATES.values():
        if "{query}" in t.user:
            before, _, after = t.user.partition("{query}")
            pair = (before.replace("{{", "{").replace("}}", "}"), after.replace("{{", "{").replace("}}", "}"))
            if pair != ("", ""):
                found.add(pair)
    return tuple(sorted(found, key=lambda p: -(len(p[0]) + len(p[1]))))


def query_of(prompt: Prompt) -> str:
    """The query inside a rendered prompt: the last user turn, unwrapped from a known template
    (for backends that read the query itself rather than the prompt: retrieval, local)."""
    users = [m["content"] for m in prompt.messages if m.get("role") == "user"]
    text = users[-1] if users else (prompt.text or "")
    for before, after in _wrappers():
        if text.startswith(before) and text.endswith(after) and len(text) >= len(before) + len(after):
            return text[len(before): len(text) - len(after)]
    return text
