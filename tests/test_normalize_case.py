"""Rule aggregation splits camelCase, PascalCase, acronym and letter-digit boundaries."""

import pytest

from instag_hf.normalize import RuleAggregator, TagNormalizer
from instag_hf.analysis.tagsets import TagSets
from instag_hf.normalize import rules as rules_module

PHRASES = ["code generation", "data analysis", "sql query", "python 3", "error handling", "c++ programming",
           "web development", "json data format"]
# spellings a case-insensitive generator cannot produce: acronyms, glued digits, plurals
EXTRA = {
    "sql query": ["SQLQuery", "SQL Query", "sqlQuery", "SQL_QUERY", "SQLQueries", "SQL-Queries"],
    "python 3": ["Python3", "python3", "PYTHON3", "Python-3", "python_3"],
    "json data format": ["JSONDataFormat", "jsonDataFormat", "JSON data format", "JSON_DATA_FORMAT"],
    "code generation": ["CodeGenerations", "codeGenerations"],
    "c++ programming": ["C++Programming", "c++Programming", "C++_PROGRAMMING"],
}


def variants(phrase):
    """Every way a tagger writes one phrase: Title, lower, UPPER, Pascal, camel, snake, kebab, dotted."""
    words = phrase.split()
    cap = [w[:1].upper() + w[1:] for w in words]
    forms = [" ".join(cap), phrase.lower(), phrase.upper(), "".join(cap), words[0] + "".join(cap[1:]),
             "_".join(words), "-".join(words), "-".join(cap), ".".join(words), "_".join(words).upper()]
    return list(dict.fromkeys(forms + EXTRA.get(phrase, [])))


VARIANTS = {p: variants(p) for p in PHRASES}
# tags that must stay apart from each other and from every phrase
APART = [["C", "c"], ["C#", "c#"], ["C++", "c++"], ["F#", "f#"], ["F", "f"]]


def test_variant_generator_covers_the_case_styles():
    v = VARIANTS["data analysis"]
    for form in ("Data Analysis", "data analysis", "DATA ANALYSIS", "DataAnalysis", "dataAnalysis",
                 "data_analysis", "data-analysis", "Data-Analysis", "data.analysis", "DATA_ANALYSIS"):
        assert form in v


@pytest.mark.parametrize("phrase", PHRASES)
def test_every_variant_has_one_key(phrase):
    rules = RuleAggregator()
    assert {rules.key(v) for v in VARIANTS[phrase]} == {rules.key(phrase)}


def test_keys_of_different_tags_stay_apart():
    rules = RuleAggregator()
    keys = [rules.key(p) for p in PHRASES] + [rules.key(g[0]) for g in APART]
    assert len(set(keys)) == len(keys), keys


@pytest.mark.parametrize("raw, key", [
    ("dataAnalysis", "data analysis"),
    ("SQLQuery", "sql query"),
    ("HTTPServer", "http server"),
    ("XMLHttpRequest", "xml http request"),
    ("IOError", "io error"),
    ("APIs", "api"),  # an acronym plural is not "AP Is"
    ("URLsParsing", "url parse"),
    ("IPv6", "ipv 6"),
    ("Python3", "python 3"),
    ("GPT4", "gpt 4"),
    ("3D", "3 d"),
    ("C++Programming", "c++ program"),
    ("C#9", "c# 9"),
])
def test_split_key(raw, key):
    assert RuleAggregator().key(raw) == key


@pytest.mark.parametrize("forms", [
    ["3D", "3d", "3-D", "3 D"],
    ["2D Graphics", "2d graphics", "2-D graphics"],
    ["GPT4", "GPT-4", "gpt 4", "gpt4"],
    ["x86", "X86", "x-86"],
    ["utf8", "UTF-8", "Utf8"],
    ["mp3", "MP3", "MP-3"],
    ["h264", "H.264", "H264"],
    ["IPv6", "ipv6", "IPV6", "IPv-6"],
])
def test_letter_digit_variants_meet(forms):
    rules = RuleAggregator()
    assert len({rules.key(f) for f in forms}) == 1


def test_non_ascii_text_splits_like_ascii():
    split_words = rules_module.split_words
    assert split_words("dataÄnalyse3D") == "data Änalyse 3 D"
    assert split_words("ÜBERSicht", "+#") == "ÜBER Sicht" and split_words("C++Größe", "+#") == "C++ Größe"
    assert split_words("Python3", digits=False) == "Python3"


def test_keys_lists_the_split_and_the_unsplit_key():
    assert RuleAggregator().keys("JavaScript") == ("java script", "javascript")
    assert RuleAggregator().keys("data analysis") == ("data analysis",)
    assert RuleAggregator(split_case=False).keys("JavaScript") == ("javascript",)


def test_switch_off_gives_the_paper_rules():
    rules = RuleAggregator(split_case=False)
    assert rules.key("CodeGeneration") == "codegeneration" and rules.key("Python3") == "python3"
    assert rules.get_params()["split_case"] is False and RuleAggregator().get_params()["split_case"] is True
    assert RuleAggregator(lowercase=False, lemmatize=False).key("dataAnalysis") == "data Analysis"
    assert RuleAggregator(lemmatize=False).key("APIs") == "apis"


def samples():
    """Each variant held by a number of samples that differs from variant to variant."""
    out = []
    tags = [v for p in PHRASES for v in VARIANTS[p]] + [t for g in APART for t in g]
    for i, tag in enumerate(tags):
        out += [[tag]] * (1 + i % 3)
    return out


def check_groups(mapped):
    """All variants of one phrase share one target; different phrases and APART groups do not."""
    targets = []
    for group in [VARIANTS[p] for p in PHRASES] + APART:
        found = {mapped[t] for t in group}
        assert len(found) == 1, (group, found)
        targets.append(found.pop())
    assert len(set(targets)) == len(targets), targets
    return dict(zip(PHRASES + [g[0] for g in APART], targets))


@pytest.mark.parametrize("label", ["lemma", "frequent"])
def test_rule_step_merges_every_variant(label):
    c = TagSets.from_lists(samples())
    result = RuleAggregator(label=label).fit(c)
    mapped = {c.vocab[j]: result.vocab[t] for j, t in enumerate(result.target)}
    target = check_groups(mapped)
    assert target["c++ programming"] == ("c++ program" if label == "lemma" else "c++ programming")
    assert target["C#"] == "c#" and target["C"] == "c" and target["C++"] == "c++" and target["F#"] == "f#"
    assert result.stats["groups"] == len(PHRASES) + len(APART)


def test_normalizer_merges_every_variant():
    n = TagNormalizer(alpha=1, semantic=False, association=False, progress=False, unknown="rules")
    m = n.fit(samples())
    target = check_groups(m.as_mapping())
    assert target["data analysis"] == "data analysis" and target["sql query"] == "sql query"
    assert m.report["rules"].tags_after == len(PHRASES) + len(APART)
    # an unseen spelling finds its group through the same rules
    assert m.apply(["WebDevelopment", "errorHandling", "Json-Data-Formats", "Cobol"]) == [
        "web development", "error handling", "json data format"]


def test_camel_case_names_still_meet_their_lowercase_spelling():
    """Splitting only adds merges: "JavaScript" keeps meeting "javascript", as before."""
    c = TagSets.from_lists([["JavaScript"]] * 5 + [["javascript"]] * 2 + [["JAVASCRIPT"]] + [["Javascript"]]
                      + [["DevOps Tools"]] * 3 + [["devops tool"]] + [["CodeGeneration"]] * 4
                      + [["3D Graphics"]] * 2 + [["3d graphics"]] + [["Python3"]] * 3 + [["Python 3"]])
    for label, expected in (("lemma", {"JavaScript": "javascript", "DevOps Tools": "devops tool",
                                       "CodeGeneration": "code generation", "3D Graphics": "3d graphic",
                                       "Python3": "python3"}),
                            ("frequent", {"JavaScript": "javascript", "DevOps Tools": "devops tools",
                                          "CodeGeneration": "code generation", "3D Graphics": "3d graphics",
                                          "Python3": "python3"})):
        result = RuleAggregator(label=label).fit(c)
        mapped = {c.vocab[j]: result.vocab[t] for j, t in enumerate(result.target)}
        assert len(set(mapped.values())) == 5, mapped
        for raw, canonical in expected.items():
            assert mapped[raw] == canonical, (label, raw, mapped)
        assert mapped["javascript"] == mapped["JAVASCRIPT"] == mapped["Javascript"] == mapped["JavaScript"]
        assert mapped["devops tool"] == mapped["DevOps Tools"] and mapped["Python 3"] == mapped["Python3"]
