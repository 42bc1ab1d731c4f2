"""Step 2: rule aggregation, merging tags that differ only in case, punctuation, spacing or inflection.

The paper lowercases, turns special characters into spaces and lemmatizes with NLTK's
WordNet (its figure shows "social medium", "physic", "problem solve"). NLTK's data
cannot be downloaded here, so lemmas come from ``lemminflect``, whose English
lexicon ships inside its wheel. Without a part-of-speech tagger each word takes the
first lemma of the first reading in the order noun, verb, adjective, adverb: tags
are noun phrases, and a word with no noun reading is almost always a gerund
("solving" -> "solve", as in the paper). Words missing from the lexicon stay as they
are (WordNet does the same), except an all-capitals plural such as "APIs" or "LLMs",
which loses its "s".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np

from .base import StepResult, groups_to_result

_POS_ORDER = ("NOUN", "VERB", "ADJ", "ADV", "PROPN", "AUX")
_ACRONYM_PLURAL = re.compile(r"\b([A-Z][A-Z0-9]+)s\b")
_SPACES = re.compile(r"\s+")
LABELS = ("lemma", "frequent")


@lru_cache(maxsize=1 << 18)
def lemma(word: str) -> str:
    """The lemma of one lowercase word (see the module docstring for the policy)."""
    if not word.isalpha():
        return word
    import lemminflect

    readings = lemminflect.getAllLemmas(word)
    for pos in _POS_ORDER:
        if pos in readings and readings[pos]:
            found = readings[pos][0]
            # the lexicon spells some verbs the British way ("programming" -> "programme"):
            # a lemma must not re-spell the word's own stem
            if found.endswith("mme") and word.startswith(found[:-2]) and not word.startswith(found):
                found = found[:-2]
            return found
    return word


class RuleAggregator:
    """Merges tags that are equal after simple rules; each switchable.

    Parameters
    ----------
    lowercase:
        Compare case-insensitively.
    strip_special:
        Every character that is not a letter or digit becomes a space (the paper's
        rule), except ``keep_chars`` directly after a letter or digit, so that "C++",
        "C#" and "F#" survive and do not merge with "C" and "F".
    keep_chars:
        See ``strip_special``; ``""`` applies the paper's rule literally.
    lemmatize:
        Reduce every word to its lemma ("Data Analyses" -> "data analysis").
    label:
        The text of a merged group: ``"lemma"`` (the rules' output, as in the paper:
        "social medium") or ``"frequent"`` (its most frequent member after lowercasing
        and cleaning, before lemmatizing: "social media").
    """

    name = "rules"
    title = "rule aggregation"

    def __init__(self, lowercase: bool = True, strip_special: bool = True, keep_chars: str = "+#",
                 lemmatize: bool = True, label: str = "lemma"):
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        if not isinstance(keep_chars, str) or any(c.isalnum() or c.isspace() for c in keep_chars):
            raise ValueError(f"keep_chars must be a string of punctuation characters, got {keep_chars!r}")
        self.lowercase, self.strip_special, self.keep_chars = bool(lowercase), bool(strip_special), keep_chars
        self.lemmatize, self.label = bool(lemmatize), label
        kept = re.escape(keep_chars)
        special = rf"(?<![^\W_]|[{kept}])[{kept}]+|[^\w{kept}]|_" if keep_chars else r"[^\w]|_"
        self._special = re.compile(special)

    def __repr__(self) -> str:
        return (f"RuleAggregator(lowercase={self.lowercase}, strip_special={self.strip_special}, "
                f"keep_chars={self.keep_chars!r}, lemmatize={self.lemmatize}, label={self.label!r})")

    def get_params(self) -> dict:
        return {"lowercase": self.lowercase, "strip_special": self.strip_special, "keep_chars": self.keep_chars,
                "lemmatize": self.lemmatize, "label": self.label}

    def clean(self, text: str) -> str:
        """The text after every rule but lemmatization."""
        text = unicodedata.normalize("NFKC", text)
        if self.lemmatize:
            text = _ACRONYM_PLURAL.sub(r"\1", text)
        if self.lowercase:
            text = text.lower()
        if self.strip_special:
            text = self._special.sub(" ", text)
        return _SPACES.sub(" ", text).strip()

    def key(self, text: str) -> str:
        """The text every member of a rule group shares."""
        cleaned = self.clean(text)
        if not self.lemmatize:
            return cleaned
        return " ".join(lemma(w) if self.lowercase or w.islower() else w for w in cleaned.split(" "))

    def fit(self, corpus, progress: bool = False) -> StepResult:
        from tqdm.auto import tqdm

        vocab, counts = corpus.vocab, corpus.counts
        keys = [self.key(t) for t in tqdm(vocab, desc="Rule aggregation", unit="tag", disable=not progress,
                                          leave=False)]
        surfaces = keys if self.label == "lemma" else [self.clean(t) for t in vocab]
        surface_ids: dict[str, int] = {}
        sid = np.fromiter((surface_ids.setdefault(s, len(surface_ids)) for s in surfaces), dtype=np.int64,
                          count=len(surfaces))
        surface_counts = np.bincount(sid, weights=counts, minlength=len(surface_ids)).astype(np.int64)
        surface_key = dict(zip(surfaces, keys))
        key_ids: dict[str, int] = {}
        labels = np.fromiter((key_ids.setdefault(surface_key[s], len(key_ids)) for s in surface_ids),
                             dtype=np.int64, count=len(surface_ids))
        target, new_vocab = groups_to_result(labels, list(surface_ids), surface_counts)
        sizes = np.bincount(labels[sid], minlength=len(key_ids)) if len(sid) else np.zeros(0, dtype=np.int64)
        stats = {"groups": len(key_ids), "merged_groups": int((sizes > 1).sum())}
        return StepResult(target[sid], new_vocab, stats)
