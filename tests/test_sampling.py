import json
import math

import numpy as np
import pytest
from datasets import Dataset, Features, List, Value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instag_hf import schema
from instag_hf.cli.main import main
from instag_hf.selection import LabelGraph, sample, select_indices, selection_report
from instag_hf.selection.params import STRATEGIES
from instag_hf.selection.strategies import Limits, cfd_loop, cfd_order, row_lists
from instag_hf.analysis.tagsets import TagSets
from instag_hf.reporting import render_markdown

# Hand-worked pool. Ordered by tag count, ties by index: 2, 3, 1, 7, 0, 4.
#   pass 1 (T = {}): take 2 (T = bcd), take 3 (adds a), skip 1 (ab ⊆ T), skip 7, skip 0, take 4 (adds e)
#   pass 2 (T = {}): take 1 (T = ab), take 7 (adds cd), skip 0
#   pass 3:          take 0
#   then rows without usable tags: 5 (ok, zero tags) before 6 (failed status)
POOL = [["a"], ["a", "b"], ["b", "c", "d"], ["a", "b", "c"], ["e"], [], ["z"], ["c", "d"]]
USABLE = [True, True, True, True, True, True, False, True]
CFD_ALL = [2, 3, 4, 1, 7, 0, 5, 6]


def pool():
    return TagSets.from_lists(POOL, usable=USABLE)


def test_cfd_hand_worked_pool():
    assert select_indices(pool(), 100).tolist() == CFD_ALL
    assert select_indices(pool(), 3).tolist() == [2, 3, 4]  # the first pass
    assert select_indices(pool(), 5).tolist() == [2, 3, 4, 1, 7]  # stops inside pass 2
    assert select_indices(pool(), 0).tolist() == []
    assert select_indices(pool(), 100, untagged="never").tolist() == CFD_ALL[:6]


def test_cfd_matches_the_paper_shape_on_another_pool():
    # 0 and 1 tie on 4 tags: 0 first; 1 still adds e; 2 adds fgh; 3 (e) is covered until pass 2.
    rows = [["a", "b", "c", "d"], ["a", "b", "c", "e"], ["f", "g", "h"], ["e"]]
    assert select_indices(rows, 4).tolist() == [0, 1, 2, 3]
    # greedy coverage: 0 (gain 4), then 2 (gain 3 beats 1 and 3 at gain 1), then 1 (tie with 3, lower index);
    # 3 adds nothing, so it opens a new round.
    assert select_indices(rows, 4, "diversity").tolist() == [0, 2, 1, 3]
    assert select_indices(rows, 4, "complexity").tolist() == [0, 1, 2, 3]


def test_baselines_hand_worked():
    assert select_indices(pool(), 100, "complexity").tolist() == [2, 3, 1, 7, 0, 4, 5, 6]
    # diversity, round 1: 2 (gain 3, ties with 3 by index); then 0, 1, 3, 4 all gain 1: 0 by index, then 4.
    # Round 2 (covered reset): 3 (3 tags), then 7 (adds d; 1 adds nothing). Round 3: 1.
    assert select_indices(pool(), 100, "diversity").tolist() == [2, 0, 4, 3, 7, 1, 5, 6]
    first = select_indices(pool(), 6, "random", seed=3).tolist()
    assert first == select_indices(pool(), 6, "random", seed=3).tolist()
    assert sorted(first) == [0, 1, 2, 3, 4, 7]  # tagged rows first, in a seeded order
    seeds = {tuple(select_indices(pool(), 6, "random", seed=s).tolist()) for s in range(10)}
    assert len(seeds) > 1


def test_ties_shuffle_is_seeded_and_keeps_tag_count_order():
    rows = [[f"t{i}", "shared"] for i in range(12)]  # every row adds its own tag: one pass takes all
    by_index = select_indices(rows, 12).tolist()
    assert by_index == list(range(12))
    shuffled = select_indices(rows, 12, ties="shuffle", seed=1).tolist()
    assert sorted(shuffled) == by_index and shuffled != by_index
    assert shuffled == select_indices(rows, 12, ties="shuffle", seed=1).tolist()
    mixed = [["a", "b", "c"], ["d"], ["e", "f", "g"], ["h"]]
    picks = select_indices(mixed, 4, ties="shuffle", seed=5).tolist()
    assert sorted(picks[:2]) == [0, 2] and sorted(picks[2:]) == [1, 3]


def test_duplicated_tag_sets_need_one_pass_each():
    rows = [["math"]] * 5 + [["math", "code"]]
    assert select_indices(rows, 6).tolist() == [5, 0, 1, 2, 3, 4]


def test_quotas_proportional_equal_and_explicit():
    rows = [["a", "b"], ["c"], ["d"], ["e"], ["f", "g", "h"], ["i"]]
    groups = ["x", "x", "x", "x", "y", "y"]
    # proportional: 3 rows -> x 2, y 1. Order 4, 0, 1, 2, 3, 5: 4 fills y; x takes 0 and 1.
    assert select_indices(rows, 3, quota_column=groups).tolist() == [4, 0, 1]
    assert select_indices(rows, 4, quota_column=groups, quotas="equal").tolist() == [4, 0, 1, 5]
    assert select_indices(rows, 2, quota_column=groups, quotas={"y": 2}).tolist() == [4, 5]
    with pytest.raises(ValueError, match="add up to 2 rows but n=3"):
        select_indices(rows, 3, quota_column=groups, quotas={"y": 2})
    with pytest.raises(ValueError, match=r"\['w'\]"):
        select_indices(rows, 2, quota_column=groups, quotas={"w": 2})
    with pytest.raises(ValueError, match="quota_column"):
        select_indices(rows, 2, quotas="equal")


def test_max_per_tag_skips_rows_that_would_exceed_it():
    rows = [["a", "b"], ["a", "c"], ["a"], ["d"], ["b", "d"]]
    # cap 1: 0 takes a, b; 1 and 2 carry a; 3 takes d; 4 carries b and d. Nothing else is eligible.
    assert select_indices(rows, 5, max_per_tag=1, untagged="never").tolist() == [0, 3]
    assert select_indices(rows, 5, "random", max_per_tag=2, untagged="never", seed=0).size <= 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=-1), "n must be an integer"),
    (dict(n=2.5), "n must be an integer"),
    (dict(n=2, strategy="best"), "strategy must be one of"),
    (dict(n=2, ties="random"), "ties must be one of"),
    (dict(n=2, untagged="first"), "untagged must be one of"),
    (dict(n=2, max_per_tag=0), "max_per_tag must be an integer >= 1"),
    (dict(n=2, quota_column="source", quotas="half"), "quotas must be one of"),
])
def test_parameters_are_validated(kwargs, message):
    ds = Dataset.from_dict({schema.NORM_TAGS: [["a"], ["b"]], "source": ["s", "t"]})
    with pytest.raises(ValueError, match=message):
        select_indices(ds, **kwargs)


def test_sample_keeps_every_column_in_pick_order():
    ds = Dataset.from_dict({"text": [f"row {i}" for i in range(len(POOL))], schema.NORM_TAGS: POOL,
                            schema.STATUS: ["ok" if u else "parse_error" for u in USABLE]})
    subset = sample(ds, 4)
    assert subset.column_names == ds.column_names
    assert subset["text"] == [f"row {i}" for i in CFD_ALL[:4]]
    subset, report = sample(ds, 100, return_report=True)
    assert len(subset) == len(ds) and report.selected == len(ds) and report.coverage == 1.0
    with pytest.raises(ValueError, match="datasets.Dataset"):
        sample(POOL, 2)


def test_selection_report_by_hand():
    rows = [["a"], ["a"], ["b"], []]
    report = selection_report(rows, [0, 3], strategy="cfd")
    assert (report.pool_rows, report.pool_diversity, report.subset_diversity) == (4, 2, 1)
    assert report.coverage == pytest.approx(0.5)
    assert report.pool_complexity == pytest.approx(3 / 4) and report.subset_complexity == pytest.approx(1 / 2)
    assert (report.pool_untagged_rows, report.untagged_selected) == (1, 1)
    # pool p = (2/3, 1/3), subset q = (1, 0), m = (5/6, 1/6)
    kl_p = 2 / 3 * math.log2((2 / 3) / (5 / 6)) + 1 / 3 * math.log2((1 / 3) / (1 / 6))
    kl_q = math.log2(1 / (5 / 6))
    assert report.js_divergence == pytest.approx((kl_p + kl_q) / 2)
    assert report.over_represented == [("a", pytest.approx(2 / 3), 1.0)]
    assert report.under_represented == [("b", pytest.approx(1 / 3), 0.0)]
    md = render_markdown(report)
    assert "| coverage of the pool's tags | 100.0% | 50.0% |" in md and "Under-represented" in md
    same = selection_report(rows, [0, 1, 2, 3])
    assert same.js_divergence == pytest.approx(0.0) and same.over_represented == []


def test_selection_report_groups():
    ds = Dataset.from_dict({schema.NORM_TAGS: [["a"], ["b"], ["c"], ["d"]], "source": ["x", "x", "y", "y"]})
    _, report = sample(ds, 2, quota_column="source", return_report=True)
    assert report.groups == {"x": (2, 1), "y": (2, 1)}
    assert "Rows per group" in render_markdown(report)
    assert report.as_dict()["params"]["quota_column"] == "source"


def test_cli_sample_writes_subset_and_report(tmp_path, capsys):
    data = tmp_path / "tagged.jsonl"
    rows = [{"text": f"q{i}", schema.NORM_TAGS: tags, "source": "ab"[i % 2]} for i, tags in enumerate(POOL)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["sample", str(data), "-n", "4", "--quota-column", "source", "--quotas", "a=2,b=2",
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Wrote" in printed and str(out.resolve()) in printed
    lines = [json.loads(x) for x in (out / "subset.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and sorted(r["source"] for r in lines) == ["a", "a", "b", "b"]
    assert (out / "subset" / "dataset_info.json").exists()
    assert "# Selection: cfd (4 rows)" in (out / "selection.md").read_text()
    assert json.loads((out / "selection.json").read_text())["selected"] == 4
    assert main(["sample", str(data), "-n", "4", "--quota-column", "source", "--quotas", "a:2",
                 "--output", str(out)]) == 2
    assert "value=rows" in capsys.readouterr().err


# ---------------------------------------------------------------------------- properties

tag_rows = st.lists(st.lists(st.integers(0, 9), max_size=6), min_size=1, max_size=40)


def _names(rows):
    return [[f"t{t}" for t in r] for r in rows]


#: mig needs a label graph holding every tag (t0..t9); without one it would load the default embedder
_MIG_GRAPH = LabelGraph([f"t{i}" for i in range(10)], np.eye(10))


def _graph(strategy):
    return {"label_graph": _MIG_GRAPH} if strategy == "mig" else {}


def _replay_cfd(rows, usable, picks):
    """Walk Algorithm 1 alongside ``picks``; returns the passes."""
    sets = [set(r) if u else set() for r, u in zip(rows, usable)]
    tagged = [i for i in range(len(rows)) if sets[i]]
    remaining = sorted(tagged, key=lambda i: -len(sets[i]))
    taken = [p for p in picks if sets[p]]
    assert picks[:len(taken)] == taken, "untagged rows come after every tagged one"
    passes, k = [], 0
    while k < len(taken):
        assert remaining, "more picks than rows"
        covered, this, rest = set(), [], []
        for i in remaining:
            if k < len(taken) and not sets[i] <= covered:
                assert taken[k] == i, "each pick is the next row that adds a tag to its pass's covered set"
                covered |= sets[i]
                this.append(i)
                k += 1
            else:
                rest.append(i)
        passes.append(this)
        remaining = rest
    return passes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=tag_rows, data=st.data())
def test_cfd_properties(rows, data):
    usable = data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    n = data.draw(st.integers(0, len(rows) + 3))
    ts = TagSets.from_lists(_names(rows), usable=usable)
    picks = select_indices(ts, n).tolist()
    assert len(picks) == len(set(picks)) == min(n, len(rows))
    _replay_cfd(rows, usable, picks)
    everything = select_indices(ts, len(rows)).tolist()
    assert everything[:n] == picks  # pick order is prefix-stable
    passes = _replay_cfd(rows, usable, everything)
    pool_tags = set().union(*(set(r) for r, u in zip(rows, usable) if u))
    if passes and n >= len(passes[0]):
        assert set().union(*(set(rows[p]) for p in picks if usable[p])) == pool_tags


@settings(max_examples=100, deadline=None)
@given(rows=tag_rows, data=st.data())
def test_every_strategy_returns_distinct_rows_and_exactly_n(rows, data):
    strategy = data.draw(st.sampled_from(STRATEGIES))
    ties = data.draw(st.sampled_from(["index", "shuffle"]))
    n = data.draw(st.integers(0, len(rows) + 3))
    seed = data.draw(st.integers(0, 5))
    ts = TagSets.from_lists(_names(rows))
    picks = select_indices(ts, n, strategy, ties=ties, seed=seed, **_graph(strategy)).tolist()
    assert len(picks) == len(set(picks)) == min(n, len(rows))
    assert all(0 <= p < len(rows) for p in picks)
    lengths = ts.lengths[picks]
    assert not np.any((lengths[1:] > 0) & (lengths[:-1] == 0)), "untagged rows come last"
    assert select_indices(ts, len(rows), strategy, ties=ties, seed=seed, **_graph(strategy)).tolist()[:n] == picks
    if strategy in ("cfd", "complexity") and ties == "index":
        assert picks == select_indices(ts, n, strategy, ties=ties, seed=seed + 1).tolist()


def _greedy_reference(rows, n):
    sets = [set(r) for r in rows]
    remaining, picks = [i for i in range(len(rows)) if sets[i]], []
    while len(picks) < n and remaining:
        covered = set()
        while len(picks) < n and remaining:
            best = max(remaining, key=lambda i: (len(sets[i] - covered), -i))
            if not sets[best] - covered:
                break
            picks.append(best)
            remaining.remove(best)
            covered |= sets[best]
    return picks


@settings(max_examples=100, deadline=None)
@given(rows=tag_rows, data=st.data())
def test_diversity_is_exact_greedy_max_coverage(rows, data):
    n = data.draw(st.integers(0, len(rows)))
    picks = select_indices(_names(rows), n, "diversity", untagged="never").tolist()
    assert picks == _greedy_reference(rows, n)


@settings(max_examples=150, deadline=None)
@given(rows=tag_rows, data=st.data())
def test_quotas_vectorized_cfd_equals_the_row_loop(rows, data):
    groups = data.draw(st.lists(st.integers(0, 2), min_size=len(rows), max_size=len(rows)))
    quota = np.array(data.draw(st.lists(st.integers(0, len(rows)), min_size=3, max_size=3)))
    n = data.draw(st.integers(0, len(rows) + 2))
    ts = TagSets.from_lists(_names(rows))
    lengths = ts.lengths
    tagged = np.flatnonzero(lengths > 0)
    order = tagged[np.lexsort((tagged, -lengths[tagged]))]
    codes = np.array(groups)
    fast = cfd_order(ts, order, n, codes, quota).tolist()
    slow = cfd_loop(order.tolist(), row_lists(ts), n, Limits(codes, quota, [], None, len(ts.vocab)))
    assert fast == slow
    assert all(fast.count(p) == 1 for p in fast)
    assert all(np.sum(codes[fast] == g) <= quota[g] for g in range(3))


@settings(max_examples=100, deadline=None)
@given(rows=tag_rows, data=st.data())
def test_limits_are_respected(rows, data):
    strategy = data.draw(st.sampled_from(STRATEGIES))
    cap = data.draw(st.integers(1, 3))
    groups = data.draw(st.lists(st.sampled_from("xy"), min_size=len(rows), max_size=len(rows)))
    n = data.draw(st.integers(0, len(rows)))
    picks = select_indices(_names(rows), n, strategy, max_per_tag=cap, quota_column=groups,
                           **_graph(strategy)).tolist()
    assert len(picks) == len(set(picks)) <= n
    counts = {}
    for p in picks:
        for t in set(rows[p]):
            counts[t] = counts.get(t, 0) + 1
    assert max(counts.values(), default=0) <= cap
    sizes = {g: groups.count(g) for g in "xy"}
    quota = {g: math.floor(n * sizes[g] / len(rows)) for g in "xy"}
    for g in "xy":
        assert sum(groups[p] == g for p in picks) <= quota[g] + 1


def test_select_indices_reads_a_dataset_with_failed_rows():
    ds = Dataset.from_dict({
        schema.TAGS: [[{"tag": "A", "explanation": ""}], [], [{"tag": "B", "explanation": ""}]],
        schema.STATUS: ["ok", "ok", "backend_error"],
    }, features=Features({schema.TAGS: List(schema.TAG_ITEM), schema.STATUS: Value("string")}))
    assert select_indices(ds, 3).tolist() == [0, 1, 2]
    assert select_indices(ds, 3, untagged="never").tolist() == [0]


def test_one_options_object_serves_every_entry_point():
    from instag_hf.selection import SelectionOptions, compare_strategies

    rows = [["a", "b"], ["a"], ["c"], [], ["b", "c", "d"]]
    options = SelectionOptions(ties="shuffle", seed=3, untagged="never")
    assert select_indices(rows, 5, options=options).tolist() == \
        select_indices(rows, 5, ties="shuffle", seed=3, untagged="never").tolist()
    assert select_indices(rows, 5, options=options, untagged="last").size == 5  # a keyword overrides the object
    ds = Dataset.from_dict({schema.NORM_TAGS: rows})
    assert sample(ds, 3, options=options)[schema.NORM_TAGS] == sample(ds, 3, ties="shuffle", seed=3,
                                                                       untagged="never")[schema.NORM_TAGS]
    c = compare_strategies(ds, 3, "cfd,random", options=options, source_column=None)
    assert c.params["ties"] == "shuffle" and c.params["seed"] == 3
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        select_indices(rows, 2, bogus=1)
    with pytest.raises(TypeError, match="name one option"):
        select_indices(rows, 2, "mig", scores=[1] * 5, score_column=[1] * 5)
    with pytest.raises(ValueError, match="only to strategy='mig'"):
        select_indices(rows, 2, options=SelectionOptions(prop_weight=0.5))
    with pytest.raises(ValueError, match="must be a SelectionOptions"):
        select_indices(rows, 2, options={"seed": 1})
    for kwargs, message in ((dict(seed=-1), "seed"), (dict(quotas="equal"), "quota_column"),
                            (dict(phi_b=2.0), "phi_b"), (dict(label_graph="x"), "LabelGraph")):
        with pytest.raises(ValueError, match=message):
            SelectionOptions(**kwargs)
