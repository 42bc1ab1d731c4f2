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

Before lowercasing, words glued together are split (see :func:`split_words`), so that
"CodeGeneration", "SQLQuery" and "Python3" meet "code generation", "sql query" and
"python 3". Splitting only adds merges: tags the unsplit rules put together stay together,
so "JavaScript" still meets "javascript" (and is labelled "javascript" when that spelling
is written out more often than "java script").

A tag with nothing left after the rules (only punctuation: "...", "-", "?!") has no rule
group: it is dropped (``target == -1``, counted in ``dropped_tags``), never mapped to "".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np

from .base import StepResult, groups_to_result, is_empty

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


def split_words(text: str, keep_chars: str = "", digits: bool = True) -> str:
    """``text`` with a space at every boundary between glued words; nothing else changes.

    Boundaries: lower -> upper ("dataAnalysis" -> "data Analysis"); the last capital of an
    acronym before a capitalized word of two or more lowercase letters ("SQLQuery" -> "SQL
    Query", but "APIs", "IPv6" stay); a character of ``keep_chars`` -> letter or digit
    ("C++Programming" -> "C++ Programming"); and with ``digits``, letter <-> digit in
    either direction ("Python3" -> "Python 3", "3D" -> "3 D", "x86" -> "x 86").
    """
    if text.isascii():
        return _ascii_boundaries(keep_chars, digits).sub(" ", text)
    out = []
    n = len(text)
    for i, b in enumerate(text):
        if i:
            a = text[i - 1]
            if ((a.islower() and b.isupper())
                    or (a.isupper() and b.isupper() and i + 2 < n and text[i + 1].islower()
                        and text[i + 2].islower())
                    or (a in keep_chars and b.isalnum())
                    or (digits and ((a.isalpha() and b.isdigit()) or (a.isdigit() and b.isalpha())))):
                out.append(" ")
        out.append(b)
    return "".join(out)


@lru_cache(maxsize=64)
def _ascii_boundaries(keep_chars: str, digits: bool) -> re.Pattern:
    """:func:`split_words`' boundaries as one pattern, for ASCII text."""
    parts = [r"(?<=[a-z])(?=[A-Z])", r"(?<=[A-Z])(?=[A-Z][a-z]{2})"]
    if keep_chars:
        parts.append(rf"(?<=[{re.escape(keep_chars)}])(?=[A-Za-z0-9])")
    if digits:
        parts.append(r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
    return re.compile("|".join(parts))


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
        See ``strip_special``; ``""`` (with ``keep_leading=""``) applies the paper's rule literally.
    keep_leading:
        Characters kept at the start of a word (not after a letter or digit) when a letter
        follows, so that ".NET" stays ".net" and does not merge with "NET"; "ASP.NET" still
        becomes "asp net".
    lemmatize:
        Reduce every word to its lemma ("Data Analyses" -> "data analysis").
    label:
        The text of a merged group: ``"lemma"`` (the rules' output, as in the paper:
        "social medium") or ``"frequent"`` (its most frequent member after lowercasing
        and cleaning, before lemmatizing: "social media").
    split_case:
        Split glued words before lowercasing (:func:`split_words`): camelCase, PascalCase
        and acronyms ("SQLQuery" -> "sql query"), and letters from digits ("Python3",
        "python-3" -> "python 3"; "3D", "3-D" -> "3 d"). A tag is grouped both by its split
        key and by its unsplit key, so every merge of the unsplit rules is kept
        ("JavaScript" with "javascript"). Labels never split digits ("3d graphic"); a
        camelCase member reads split unless its unsplit spelling is written out by more
        samples. ``False``: the paper's rules only.
    """

    name = "rules"
    title = "rule aggregation"

    def __init__(self, lowercase: bool = True, strip_special: bool = True, keep_chars: str = "+#",
                 lemmatize: bool = True, label: str = "lemma", split_case: bool = True, keep_leading: str = "."):
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        for name, chars in (("keep_chars", keep_chars), ("keep_leading", keep_leading)):
            if not isinstance(chars, str) or any(c.isalnum() or c.isspace() for c in chars):
                raise ValueError(f"{name} must be a string of punctuation characters, got {chars!r}")
        self.lowercase, self.strip_special, self.keep_chars = bool(lowercase), bool(strip_special), keep_chars
        self.lemmatize, self.label, self.split_case = bool(lemmatize), label, bool(split_case)
        self.keep_leading = keep_leading
        kept = re.escape(keep_chars)
        other = rf"[^\w{kept}]" if keep_chars else r"[^\w]"
        if keep_leading:  # ".NET": a leading character before a letter, not after a letter or digit
            after = rf"[^\W_]|[{kept}]" if keep_chars else r"[^\W_]"
            other = rf"(?!(?<!{after})[{re.escape(keep_leading)}][^\W\d_]){other}"
        special = rf"(?<![^\W_]|[{kept}])[{kept}]+|{other}|_" if keep_chars else rf"{other}|_"
        self._special = re.compile(special)

    def __repr__(self) -> str:
        return (f"RuleAggregator(lowercase={self.lowercase}, strip_special={self.strip_special}, "
                f"keep_chars={self.keep_chars!r}, keep_leading={self.keep_leading!r}, lemmatize={self.lemmatize}, "
                f"label={self.label!r}, split_case={self.split_case})")

    def get_params(self) -> dict:
        return {"lowercase": self.lowercase, "strip_special": self.strip_special, "keep_chars": self.keep_chars,
                "keep_leading": self.keep_leading, "lemmatize": self.lemmatize, "label": self.label,
                "split_case": self.split_case}

    def clean(self, text: str) -> str:
        """The text after every rule but lemmatization."""
        return self._clean(text, self.split_case, self.split_case)

    def key(self, text: str) -> str:
        """The text every member of a rule group shares."""
        return self._lemmas(self.clean(text))

    def keys(self, text: str) -> tuple[str, ...]:
        """Every key ``text`` is grouped by: :meth:`key`, then the unsplit key if it differs."""
        if not self.split_case:
            return (self.key(text),)
        return tuple(dict.fromkeys((self.key(text), self._lemmas(self._clean(text, False, False)))))

    def _clean(self, text: str, split: bool, digits: bool) -> str:
        text = self._prepare(text)
        return self._finish(self._split(text, digits) if split else text)

    def _prepare(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        return _ACRONYM_PLURAL.sub(r"\1", text) if self.lemmatize else text

    def _split(self, text: str, digits: bool) -> str:
        split = split_words(text, self.keep_chars if self.strip_special else "", digits)
        if split != text and self.lemmatize:  # a plural freed by the split: "URLsParsing" -> "URLs Parsing"
            split = _ACRONYM_PLURAL.sub(r"\1", split)
        return split

    def _finish(self, text: str) -> str:
        if self.lowercase:
            text = text.lower()
        if self.strip_special:
            text = self._special.sub(" ", text)
        return _SPACES.sub(" ", text).strip()

    def _lemmas(self, cleaned: str) -> str:
        if not self.lemmatize:
            return cleaned
        return " ".join(lemma(w) if self.lowercase or w.islower() else w for w in cleaned.split(" "))

    def _readings(self, vocab: list[str], counts: np.ndarray) -> tuple[list[str], list[tuple[str, ...]]]:
        """Each tag's surface (its label candidate) and the keys that group it."""
        frequent = self.label == "frequent"
        if not self.split_case:
            cleaned = [self._clean(t, False, False) for t in vocab]
            keys = [(self._lemmas(c),) for c in cleaned]
            return (cleaned if frequent else [k[0] for k in keys]), keys
        rows = []
        for t in vocab:
            text = self._prepare(t)
            case, full = self._split(text, False), self._split(text, True)
            unsplit = self._finish(text)
            split = unsplit if case == text else self._finish(case)
            unsplit_key = self._lemmas(unsplit)
            split_key = unsplit_key if split == unsplit else self._lemmas(split)
            full_key = split_key if full == case else self._lemmas(self._finish(full))
            rows.append((unsplit, split, unsplit_key, split_key, full_key))
        # samples that write each key out with no case boundary: evidence for one reading
        written: dict[str, int] = {}
        for (unsplit, split, unsplit_key, _, _), n in zip(rows, counts):
            if unsplit == split:
                written[unsplit_key] = written.get(unsplit_key, 0) + int(n)
        surfaces, keys = [], []
        for unsplit, split, unsplit_key, split_key, full_key in rows:
            glued = written.get(unsplit_key, 0) > written.get(split_key, 0)
            surfaces.append((unsplit if glued else split) if frequent else (unsplit_key if glued else split_key))
            keys.append((full_key, unsplit_key))
        return surfaces, keys

    def fit(self, corpus, progress: bool = False) -> StepResult:
        from tqdm.auto import tqdm

        vocab, counts = list(corpus.vocab), np.asarray(corpus.counts)
        tags = tqdm(vocab, desc="Rule aggregation", unit="tag", disable=not progress, leave=False)
        all_surfaces, all_keys = self._readings(tags, counts)
        # a tag with nothing left after the rules ("...", "?!") has no group: it is dropped, never mapped to ""
        kept = np.fromiter((not is_empty(s) and any(not is_empty(k) for k in ks)
                            for s, ks in zip(all_surfaces, all_keys)), dtype=bool, count=len(vocab))
        dropped = ~kept
        surfaces = [s for s, k in zip(all_surfaces, kept) if k]
        keys = [tuple(x for x in ks if not is_empty(x)) for ks, k in zip(all_keys, kept) if k]
        kept_counts = counts[kept]
        surface_ids: dict[str, int] = {}
        sid = np.fromiter((surface_ids.setdefault(s, len(surface_ids)) for s in surfaces), dtype=np.int64,
                          count=len(surfaces))
        surface_counts = np.bincount(sid, weights=kept_counts, minlength=len(surface_ids)).astype(np.int64)
        # groups: surfaces joined through any shared key (union-find over the keys)
        parent = list(range(len(surface_ids)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        owner: dict[str, int] = {}
        for s, tag_keys in zip(sid, keys):
            for k in tag_keys:
                a, b = root(owner.setdefault(k, int(s))), root(int(s))
                if a != b:
                    parent[max(a, b)] = min(a, b)
        roots = [root(i) for i in range(len(surface_ids))]
        group_ids: dict[int, int] = {}
        labels = np.fromiter((group_ids.setdefault(r, len(group_ids)) for r in roots), dtype=np.int64,
                             count=len(roots))
        target, new_vocab = groups_to_result(labels, list(surface_ids), surface_counts)
        sizes = np.bincount(labels[sid], minlength=len(group_ids)) if len(sid) else np.zeros(0, dtype=np.int64)
        full = np.full(len(vocab), -1, dtype=np.int64)
        full[kept] = target[sid]
        stats = {"groups": len(group_ids), "merged_groups": int((sizes > 1).sum()),
                 "dropped_tags": int(dropped.sum()), "dropped_occurrences": int(counts[dropped].sum())}
        return StepResult(full, new_vocab, stats)
