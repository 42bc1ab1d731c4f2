"""TagMapping on datasets: fit from a tagged Dataset, map, save/load, pickling, the CLI."""

import json
import pickle

import pytest
from datasets import Dataset, Features, List, Value
from datasets.fingerprint import Hasher

import instag_hf
from instag_hf import schema
from instag_hf.normalize import TagMapping, TagNormalizer


def items(*tags):
    return [{"tag": t, "explanation": "why"} for t in tags]


def tagged(rows, statuses=None):
    statuses = statuses or ["ok"] * len(rows)
    return Dataset.from_dict(
        {"q": [f"q{i}" for i in range(len(rows))], schema.TAGS: [items(*r) for r in rows], schema.STATUS: statuses},
        features=Features({"q": Value("string"), schema.TAGS: List(schema.TAG_ITEM), schema.STATUS: Value("string")}),
    )


ROWS = [["Data Analysis", "Python"], ["data-analysis", "Python"], ["Data Analyses"], ["Poetry", "Rhyme"],
        ["Poetry"], ["Rare Thing"]]


def fit(ds, **kw):
    kw.setdefault("alpha", 1)
    kw.setdefault("semantic", False)
    kw.setdefault("association", False)
    return TagNormalizer(progress=False, **kw).fit(ds)


def test_fit_counts_only_usable_rows():
    ds = tagged(ROWS + [["Broken Tag"], ["Cut Tag"]], ["ok"] * len(ROWS) + ["parse_error", "truncated"])
    m = fit(ds)
    assert "Broken Tag" not in m and m["Cut Tag"] == "cut tag"
    assert m.report.samples == len(ROWS) + 1 and m.report.skipped_rows == 1


def test_normalization_and_analysis_count_the_same_rows_and_tags():
    """One rule: failed rows are missing data, empty and repeated tags never count, in both steps."""
    rows = ROWS + [["", "Python", "Python"], [], ["Broken Tag"], [None, "Poetry"]]
    ds = tagged(rows, ["ok"] * len(ROWS) + ["ok", "ok", "backend_error", "ok"])
    m = fit(ds, rules=False)
    ts = instag_hf.TagSets.from_dataset(ds)
    assert m.report.samples == ts.n_usable == len(rows) - 1 and m.report.skipped_rows == 1
    raw = dict(zip(m.to_dataset()["raw_tag"], m.to_dataset()["count"]))
    assert raw == dict(zip(ts.vocab.tolist(), ts.tag_counts().tolist()))
    assert "" not in raw and "Broken Tag" not in raw and raw["Python"] == 3 and raw["Poetry"] == 3


def test_map_adds_canonical_tags_deduplicated_in_order():
    ds = tagged([["Python", "Data Analysis", "data-analysis", "Never Seen"]] + ROWS)
    m = fit(ds, alpha=2)
    out = m.map(ds)
    assert out.remove_columns([schema.NORM_TAGS]).to_list() == ds.to_list()  # every other column kept as it was
    again = m.map(out, load_from_cache_file=False)  # a second map replaces the column
    assert again.column_names == out.column_names and again.to_list() == out.to_list()
    assert out.features[schema.NORM_TAGS] == List(Value("string"))
    assert out[0][schema.NORM_TAGS] == ["python", "data analysis"]  # "never seen" is held once: dropped
    assert out[6][schema.NORM_TAGS] == []
    plain = ds.map(m, batched=True)  # the transform also works on its own
    assert plain[schema.NORM_TAGS] == out[schema.NORM_TAGS]
    single = ds.map(m)  # one row at a time
    assert single[schema.NORM_TAGS] == out[schema.NORM_TAGS]


def test_map_declares_the_type_when_the_first_batch_has_no_tag():
    ds = tagged([[]] * 5 + [["Python"], ["Python"]])
    out = fit(ds).map(ds, batch_size=2)
    assert out.features[schema.NORM_TAGS] == List(Value("string"))
    assert out[schema.NORM_TAGS][-1] == ["python"]


def test_mapping_round_trips_through_json_and_pickle(tmp_path):
    m = fit(tagged(ROWS))
    loaded = TagMapping.load(m.save(tmp_path / "m.json"))
    assert loaded == m and loaded.as_mapping() == m.as_mapping()
    assert loaded.report.to_markdown() == m.report.to_markdown()
    assert pickle.loads(pickle.dumps(m)) == m
    state = m.__getstate__()
    assert json.loads(json.dumps(state)) == state  # plain data only
    assert Hasher.hash(m) == Hasher.hash(TagMapping.load(tmp_path / "m.json"))
    with pytest.raises(ValueError, match="not a saved TagMapping"):
        TagMapping.from_dict({"format": "other"})


def test_map_is_cached_by_a_stable_fingerprint(tmp_path):
    ds = tagged(ROWS)
    ds.save_to_disk(str(tmp_path / "ds"))
    from datasets import load_from_disk

    on_disk = load_from_disk(str(tmp_path / "ds"))
    m = fit(on_disk)
    first = m.map(on_disk)
    again = TagMapping.load(m.save(tmp_path / "m.json")).map(on_disk)
    assert first._fingerprint == again._fingerprint
    assert again.cache_files and again.cache_files == first.cache_files


def test_to_dataset_lists_every_raw_tag_with_its_stage():
    m = fit(tagged(ROWS), alpha=2)
    table = m.to_dataset()
    assert table.column_names == ["raw_tag", "count", "rule_tag", "semantic_tag", "canonical_tag", "stage"]
    rows = {r["raw_tag"]: r for r in table}
    assert rows["Rare Thing"]["canonical_tag"] is None and rows["Rare Thing"]["stage"] == "dropped"
    assert rows["Data Analyses"]["stage"] == "dropped"  # held once: below alpha 2, though its rule group is not
    assert rows["Python"] == {"raw_tag": "Python", "count": 2, "rule_tag": "python", "semantic_tag": "python",
                              "canonical_tag": "python", "stage": "rules"}
    assert m.canonical_counts == {"python": 2, "poetry": 2} and m.vocabulary == ["poetry", "python"]


def test_unknown_tags_policies():
    ds = tagged(ROWS)
    assert fit(ds).apply(["Brand New"]) == []
    assert fit(ds, unknown="keep").apply(["Brand New"]) == ["Brand New"]
    assert fit(ds, unknown="rules").apply(["DATA ANALYSES!", "Brand New"]) == ["data analysis"]


def test_report_has_every_stage_and_renders():
    samples = [["Data Analysis", "Python"]] * 30 + [["data analysis"]] * 30 + [["Python"]] * 5
    emb = lambda texts: [[1.0, 0.0] if "data" in t else [0.0, 1.0] for t in texts]  # noqa: E731
    with pytest.warns(UserWarning, match="no rule"):
        m = TagNormalizer(alpha=2, min_support=5, embedder=emb, progress=False).fit(samples)
    r = m.report
    assert [s.name for s in r.stages] == ["frequency", "rules", "semantic", "association"]
    assert (r["frequency"].tags_before, r["rules"].tags_after) == (3, 2)
    assert r["rules"].merges == [("data analysis", ["Data Analysis", "data analysis"])]  # tie: alphabetical
    text = r.to_markdown()
    assert "| rule aggregation | yes | 3 | 2 |" in text and "## association aggregation" in text
    assert r.as_dict()["stages"][0]["name"] == "frequency"


def test_fit_accepts_plain_tag_lists_and_items():
    m1 = fit([["Data Analysis", "Python"], ["Python"]])
    m2 = fit([items("Data Analysis", "Python"), items("Python")])
    assert m1.as_mapping() == m2.as_mapping() == {"Data Analysis": "data analysis", "Python": "python"}


def test_package_exports_and_light_import():
    import subprocess
    import sys

    assert instag_hf.TagNormalizer is TagNormalizer and instag_hf.TagMapping is TagMapping
    code = ("import sys, instag_hf; heavy = [m for m in ('faiss', 'sklearn', 'mlxtend', 'sentence_transformers', "
            "'torch', 'lemminflect') if m in sys.modules]; print(heavy)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_cli_normalize_writes_mapping_dataset_and_report(tmp_path, capsys):
    from instag_hf.cli.main import main

    src = tmp_path / "tagged"
    tagged(ROWS * 3).save_to_disk(str(src))
    out = tmp_path / "out"
    assert main(["normalize", str(src), "--output", str(out), "--alpha", "2", "--no-semantic",
                 "--min-support", "3", "--min-confidence", "0.9"]) == 0
    printed = capsys.readouterr().out
    for name in ("mapping.json", "report.md", "normalized", "normalized.jsonl"):
        assert (out / name).exists() and str((out / name).resolve()) in printed
    m = TagMapping.load(out / "mapping.json")
    assert m.params["alpha"] == 2 and m.params["steps"]["semantic"] is False
    assert "| rule aggregation |" in (out / "report.md").read_text()
    first = json.loads((out / "normalized.jsonl").read_text().splitlines()[0])
    assert first[schema.NORM_TAGS] == m.apply(ROWS[0])


@pytest.mark.parametrize("unknown", ["drop", "keep", "rules"])
@pytest.mark.parametrize("plain", [False, True])
def test_the_arrow_path_gives_what_apply_gives_each_row(unknown, plain):
    """Random rows of raw tags (repeats, case variants, unknown, empty and null tags, null and
    empty rows): ``map`` on Arrow batches equals ``apply`` row by row, in every batch size."""
    import random

    rng = random.Random(7)
    words = ["Data Analysis", "data-analysis", "Python", "python", "Poetry", "Rhyme", "Brand New", "", "  ",
             "DATA ANALYSES!", "Rare Thing", None]
    rows = [None if rng.random() < 0.05 else [rng.choice(words) for _ in range(rng.randrange(0, 7))]
            for _ in range(300)]
    m = fit(tagged(ROWS), unknown=unknown)
    if plain:
        ds = Dataset.from_dict({schema.TAGS: rows}, features=Features({schema.TAGS: List(Value("string"))}))
    else:
        cells = [None if r is None else [None if t is None and rng.random() < 0.5 else {"tag": t, "explanation": "e"}
                                         for t in r] for r in rows]
        ds = Dataset.from_dict({schema.TAGS: cells}, features=Features({schema.TAGS: List(schema.TAG_ITEM)}))
    expected = [m.apply(r) for r in ds[schema.TAGS]]
    assert m._arrow_ready(ds, {"batched": True})
    for batch_size in (1, 7, 1000):
        out = m.map(ds, batch_size=batch_size, load_from_cache_file=False)
        assert out[schema.NORM_TAGS] == expected and out.format["type"] is None
        assert out.column_names == [schema.TAGS, schema.NORM_TAGS] and out[schema.TAGS] == ds[schema.TAGS]
    assert ds.map(m, batched=True)[schema.NORM_TAGS] == expected  # the row path agrees
    assert not m._arrow_ready(ds, {"batched": True, "with_indices": True})


def test_the_map_fingerprint_follows_the_mapping_content_and_policy(tmp_path):
    ds = tagged(ROWS + [["Brand New"]])
    one, two = fit(ds, alpha=1), fit(ds, alpha=2)
    prints = {one.map(ds)._fingerprint, two.map(ds)._fingerprint}
    one.unknown = "keep"
    prints.add(one.map(ds)._fingerprint)
    prints.add(one.map(ds, remove_columns=["q"])._fingerprint)
    assert len(prints) == 4
    assert one.map(ds, batch_size=2)._fingerprint == one.map(ds, batch_size=5)._fingerprint
    assert TagMapping.load(two.save(tmp_path / "m.json")).map(ds)._fingerprint == two.map(ds)._fingerprint
