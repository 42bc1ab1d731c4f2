"""A synthetic tagged corpus with known truth, for tests and benchmarks of tag normalization.

:func:`make_corpus` draws samples whose tags come from "concepts" with Zipf-like
popularity. Each concept is written in several ways that tag normalization should
merge:

- lexical variants: case, punctuation, spacing, plural head noun ("Data Analysis",
  "data-analysis", "DATA ANALYSES", "data  analysis.");
- paraphrases (a few hand-written concepts, among the popular ones): "Text Summarization",
  "Summarizing Text";
- rare noise tags (made-up words, held by one or two samples), to be filtered;
- pairs of concepts that always occur together: every sample tagged A is tagged B.

The truth comes as three groupings of the raw tags (:class:`SyntheticCorpus`), and
:func:`bcubed` scores a predicted grouping against one of them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np

from instag_hf import schema

#: modifiers: lowercase words that are their own lemma and never merge with one another
TOPICS = """
python java sql poetry history finance travel cooking music chemistry biology marketing fitness nutrition law tax
career garden fashion film sport weather ocean space robot network cloud security privacy budget invoice resume
interview email essay novel recipe physics algebra geometry calculus statistic economy politics religion philosophy
psychology medicine dental pet dog cat bird horse farm wine coffee tea beer baking vegan diet yoga running cycling
chess soccer tennis golf hockey baseball guitar piano violin jazz opera theater dance painting photography sculpture
architecture interior furniture kitchen bathroom plumbing electric solar battery engine aviation railway shipping
logistics retail startup investment insurance mortgage banking crypto blockchain javascript rust kotlin swift linux
windows android docker kubernetes database spreadsheet website browser keyboard printer camera drone satellite
telescope volcano earthquake climate forest desert river mountain island city village school university homework
grammar vocabulary translation spelling punctuation rhyme joke riddle puzzle trivia quiz game toy birthday wedding
holiday vacation hotel restaurant menu party gift charity volunteer parenting baby teenager retirement
""".split()

#: head nouns with their plural, the inflection variants the rules must undo
HEADS = [
    ("analysis", "analyses"), ("question", "questions"), ("request", "requests"), ("explanation", "explanations"),
    ("recommendation", "recommendations"), ("query", "queries"), ("summary", "summaries"), ("guide", "guides"),
    ("tip", "tips"), ("strategy", "strategies"), ("comparison", "comparisons"), ("review", "reviews"),
    ("plan", "plans"), ("problem", "problems"), ("calculation", "calculations"), ("definition", "definitions"),
    ("example", "examples"), ("idea", "ideas"), ("issue", "issues"), ("method", "methods"), ("policy", "policies"),
    ("report", "reports"), ("rule", "rules"), ("technique", "techniques"), ("tool", "tools"), ("trend", "trends"),
    ("exercise", "exercises"), ("fact", "facts"), ("feature", "features"), ("lesson", "lessons"),
    ("model", "models"), ("option", "options"), ("resource", "resources"), ("step", "steps"), ("task", "tasks"),
    ("template", "templates"), ("term", "terms"), ("theory", "theories"), ("topic", "topics"),
    ("evaluation", "evaluations"), ("error", "errors"), ("estimate", "estimates"), ("forecast", "forecasts"),
    ("outline", "outlines"), ("prediction", "predictions"), ("schedule", "schedules"), ("script", "scripts"),
    ("solution", "solutions"), ("suggestion", "suggestions"), ("checklist", "checklists"),
]

#: concepts written in different words; a good phrase encoder should merge each line
PARAPHRASES = [
    ("Text Summarization", "Summarizing Text", "Summarization of Text"),
    ("Code Debugging", "Debugging Code", "Fixing Code Bugs"),
    ("Language Translation", "Translating Languages", "Translation Between Languages"),
    ("Grammar Correction", "Correcting Grammar", "Grammar Fixing"),
    ("Email Writing", "Writing Emails", "Email Composition"),
    ("Travel Recommendations", "Travel Suggestions", "Recommending Travel Destinations"),
    ("Recipe Request", "Requesting a Recipe", "Asking for a Recipe"),
    ("Math Problem Solving", "Solving Math Problems", "Mathematical Problem Solving"),
    ("Creative Writing", "Creative Story Writing", "Imaginative Writing"),
    ("Data Visualization", "Visualizing Data", "Data Plotting"),
    ("Sentiment Analysis", "Analyzing Sentiment", "Sentiment Detection"),
    ("Job Interview Preparation", "Preparing for a Job Interview", "Interview Preparation"),
    ("Health Advice", "Medical Advice", "Advice on Health"),
    ("Product Description", "Describing a Product", "Product Descriptions Writing"),
    ("Historical Facts", "Facts About History", "History Facts"),
    ("Unit Conversion", "Converting Units", "Measurement Conversion"),
    ("Poem Generation", "Generating Poems", "Poetry Generation"),
    ("SQL Query Writing", "Writing SQL Queries", "SQL Query Generation"),
    ("Word Definition", "Defining Words", "Meaning of a Word"),
    ("Joke Telling", "Telling Jokes", "Humor Request"),
]

_SYLLABLES = ("ka lo mi ru ze ta vo pi xu ne bra qui dor fen gal hul jin kor lum mox nyr opi pra sto tev "
              "uln vex wop yar zim").split()


@dataclass
class SyntheticCorpus:
    """Samples of raw tags and the truth about them.

    ``lexical[tag]``: the phrasing it is a variant of (what rule aggregation should find);
    ``concept[tag]``: its concept (paraphrases merged, what semantic aggregation should
    add); ``merged[tag]``: its concept after association (A of an always-together pair
    becomes B). Noise tags are their own group in all three.
    """

    samples: list[list[str]]
    lexical: dict[str, str]
    concept: dict[str, str]
    merged: dict[str, str]
    noise: set[str]
    pairs: list[tuple[str, str]]
    paraphrase_concepts: set[str] = field(default_factory=set)
    failed_rows: int = 0

    @property
    def raw_tags(self) -> list[str]:
        return list(self.lexical)

    def counts(self) -> Counter:
        return Counter(t for tags in self.samples for t in tags)

    def to_dataset(self):
        """A tagged ``Dataset`` (``instag_tags``, ``instag_status``); failed rows have no tags."""
        import pyarrow as pa
        from datasets import Dataset, Features, List, Value
        from datasets.table import InMemoryTable

        n = len(self.samples) + self.failed_rows
        lengths = np.fromiter((len(s) for s in self.samples), dtype=np.int32, count=len(self.samples))
        lengths = np.concatenate([lengths, np.zeros(self.failed_rows, dtype=np.int32)])
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        flat = pa.array([t for s in self.samples for t in s], type=pa.string())
        items = pa.StructArray.from_arrays([flat, pa.array([""] * len(flat), type=pa.string())],
                                           names=["tag", "explanation"])
        status = [schema.OK] * len(self.samples) + [schema.PARSE_ERROR] * self.failed_rows
        table = pa.table({
            "id": pa.array(np.arange(n, dtype=np.int64)),
            schema.TAGS: pa.ListArray.from_arrays(pa.array(offsets), items),
            schema.STATUS: pa.array(status, type=pa.string()),
        })
        features = Features({"id": Value("int64"), schema.TAGS: List(schema.TAG_ITEM), schema.STATUS: Value("string")})
        return Dataset(InMemoryTable(table.cast(features.arrow_schema)))

    def embedder(self, dim: int = 32, noise: float = 0.12, seed: int = 0) -> "SyntheticEmbedder":
        """A :class:`SyntheticEmbedder` that knows every raw tag's concept and its forms after the default rules."""
        from instag_hf.normalize.rules import RuleAggregator

        rules = RuleAggregator()
        ids: dict[str, int] = {}
        concept_of: dict[str, int] = {}
        for tag, concept in self.concept.items():
            if tag in self.noise:
                continue
            cid = ids.setdefault(concept, len(ids))
            for form in (tag, rules.clean(tag), rules.key(tag)):
                concept_of.setdefault(form, cid)
        return SyntheticEmbedder(concept_of, dim=dim, noise=noise, seed=seed)


def _variants(words: Sequence[str], plural: str | None, rng: np.random.Generator, n: int) -> list[str]:
    """The canonical Title Case form and ``n`` distinct lexical variants of a phrase."""
    title = " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in words)
    low = " ".join(words).lower()
    forms = [low, title.upper(), "-".join(w for w in title.split()), low.replace(" ", "_"),
             low.replace(" ", "  ") + ".", f"{title}!", title.replace(" ", " / ")]
    if plural:
        plural_words = [*words[:-1], plural]
        plural_title = " ".join(w[:1].upper() + w[1:] for w in plural_words)
        forms += [plural_title, " ".join(plural_words).lower()]
    forms = list(dict.fromkeys(f for f in forms if f != title))
    chosen = rng.choice(len(forms), size=min(n, len(forms)), replace=False)
    return [title] + [forms[i] for i in sorted(chosen)]


def _noise_words(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    seen = set(taken)
    syl = np.array(_SYLLABLES)
    while len(out) < n:
        k = max(1024, (n - len(out)) * 2)
        parts = syl[rng.integers(len(syl), size=(k, 5))]
        lens = rng.integers(2, 4, size=(k, 2))
        for row, (a, b) in zip(parts, lens):
            tag = "".join(row[:a]).capitalize() + " " + "".join(row[a:a + b]).capitalize()
            if tag not in seen:
                seen.add(tag)
                out.append(tag)
                if len(out) == n:
                    break
    return out


def _reserved() -> set[str]:
    """The paraphrases' phrasings, lowercase with singular heads: generated phrases must differ from them."""
    singular = {plural: single for single, plural in HEADS}
    return {" ".join(singular.get(w, w) for w in phrase.lower().split()) for line in PARAPHRASES for phrase in line}


def concept_phrases(n: int, rng: np.random.Generator) -> list[tuple[list[str], str | None]]:
    """``n`` distinct generated phrases (words, plural of the head): "Topic Head", then "Topic Topic Head"."""
    reserved = _reserved()
    pairs = [(t, h) for t in TOPICS for h in range(len(HEADS)) if f"{t} {HEADS[h][0]}" not in reserved]
    order = rng.permutation(len(pairs))
    out = []
    for i in order[:n]:
        topic, h = pairs[i]
        out.append(([topic, HEADS[h][0]], HEADS[h][1]))
    if n > len(out):
        k = n - len(out)
        triples = set()
        while len(triples) < k:
            a, b = rng.integers(len(TOPICS), size=2)
            h = int(rng.integers(len(HEADS)))
            if a != b:
                triples.add((int(a), int(b), h))
        for a, b, h in sorted(triples):
            out.append(([TOPICS[a], TOPICS[b], HEADS[h][0]], HEADS[h][1]))
    return out


def make_corpus(n_samples: int = 2000, n_concepts: int = 150, tags_per_sample: float = 4.5,
                max_variants: int = 3, paraphrases: bool = True, noise_tags: int = 300, n_pairs: int = 5,
                zipf: float = 0.9, variant_share: float = 0.5, failed_fraction: float = 0.01,
                seed: int = 0) -> SyntheticCorpus:
    """Draw a :class:`SyntheticCorpus` (deterministic for a seed).

    ``tags_per_sample`` is the mean tag count of a sample before de-duplication,
    counting noise and partner tags; ``noise_tags`` unique noise tags are spread over
    random samples (one or two each); ``n_pairs`` concepts A (from popularity rank 20
    on) get a partner B drawn among the 10 most popular concepts, added to every sample
    holding A. ``variant_share`` of a concept's occurrences use a form other than its
    first (the first phrasing's Title Case).
    """
    if n_samples < 1 or n_concepts < 1:
        raise ValueError("n_samples and n_concepts must be >= 1")
    if not 0 < variant_share < 1:
        raise ValueError(f"variant_share must be in (0, 1), got {variant_share}")
    rng = np.random.default_rng(seed)
    para = PARAPHRASES[: min(len(PARAPHRASES), n_concepts // 5)] if paraphrases else []
    generated = concept_phrases(n_concepts - len(para), rng)

    forms: list[list[str]] = []  # per concept: every raw form (canonical phrasing's title form first)
    lexical: dict[str, str] = {}
    concept_of: dict[str, str] = {}
    para_names: set[str] = set()
    for phrasings in para:
        name = phrasings[0]
        para_names.add(name)
        all_forms = []
        for phrase in phrasings:
            variants = _variants(phrase.split(), None, rng, int(rng.integers(1, max_variants + 1)))
            for v in variants:
                lexical[v], concept_of[v] = phrase, name
            all_forms += variants
        forms.append(all_forms)
    for words, plural in generated:
        variants = _variants(words, plural, rng, int(rng.integers(1, max_variants + 1)))
        name = variants[0]
        for v in variants:
            lexical[v], concept_of[v] = name, name
        forms.append(variants)
    names = [concept_of[f[0]] for f in forms]

    # popularity: Zipf over a random order, paraphrased concepts among the top ranks (so that they
    # survive frequency filtering and the paraphrase score has tags to score)
    ranks = np.empty(len(forms), dtype=np.int64)
    top_k = min(len(forms), max(3 * len(para), len(forms) // 20))
    para_ranks = rng.choice(top_k, size=len(para), replace=False)
    rest = np.setdiff1d(np.arange(len(forms)), para_ranks)
    ranks[: len(para)] = para_ranks
    ranks[len(para):] = rng.permutation(rest)
    weights = 1.0 / np.power(ranks + 2.0, zipf)
    weights /= weights.sum()
    by_popularity = np.argsort(-weights, kind="stable")
    top = [int(c) for c in by_popularity[:10]]
    candidates = [int(c) for c in by_popularity[20:] if names[int(c)] not in para_names]
    pair_of: dict[int, int] = {}
    for a in candidates[:n_pairs]:
        pair_of[a] = top[int(rng.integers(len(top)))]
    merged = dict(concept_of)
    for a, b in pair_of.items():
        for f in forms[a]:
            merged[f] = names[b]

    pair_share = float(sum(weights[a] for a in pair_of))
    concept_draws = max(0, int(round((n_samples * tags_per_sample - noise_tags * 1.5) / (1 + pair_share))))
    sizes = rng.multinomial(concept_draws, np.full(n_samples, 1.0 / n_samples))
    draws = rng.choice(len(forms), size=concept_draws, p=weights)
    u = rng.random(concept_draws)
    n_forms = np.array([len(f) for f in forms])
    # the first form of a concept is drawn most of the time, the others share ``variant_share``
    pick = np.where(u >= variant_share, 0, 1 + (u / variant_share * (n_forms[draws] - 1)).astype(np.int64))
    pick = np.minimum(pick, n_forms[draws] - 1)

    noise = _noise_words(rng, noise_tags, set(lexical))
    noise_hits = rng.integers(n_samples, size=(noise_tags, 2))
    noise_twice = rng.random(noise_tags) < 0.5
    per_sample_noise: dict[int, list[str]] = {}
    for tag, (s1, s2), twice in zip(noise, noise_hits, noise_twice):
        per_sample_noise.setdefault(int(s1), []).append(tag)
        if twice and s2 != s1:
            per_sample_noise.setdefault(int(s2), []).append(tag)
    for tag in noise:
        lexical[tag] = concept_of[tag] = merged[tag] = tag

    samples: list[list[str]] = []
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    draws_l, pick_l = draws.tolist(), pick.tolist()
    for s in range(n_samples):
        tags: dict[str, None] = {}
        for k in range(offsets[s], offsets[s + 1]):
            c = draws_l[k]
            tags.setdefault(forms[c][pick_l[k]], None)
            partner = pair_of.get(c)
            if partner is not None:
                tags.setdefault(forms[partner][0], None)
        for tag in per_sample_noise.get(s, ()):
            tags.setdefault(tag, None)
        samples.append(list(tags))
    used = {t for tags in samples for t in tags}
    keep = lambda d: {k: v for k, v in d.items() if k in used}  # noqa: E731
    pairs = [(names[a], names[b]) for a, b in pair_of.items()]
    return SyntheticCorpus(samples=samples, lexical=keep(lexical), concept=keep(concept_of), merged=keep(merged),
                           noise=set(noise) & used, pairs=pairs, paraphrase_concepts=para_names,
                           failed_rows=int(round(failed_fraction * n_samples)))


def bcubed(predicted: Mapping[str, Hashable], gold: Mapping[str, Hashable],
           items: Iterable[str] | None = None) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 of a grouping of ``items`` (default: all keys of both).

    Each item's precision is the share of its predicted group that shares its gold
    group, its recall the share of its gold group in its predicted group; both are
    averaged over the items.
    """
    items = [i for i in (items if items is not None else predicted) if i in predicted and i in gold]
    if not items:
        return 0.0, 0.0, 0.0
    both = Counter((predicted[i], gold[i]) for i in items)
    pred = Counter(predicted[i] for i in items)
    true = Counter(gold[i] for i in items)
    precision = sum(n * n / pred[p] for (p, _), n in both.items()) / len(items)
    recall = sum(n * n / true[g] for (_, g), n in both.items()) / len(items)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = x.copy()
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_vectors(seeds: np.ndarray, dim: int) -> np.ndarray:
    """Unit vectors, a pure function of each 64-bit seed (uniform in the cube, then normalized)."""
    seeds = np.asarray(seeds, dtype=np.uint64)
    with np.errstate(over="ignore"):
        grid = seeds[:, None] * np.uint64(0x100000001B3) + np.arange(1, dim + 1, dtype=np.uint64)[None, :]
        bits = _splitmix(grid)
    vectors = (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53) * 2.0 - 1.0
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def _seed(text: str, salt: int) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8,
                                          salt=salt.to_bytes(8, "little")).digest(), "little")


class SyntheticEmbedder:
    """A cheap, deterministic stand-in for a sentence encoder (``list[str] -> np.ndarray``).

    A text listed in ``concept_of`` lands near its concept's direction (cosine about
    ``1 / (1 + noise**2)`` to the concept, so two forms of one concept are usually
    within eps 0.05 at the default noise); any other text gets its own random
    direction. It embeds a million tags in seconds, for benchmarks at scale.
    """

    cache_id = None  # nothing to cache: recomputing is cheaper than a lookup

    def __init__(self, concept_of: Mapping[str, int] | None = None, dim: int = 32, noise: float = 0.12,
                 seed: int = 0):
        self.concept_of = dict(concept_of or {})
        self.dim, self.noise, self.seed = dim, noise, seed

    def __repr__(self) -> str:
        return f"SyntheticEmbedder({len(self.concept_of)} known texts, dim={self.dim}, noise={self.noise})"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        own = hash_vectors(np.fromiter((_seed(t, self.seed) for t in texts), dtype=np.uint64, count=len(texts)),
                           self.dim)
        concept = np.fromiter((self.concept_of.get(t, -1) for t in texts), dtype=np.int64, count=len(texts))
        known = concept >= 0
        if known.any():
            base = hash_vectors(concept[known].astype(np.uint64) + np.uint64(self.seed << 32), self.dim)
            mixed = base + self.noise * own[known]
            own[known] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
        return own
