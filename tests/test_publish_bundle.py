"""write_publication (the --dry-run folder): a repo layout that datasets loads back, plots linked, card right."""

import json
import re

import pytest
from datasets import DatasetDict, get_dataset_config_names, load_dataset
from huggingface_hub import DatasetCard

import instag_hf
from instag_hf import schema
from instag_hf.normalize import TagNormalizer
from instag_hf.publish import Publication, write_dataset_card, write_publication
from instag_hf.publish.bundle import MARKER, parse_size

PNG = b"\x89PNG\r\n\x1a\n"
KEYWORD = "instag_hf.testing:KeywordBackend"


@pytest.fixture(scope="module")
def tagger():
    return instag_hf.Tagger(backend=KEYWORD, use_cache=False, progress=False)


@pytest.fixture(scope="module")
def tagged(tagger):
    return tagger.map(instag_hf.load_sample("chat"))


@pytest.fixture(scope="module")
def mapping(tagged):
    return TagNormalizer(semantic=False, alpha=1, min_support=2, progress=False).fit(tagged)


def _image_links(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


def test_full_publication_loads_back_config_by_config(tmp_path, tagged, tagger, mapping):
    normalized = mapping.map(tagged)
    subset, report = instag_hf.sample(normalized, 12, return_report=True)
    pub = write_publication(tmp_path / "pub", normalized, tagger=tagger, mapping=mapping,
                            subsets={"selected_cfd_12": (subset, report),
                                     "random_12": instag_hf.sample(normalized, 12, "random")},
                            repo_id="me/chat-tags", license="cc-by-4.0", source_datasets=["me/chat"])
    folder = pub.folder
    assert pub.files[-1] == "README.md" and sorted(pub.files) == sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MARKER)
    names = ["default", "tag_vocabulary", "tag_mapping", "selected_cfd_12", "random_12"]
    assert get_dataset_config_names(str(folder)) == names
    default = load_dataset(str(folder), "default", split="train")
    assert len(default) == len(tagged) and default.features[schema.TAGS] == tagged.features[schema.TAGS]
    assert default[schema.NORM_TAGS] == normalized[schema.NORM_TAGS]
    sub = load_dataset(str(folder), "selected_cfd_12", split="train")
    assert sub[schema.NORM_TAGS] == subset[schema.NORM_TAGS]
    vocab = load_dataset(str(folder), "tag_vocabulary", split="train")
    assert vocab.column_names == ["tag", "rows", "share"]  # canonical tags have no explanation
    assert vocab["rows"] == sorted(vocab["rows"], reverse=True) and len(vocab) == len(mapping.canonical_counts)
    maps = load_dataset(str(folder), "tag_mapping", split="train")
    assert len(maps) == len(mapping) and "canonical_tag" in maps.column_names

    card = DatasetCard((folder / "README.md").read_text())
    assert card.data.license == "cc-by-4.0" and card.data.source_datasets == ["me/chat"]
    listed = {c["config_name"]: c["data_files"][0]["path"] for c in card.data.configs}
    assert list(listed) == names
    for name, pattern in listed.items():  # every config's glob matches files that were written
        assert list(folder.glob(pattern)), name
    links = _image_links(card.text)
    plots = [f for f in pub.files if f.startswith("plots/")]
    assert sorted(links) == sorted(plots) and "plots/normalization_stages.png" in plots
    assert all((folder / p).read_bytes().startswith(PNG) for p in plots)
    body = card.text
    assert "## Tag normalization" in body and "## Selection" in body and "### `selected_cfd_12`" in body
    assert "`instag_norm_tags`" in body and f"| `default` | {len(tagged)} |" in body
    assert "| backend | `keyword` |" in body
    record = json.loads((folder / MARKER).read_text())
    assert record["complete"] and record["configs"] == names and record["files"] == pub.files


def test_raw_tag_vocabulary_keeps_an_explanation(tmp_path, tagged):
    pub = write_publication(tmp_path / "p", tagged, plots=False)
    vocab = load_dataset(str(pub.folder), "tag_vocabulary", split="train")
    assert vocab.column_names == ["tag", "rows", "share", "explanation"]
    first = vocab[0]
    assert first["explanation"] == f"mentions {first['tag'].lower()}"  # what KeywordBackend explains
    usable = sum(s in schema.TAGGED_STATUSES for s in tagged[schema.STATUS])
    assert first["share"] == pytest.approx(first["rows"] / usable)
    assert not [f for f in pub.files if f.startswith("plots/")] and "![" not in (pub.folder / "README.md").read_text()


def test_large_configs_are_split_into_shards_that_load_back_in_order(tmp_path, tagged):
    pub = write_publication(tmp_path / "p", DatasetDict({"train": tagged, "test": tagged.select(range(10))}),
                            vocabulary=False, plots=False, max_shard_size="20KB")
    shards = sorted(f for f in pub.files if f.startswith("data/default/train-"))
    assert len(shards) > 1 and shards[0].endswith(f"-00000-of-{len(shards):05d}.parquet")
    back = load_dataset(str(pub.folder), "default")
    assert back["train"]["messages"] == tagged["messages"] and len(back["test"]) == 10
    card = DatasetCard((pub.folder / "README.md").read_text())
    assert [d["split"] for d in card.data.configs[0]["data_files"]] == ["train", "test"]


def test_card_only_for_instag_demo(tmp_path, tagged, tagger, mapping):
    subset, report = instag_hf.sample(tagged, 10, return_report=True)
    pub = write_dataset_card(tmp_path / "card", tagged, tagger.describe(), normalization=mapping,
                             selections={"selected_cfd_10": (subset, report)}, pretty_name="Demo")
    assert not any(f.startswith("data/") for f in pub.files)
    text = (pub.folder / "README.md").read_text()
    card = DatasetCard(text)
    assert card.data.get("configs") is None and card.data.pretty_name == "Demo"
    assert "## Tag normalization" in text and "### `selected_cfd_10`" in text and "## Diversity" in text
    assert all((pub.folder / link).is_file() for link in _image_links(text))


def test_folders_are_never_clobbered(tmp_path, tagged):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        write_publication(other, tagged)
    with pytest.raises(ValueError, match="not written by instag_hf"):
        write_publication(other, tagged, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    first = write_publication(tmp_path / "pub", tagged, plots=False, max_shard_size="20KB")
    second = write_publication(tmp_path / "pub", tagged.select(range(5)), plots=False, overwrite=True)
    on_disk = sorted(p.relative_to(second.folder).as_posix() for p in second.folder.rglob("*.parquet"))
    assert on_disk == sorted(f for f in second.files if f.endswith(".parquet"))  # no stale shard of the first
    assert len(first.files) > len(second.files)


def test_bad_arguments_fail_before_anything_is_written(tmp_path, tagged):
    target = tmp_path / "never"
    cases = [
        (dict(subsets={"default": tagged}), "taken"),
        (dict(subsets={"bad name": tagged}), "config name"),
        (dict(subsets={"s": [1, 2]}), "must be a datasets.Dataset"),
        (dict(subsets={"s": tagged.remove_columns([schema.TAGS])}), "has no 'instag_tags' column"),
        (dict(mapping={"a": "b"}), "TagMapping"),
        (dict(repo_id="nope"), "owner/name"),
        (dict(top=-1), "top"),
        (dict(max_shard_size="lots"), "size"),
        (dict(tags_column="missing"), "not found"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            write_publication(target, tagged, **kwargs)
    with pytest.raises(ValueError, match="must be a datasets.Dataset or DatasetDict"):
        write_publication(target, tagged.to_list())
    assert not target.exists()


def test_publication_folders_are_checked_before_upload(tmp_path, tagged):
    with pytest.raises(ValueError, match="not a publication folder"):
        Publication.load(tmp_path)
    pub = write_publication(tmp_path / "p", tagged, plots=False)
    assert Publication.load(pub.folder).files == pub.files
    (pub.folder / pub.files[0]).unlink()
    with pytest.raises(ValueError, match="lacks files"):
        Publication.load(pub.folder)


def test_parse_size():
    assert parse_size("500MB") == 500 * 10**6 and parse_size("1GiB") == 2**30 and parse_size(123) == 123
    for bad in ("-1MB", "0", "ten", True):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_quality_reports_become_an_optional_card_section(tmp_path, tagged):
    from instag_hf.quality import tag_f1

    report = tag_f1([["Math", "Python"], ["Poetry"]], [["Math"], ["Poetry", "Rhyme"]], threshold=None)
    pub = write_dataset_card(tmp_path / "card", tagged, quality={"f1 vs teacher": report}, plots=False)
    text = (pub.folder / "README.md").read_text()
    assert "## Tag quality" in text
    assert f"| f1 vs teacher.exact.micro.f1 | {report.exact.micro.f1} |" in text
    assert "per_tag" not in text  # summaries only
    with pytest.raises(ValueError, match="quality"):
        write_dataset_card(tmp_path / "bad", tagged, quality=0.9)


def test_a_source_column_adds_metrics_and_plots_per_source(tmp_path, tagged):
    from datasets import concatenate_datasets

    a = tagged.select(range(40)).add_column("source", ["first"] * 40)
    b = tagged.select(range(40, 90)).add_column("source", ["second"] * 50)
    pool = concatenate_datasets([a, b])
    pub = write_publication(tmp_path / "p", pool, source_column="source", vocabulary=False)
    text = (pub.folder / "README.md").read_text()
    assert "| `source=first` | 40 |" in text and "| `source=second` | 50 |" in text
    by_source = sorted(f for f in pub.files if f.startswith("plots/by_source/"))
    assert by_source == ["plots/by_source/diversity_complexity.png", "plots/by_source/tag_recall.png",
                         "plots/by_source/top_tags.png"]
    assert all(f"]({f})" in text for f in by_source)
    assert "Tag recall (the share of row A's tags that column B has), by source" in text
    on_disk = sorted(p.relative_to(pub.folder).as_posix() for p in (pub.folder / "plots" / "by_source").iterdir())
    assert on_disk == by_source
    with pytest.raises(ValueError, match="source column"):
        write_publication(tmp_path / "q", pool, source_column="nope")


def test_card_metadata_comes_as_one_card_data_object(tmp_path, tagged):
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(pretty_name="Alpaca, tagged", license="cc-by-4.0", language="en",
                           annotations_creators=["machine-generated"], tags=["alpaca"],
                           size_categories=["n>1T"], configs=[{"config_name": "bogus"}])
    pub = write_publication(tmp_path / "p", tagged, card_data=data, plots=False, source_datasets=["tatsu-lab/alpaca"])
    card = DatasetCard((pub.folder / "README.md").read_text())
    assert card.data.pretty_name == "Alpaca, tagged" and card.data.license == "cc-by-4.0"
    assert card.data.language == ["en"] and card.data.annotations_creators == ["machine-generated"]
    assert card.data.source_datasets == ["tatsu-lab/alpaca"]  # a keyword adds to the object
    assert card.data.tags[-1] == "alpaca" and "instag" in card.data.tags
    assert card.data.size_categories == ["n<1K"]  # computed, never taken from the caller
    assert [c["config_name"] for c in card.data.configs] == ["default", "tag_vocabulary"]
    with pytest.raises(ValueError, match="card_data must be"):
        write_publication(tmp_path / "q", tagged, card_data="license: mit")
    with pytest.raises(ValueError, match="license"):
        write_publication(tmp_path / "r", tagged, card_data={"license": "Not A License"})
    assert not (tmp_path / "q").exists() and not (tmp_path / "r").exists()


def test_a_strategy_comparison_gets_its_card_section_and_plots(tmp_path, tagged):
    comparison = instag_hf.compare_strategies(tagged, 12, strategies=("random", "cfd", "diversity"))
    pub = write_publication(tmp_path / "p", tagged, comparison=comparison, data=False)
    text = (pub.folder / "README.md").read_text()
    section = text[text.index("## Selection strategies compared"):text.index("## Limitations")]
    assert "picked 12 rows" in section
    for r in comparison.results:  # one table row per strategy, with its own coverage
        assert f"| {r.strategy} | {r.selected} | {100 * r.coverage:.1f}% |" in section
    links = _image_links(section)
    assert sorted(links) == ["plots/strategy_complexity_diversity.png", "plots/strategy_coverage.png"]
    assert all((pub.folder / link).read_bytes().startswith(PNG) for link in links)
    with pytest.raises(ValueError, match="compare_strategies"):
        write_publication(tmp_path / "q", tagged, comparison={"cfd": 1})


def test_publication_options_come_as_one_object_or_as_keywords(tmp_path, tagged):
    from instag_hf.publish.plan import PublicationOptions

    options = PublicationOptions(vocabulary=False, plots=False, repo_id="me/x")
    pub = write_publication(tmp_path / "p", tagged, options=options, license="mit", max_shard_size="20KB")
    assert pub.configs == ["default"] and pub.repo_id == "me/x"
    assert not any(f.startswith("plots/") for f in pub.files)
    assert DatasetCard((pub.folder / "README.md").read_text()).data.license == "mit"  # the rest is metadata
    with pytest.raises(ValueError, match="top"):
        PublicationOptions(top=-1)
    with pytest.raises(ValueError, match="must be a PublicationOptions"):
        write_publication(tmp_path / "q", tagged, options={"plots": False})
    assert not (tmp_path / "q").exists()
