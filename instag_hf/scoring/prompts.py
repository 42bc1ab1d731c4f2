"""Deita's two scorer prompts, versioned (their ``name@version`` is part of every cache key).

Word for word those of hkust-nlp/deita, ``src/deita/selection/scorer/llama_scorer.py``
(``Llama_Scorer.complexity_template`` and ``quality_template``): plain text, no chat
template, fed to the model as is (the LLaMA tokenizer adds its BOS).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..tagging.prompts import Prompt

DEITA_COMPLEXITY = ("You are a helpful assistant. Please identify the complexity score of the following user query. \n"
                    "##Query: {instruction}  \n##Complexity: ")
DEITA_QUALITY = ("You are a helpful assistant. Please identify the quality score of the Response corresponding to "
                 "the Question. \n #Question#:\n{instruction}\n#Response#:\n{output} \n##Quality: ")


@dataclass(frozen=True)
class ScoreTemplate:
    """A named, versioned plain-text scoring prompt with ``{instruction}`` (and ``{output}``) fields."""

    name: str
    version: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def render(self, instruction: str, output: str | None = None) -> Prompt:
        """The exact prompt text (sent to text endpoints and engines as is, BOS added by the tokenizer)."""
        text = self.text.format(instruction=instruction, output=output if output is not None else "")
        return Prompt(messages=({"role": "user", "content": text},), text=text)


COMPLEXITY = ScoreTemplate("deita-complexity", "1", DEITA_COMPLEXITY)
QUALITY = ScoreTemplate("deita-quality", "1", DEITA_QUALITY)
SCORE_TEMPLATES = {t.name: t for t in (COMPLEXITY, QUALITY)}
