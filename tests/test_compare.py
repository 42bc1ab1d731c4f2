"""Strategies compared side by side: numbers checked by hand on a tiny pool, curves against separate
selections, and ``instag sample --compare``."""

import json
import math

import numpy as np
import pytest
from datasets import Dataset
from scipy.spatial.distance import jensenshannon

from instag_hf import LabelGraph, compare_strategies, schema, select_indices
from instag_hf.analysis.tagsets import TagSets
from instag_hf.cli.main import main
from instag_hf.reporting.compare_plots import comparison_markdown, write_comparison
from instag_hf.selection.compare import coverage_curve, tag_entropy
from support.synthetic import make_corpus

# pool tags: a 2, b 2, c 2, d 1 (7 occurrences, 4 tags); row 4 has none
TINY = {schema.NORM_TAGS: [["a", "b"], ["a"], ["c"], ["b", "c", "d"], []], "source": ["x", "y", "x", "y", "x"]}
IDENTITY = LabelGraph(["a", "b", "c", "d"], np.eye(4))


def tiny():
    return Dataset.from_dict(TINY)


def entropy_bits(counts):
    p = np.array(counts, dtype=float) / sum(counts)
    return -sum(x * math.log2(x) for x in p if x > 0)


def test_tiny_pool_by_hand():
    c = compare_strategies(tiny(), 2, ("complexity", "mig"), label_graph=IDENTITY, points=2)
    assert c.sizes == [0, 1, 2]
    assert (c.pool_rows, c.pool_tagged_rows, c.pool_diversity) == (5, 5, 4)
    assert c.pool_complexity == pytest.approx(7 / 5)
    assert c.pool_entropy == pytest.approx(entropy_bits([2, 2, 2, 1]))
    assert c.pool_sources == {"x": pytest.approx(3 / 5), "y": pytest.approx(2 / 5)}

    # complexity: row 3 (3 tags), then row 0 (2 tags): a 1, b 2, c 1, d 1
    cx = c.result("complexity")
    assert cx.indices == [3, 0] and cx.selected == 2
    assert cx.coverage == 1.0 and cx.diversity == 4
    assert cx.complexity == pytest.approx(5 / 2)
    assert cx.entropy == pytest.approx(entropy_bits([1, 2, 1, 1]))
    assert cx.js_divergence == pytest.approx(jensenshannon([2, 2, 2, 1], [1, 2, 1, 1], base=2) ** 2)
    assert cx.sources == {"x": 0.5, "y": 0.5}
    assert cx.curve == [0.0, 0.75, 1.0]

    # mig (identity graph): every first gain is phi'(0), row 0 by index; then row 2 (c untouched) beats
    # row 3, a third of whose weight falls on b: a 1, b 1, c 1
    mig = c.result("mig")
    assert mig.indices == [0, 2]
    assert mig.coverage == 0.75 and mig.diversity == 3
    assert mig.complexity == pytest.approx(3 / 2)
    assert mig.entropy == pytest.approx(math.log2(3))
    assert mig.js_divergence == pytest.approx(jensenshannon([2, 2, 2, 1], [1, 1, 1, 0], base=2) ** 2)
    assert mig.sources == {"x": 1.0, "y": 0.0}
    assert mig.curve == [0.0, 0.5, 0.75]
    assert c.params["mig"]["label_graph"] == {"tags": 4, "edges": 0}
    with pytest.raises(KeyError, match="compared"):
        c.result("cfd")


def test_entropy_and_curve_helpers():
    assert tag_entropy([0, 0]) == 0.0
    assert tag_entropy([5]) == 0.0
    assert tag_entropy([1, 1, 1, 1]) == pytest.approx(2.0)
    ts = TagSets.from_lists(TINY[schema.NORM_TAGS])
    assert coverage_curve(ts, np.array([4, 1, 3]), [0, 1, 2, 3, 10]) == [0.0, 0.0, 0.25, 1.0, 1.0]
    assert all(math.isnan(v) for v in coverage_curve(TagSets.from_lists([[], []]), np.array([0]), [0, 1]))


@pytest.fixture(scope="module")
def corpus_pool():
    corpus = make_corpus(n_samples=600, n_concepts=60, noise_tags=30, seed=3)
    ds = corpus.to_dataset()
    ds = ds.add_column("source", ["alpaca", "sharegpt", "ultrachat"] * (len(ds) // 3) + ["alpaca"] * (len(ds) % 3))
    ds = ds.add_column("quality", np.random.default_rng(0).uniform(1, 6, len(ds)).tolist())
    tags = sorted(TagSets.from_dataset(ds).tag_set())
    graph = LabelGraph.from_tags(tags, embedder=corpus.embedder(), threshold=0.9)
    return ds, graph


def test_curves_are_the_coverage_of_separate_selections(corpus_pool):
    ds, graph = corpus_pool
    c = compare_strategies(ds, 120, label_graph=graph, score_column="quality", points=6)
    assert c.strategies == ["random", "complexity", "diversity", "cfd", "mig"]
    ts = TagSets.from_dataset(ds)
    pool_tags = np.count_nonzero(ts.tag_counts())
    extra = {"mig": {"label_graph": graph, "scores": "quality"}}
    for r in c.results:
        assert r.selected == len(r.indices) == 120
        assert r.curve[-1] == pytest.approx(r.coverage)
        assert r.sources is not None and sum(r.sources.values()) == pytest.approx(1.0)
        for size, value in zip(c.sizes, r.curve):
            picks = select_indices(ds, size, r.strategy, **extra.get(r.strategy, {}))
            assert value == pytest.approx(np.count_nonzero(ts.take(picks).tag_counts()) / pool_tags)
        assert r.indices == select_indices(ds, 120, r.strategy, **extra.get(r.strategy, {})).tolist()
    assert c.result("diversity").coverage >= c.result("random").coverage
    assert json.loads(json.dumps(c.as_dict()))["results"][0]["strategy"] == "random"
    assert "indices" not in c.as_dict()["results"][0] and len(c.as_dict(indices=True)["results"][0]["indices"]) == 120


def test_comparison_files_and_table(tmp_path, corpus_pool):
    ds, graph = corpus_pool
    c = compare_strategies(ds, 50, ("cfd", "mig"), label_graph=graph)
    table = comparison_markdown(c)
    assert table.splitlines()[0].startswith("| strategy | rows | coverage")
    assert "share sharegpt" in table and table.splitlines()[-1].startswith("| pool |")
    files = write_comparison(c, tmp_path / "cmp")
    for name in ("comparison.json", "comparison.md", "coverage_curves.png", "complexity_diversity.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0
    assert files["coverage_curves"].read_bytes()[:4] == b"\x89PNG"


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="non-empty list"):
        compare_strategies(tiny(), 2, ("cfd", "best"))
    with pytest.raises(ValueError, match="non-empty list"):
        compare_strategies(tiny(), 2, ())
    with pytest.raises(ValueError, match="twice"):
        compare_strategies(tiny(), 2, ("cfd", "cfd"))
    with pytest.raises(ValueError, match="apply only to 'mig'"):
        compare_strategies(tiny(), 2, ("cfd",), prop_weight=0.5)
    with pytest.raises(ValueError, match="source column 'origin' not found"):
        compare_strategies(tiny(), 2, ("cfd",), source_column="origin")
    with pytest.raises(ValueError, match="points"):
        compare_strategies(tiny(), 2, ("cfd",), points=0)
    plain = Dataset.from_dict({schema.NORM_TAGS: TINY[schema.NORM_TAGS]})
    c = compare_strategies(plain, 2, "cfd,random")  # no source column: no shares
    assert c.strategies == ["cfd", "random"] and c.pool_sources is None and c.results[0].sources is None


def test_cli_compare_writes_the_comparison(tmp_path, capsys):
    data = tmp_path / "pool.jsonl"
    rows = [{schema.NORM_TAGS: tags, "source": src, "q": float(i + 1)}
            for i, (tags, src) in enumerate(zip(TINY[schema.NORM_TAGS], TINY["source"]))]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    graph = IDENTITY.save(tmp_path / "graph.npz")
    out = tmp_path / "cmp"
    assert main(["sample", str(data), "-n", "2", "--compare", "--label-graph", str(graph), "--score-column", "q",
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| mig |" in printed and "Wrote" in printed
    result = json.loads((out / "comparison.json").read_text())
    assert [r["strategy"] for r in result["results"]] == ["random", "complexity", "diversity", "cfd", "mig"]
    assert result["params"]["mig"]["score_column"] == "q" and result["params"]["input"] == str(data)
    assert (out / "coverage_curves.png").exists() and (out / "complexity_diversity.png").exists()

    assert main(["sample", str(data), "-n", "2", "--compare", "cfd,random", "--output", str(tmp_path / "two")]) == 0
    assert len(json.loads((tmp_path / "two" / "comparison.json").read_text())["results"]) == 2

    sel = tmp_path / "sel"
    assert main(["sample", str(data), "-n", "3", "--strategy", "mig", "--label-graph", str(graph),
                 "--prop-weight", "0", "--output", str(sel)]) == 0
    assert json.loads((sel / "selection.json").read_text())["params"]["mig"]["prop_weight"] == 0.0

    capsys.readouterr()
    assert main(["sample", str(data), "-n", "2", "--score-column", "q", "--output", str(sel)]) == 2
    assert "only to --strategy mig" in capsys.readouterr().err
    missing = LabelGraph(["a"], np.eye(1)).save(tmp_path / "small.npz")
    assert main(["sample", str(data), "-n", "2", "--strategy", "mig", "--label-graph", str(missing),
                 "--output", str(sel)]) == 2
    assert "not in the label graph" in capsys.readouterr().err


def test_mig_with_and_without_scores():
    """``mig`` reads ``instag_score``; ``mig-unscored`` weighs every row 1: each equals its own selection."""
    scores = [0.1, 9.0, 0.1, 0.1, 5.0]
    ds = tiny().add_column(schema.SCORE, scores)
    c = compare_strategies(ds, 2, ("mig", "mig-unscored"), label_graph=IDENTITY, points=2)
    assert c.strategies == ["mig", "mig-unscored"]
    scored = select_indices(ds, 2, "mig", label_graph=IDENTITY).tolist()
    unscored = select_indices(tiny(), 2, "mig", label_graph=IDENTITY).tolist()
    assert c.result("mig").indices == scored and c.result("mig-unscored").indices == unscored
    assert scored != unscored  # the scores change the picks on this pool
    assert c.params["mig"]["score_column"] == schema.SCORE and c.params["mig"]["scores"] is True
    assert c.params["mig_unscored"]["scores"] is False and "score_column" not in c.params["mig_unscored"]
    alone = compare_strategies(ds, 2, "mig-unscored,cfd", label_graph=IDENTITY, points=2)
    assert alone.result("mig-unscored").indices == unscored and alone.strategies == ["mig-unscored", "cfd"]
    assert "mig-unscored" in comparison_markdown(c)
    with pytest.raises(ValueError, match="twice"):
        compare_strategies(ds, 2, ("mig-unscored", "mig-unscored"))
    with pytest.raises(ValueError, match="strategies must be"):
        compare_strategies(ds, 2, ("mig-scored",))


def test_pipeline_with_a_scorer_compares_mig_with_and_without_scores(tmp_path):
    """``run_pipeline(..., scorer=)``: the pool is scored, the comparison and the card show it."""
    import instag_hf
    from instag_hf.pipeline import run_pipeline
    from test_scoring import LogprobBackend

    samples = {"alpaca": instag_hf.load_sample("alpaca").select(range(16)),
               "chat": instag_hf.load_sample("chat").select(range(8))}
    tagger = instag_hf.Tagger(backend="instag_hf.testing:KeywordBackend", cache_dir=str(tmp_path / "c"))
    scorer = instag_hf.Scorer(backend=LogprobBackend(), use_cache=False)
    written = run_pipeline(samples, tmp_path / "out", tagger, select=6, scorer=scorer)
    compared = json.loads((written["comparison"] / "comparison.json").read_text())
    assert [r["strategy"] for r in compared["results"]][-2:] == ["mig", "mig-unscored"]
    card = (written["card"] / "README.md").read_text()
    assert "## Scores" in card and "deita-quality@1" in card and "plots/score_distribution.png" in card
    summary = json.loads(written["summary"].read_text())
    assert summary["scorer"]["stats"] and "quality" in summary["scorer"]["settings"]
