"""MIG selection against a plain dense re-implementation of the published method, its properties,
and the label graph (validation, building from embeddings, files)."""

from collections import Counter

import numpy as np
import pytest
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from instag_hf import LabelGraph, sample, schema, select_indices
from instag_hf.analysis.tagsets import TagSets
from instag_hf.selection import label_graph as label_graph_module
from instag_hf.selection.mig import MigParams, mig_greedy, mig_objective, mig_plain
from support.synthetic import SyntheticEmbedder

A, B = 1e-6, 0.8
TIE = 1e-12
TAGS = [f"t{i}" for i in range(10)]


# ------------------------------------------------------------------ the reference


def dense_mig(rows, tags, similarity, n, scores=None, prop_weight=1.0, a=A, b=B, usable=None, untagged="last",
              max_per_tag=None, norm=True):
    """MIG as published (instag-facts section 7), written plainly with dense matrices.

    P: the similarity with off-diagonal entries times prop_weight, each column divided by
    its sum. v_i: s_i / |T_i| on each tag of row i; u_i = v_i P. Greedy: the largest
    u_i . phi'(x), phi'(x) = b (x + a)^(b - 1), first (lowest) row among equals (within
    a relative 1e-12, so that rounding cannot decide a tie); then x += u_i. Rows without
    usable tags come after, zero-tag rows first, then failed rows.
    """
    k = len(tags)
    index = {t: j for j, t in enumerate(tags)}
    w = np.array(similarity, dtype=float)
    off = ~np.eye(k, dtype=bool)
    w[off] *= prop_weight
    p = w / w.sum(axis=0, keepdims=True)
    usable = [True] * len(rows) if usable is None else list(usable)
    sets = [sorted(set(r)) if u else [] for r, u in zip(rows, usable)]
    s = np.ones(len(rows)) if scores is None else np.asarray(scores, dtype=float)
    v = np.zeros((len(rows), k))
    for i, row in enumerate(sets):
        for t in row:
            v[i, index[t]] = s[i] / len(row) if norm else s[i]  # norm=False: the official CLI's --norm False
    u = v @ p
    x = np.zeros(k)
    picks, left, used = [], [i for i, row in enumerate(sets) if row], Counter()
    while len(picks) < n:
        if max_per_tag is not None:
            left = [i for i in left if all(used[t] < max_per_tag for t in sets[i])]
        if not left:
            break
        gains = u[left] @ (b * (x + a) ** (b - 1))
        i = left[int(np.flatnonzero(gains >= gains.max() * (1 - TIE))[0])]
        picks.append(i)
        left.remove(i)
        x += u[i]
        used.update(sets[i])
    if untagged == "last":
        zero = [i for i, (row, ok) in enumerate(zip(rows, usable)) if ok and not sets[i]]
        failed = [i for i, ok in enumerate(usable) if not ok]
        picks += (zero + failed)[: max(0, n - len(picks))]
    return picks, u


def objective(u, picks, a=A, b=B):
    x = u[list(picks)].sum(axis=0) if len(picks) else np.zeros(u.shape[1])
    return float(np.sum((x + a) ** b))


def assert_same_greedy(got, want, u, a=A, b=B):
    """Equal picks, up to the first place where the two greedies part on a near-tie.

    There both picks' gains ``u_i . phi'(x)`` (after the common prefix) must agree to
    1e-9 relative and be positive: two rows whose gains differ by rounding alone may go
    either way (the reference calls gains within 1e-12 a tie), and the paths after that
    are both greedy but no longer comparable pick by pick.
    """
    assert len(got) == len(want)
    d = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
    if d is None:
        return
    x = u[got[:d]].sum(axis=0) if d else np.zeros(u.shape[1])
    grad = b * (x + a) ** (b - 1)
    mine, theirs = float(u[got[d]] @ grad), float(u[want[d]] @ grad)
    assert mine > 0 and theirs > 0, (d, got, want)
    assert mine == pytest.approx(theirs, rel=1e-9), (d, got, want, mine, theirs)


def graph_matrix(rng, k, edges):
    s = np.eye(k)
    for _ in range(edges):
        i, j = rng.integers(0, k, 2)
        if i != j:
            s[i, j] = s[j, i] = rng.uniform(0.9, 1.0)
    return s


def names(rows):
    return [[f"t{t}" for t in r] for r in rows]


# ------------------------------------------------------------------ hand-made pools


def test_hand_worked_identity_graph():
    # every row's first gain is phi'(0) (its weights sum to 1): row 0 by index. Then a and b hold 0.5,
    # so row 1 ({a}) gains phi'(0.5) < phi'(0) of row 2 ({c}).
    g = LabelGraph(["a", "b", "c"], np.eye(3))
    assert select_indices([["a", "b"], ["a"], ["c"]], 3, "mig", label_graph=g).tolist() == [0, 2, 1]


def test_propagation_makes_similar_tags_redundant():
    s = np.eye(3)
    s[0, 1] = s[1, 0] = 0.9  # a ~ b
    g = LabelGraph(["a", "b", "c"], s)
    rows = [["a"], ["b"], ["c"]]
    assert select_indices(rows, 3, "mig", label_graph=g).tolist() == [0, 2, 1]  # b was informed by a
    assert select_indices(rows, 3, "mig", label_graph=g, prop_weight=0).tolist() == [0, 1, 2]  # propagation off


def test_scores_weigh_rows():
    g = LabelGraph(["a", "b"], np.eye(2))
    assert select_indices([["a"], ["b"]], 2, "mig", label_graph=g, scores=[1.0, 2.0]).tolist() == [1, 0]
    assert select_indices([["a"], ["b"]], 2, "mig", label_graph=g, scores=[2.0, 2.0]).tolist() == [0, 1]


HAND_TAGS = ["a", "b", "c", "d", "e", "f"]
HAND_ROWS = [["a"], ["b"], ["a", "b"], ["c"], ["d", "e"], ["e"], [], ["f", "a", "c"], ["z"], ["b", "d"], ["a"]]
HAND_USABLE = [True] * 8 + [False] + [True] * 2


def hand_graph():
    s = np.eye(6)
    s[0, 1] = s[1, 0] = 0.95
    s[2, 3] = s[3, 2] = 0.92
    s[4, 5] = s[5, 4] = 0.9
    return s


@pytest.mark.parametrize("prop_weight", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("scored", [False, True])
def test_hand_made_pool_matches_the_reference(prop_weight, scored):
    scores = [1.0, 0.5, 2.0, 1.0, 3.0, 0.2, 1.0, 1.5, 1.0, 0.7, 1.0] if scored else None
    want, u = dense_mig(HAND_ROWS, HAND_TAGS, hand_graph(), 20, scores, prop_weight, usable=HAND_USABLE)
    ts = TagSets.from_lists(HAND_ROWS, usable=HAND_USABLE)
    got = select_indices(ts, 20, "mig", label_graph=LabelGraph(HAND_TAGS, hand_graph()), scores=scores,
                         prop_weight=prop_weight).tolist()
    assert_same_greedy(got, want, u)
    assert got[-2:] == [6, 8]  # the zero-tag row, then the failed row


@pytest.mark.parametrize("phi", [(1e-6, 0.8), (1e-3, 0.5), (0.1, 1.0)])
def test_phi_parameters_match_the_reference(phi):
    a, b = phi
    want, u = dense_mig(HAND_ROWS, HAND_TAGS, hand_graph(), 20, usable=HAND_USABLE, a=a, b=b)
    ts = TagSets.from_lists(HAND_ROWS, usable=HAND_USABLE)
    got = select_indices(ts, 20, "mig", label_graph=LabelGraph(HAND_TAGS, hand_graph()), phi_a=a,
                         phi_b=b).tolist()
    assert len(got) == len(want)
    if got != want:
        for k in range(1, len(got) + 1):
            assert objective(u, got[:k], a, b) == pytest.approx(objective(u, want[:k], a, b), rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_random_pools_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    k, size = 15, 300
    rows = [[f"t{t}" for t in rng.choice(k, rng.integers(0, 6), replace=False)] for _ in range(size)]
    usable = (rng.random(size) > 0.05).tolist()
    tags = [f"t{i}" for i in range(k)]
    s = graph_matrix(rng, k, 12)
    scores = rng.uniform(0.1, 5, size) if seed % 2 else None
    prop_weight = [0.0, 0.5, 1.0][seed % 3]
    want, u = dense_mig(rows, tags, s, size, scores, prop_weight, usable=usable)
    ts = TagSets.from_lists(rows, usable=usable)
    got = select_indices(ts, size, "mig", label_graph=LabelGraph(tags, s), scores=scores,
                         prop_weight=prop_weight).tolist()
    assert_same_greedy(got, want, u)


def test_lazy_equals_plain_greedy_on_a_larger_pool():
    rng = np.random.default_rng(7)
    k, size = 200, 5000
    lengths = rng.integers(1, 8, size)
    rows = [rng.choice(k, m, replace=False).tolist() for m in lengths]
    ts = TagSets.from_lists(names(rows))
    tags = [f"t{i}" for i in range(k)]
    params = MigParams(LabelGraph(tags, graph_matrix(rng, k, 300)), rng.uniform(0.5, 2, size))
    tagged, rank = np.arange(size), np.arange(size)
    lazy = mig_greedy(ts, tagged, rank, 800, None, params)
    assert lazy == mig_plain(ts, tagged, rank, 800, params)
    assert mig_objective(ts, lazy, params) > mig_objective(ts, tagged[:800], params)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_pools_match_the_reference(data):
    rows = data.draw(st.lists(st.lists(st.integers(0, 7), max_size=5), min_size=1, max_size=25))
    pairs = data.draw(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7), st.floats(0.9, 1.0)), max_size=6))
    s = np.eye(8)
    for i, j, w in pairs:
        if i != j:
            s[i, j] = s[j, i] = w
    scores = data.draw(st.none() | st.lists(st.floats(0.1, 10), min_size=len(rows), max_size=len(rows)))
    prop_weight = data.draw(st.sampled_from([0.0, 0.3, 1.0, 1.5]))
    n = data.draw(st.integers(0, len(rows) + 2))
    tags = [f"t{i}" for i in range(8)]
    want, u = dense_mig(names(rows), tags, s, n, scores, prop_weight)
    got = select_indices(names(rows), n, "mig", label_graph=LabelGraph(tags, s), scores=scores,
                         prop_weight=prop_weight).tolist()
    assert_same_greedy(got, want, u)


def test_a_near_tie_may_part_the_two_greedies():
    # found by the property test above: rows 1 and 2 differ in gain by 3e-13 relative after row 0
    rows, s = [[0], [0, 2], [0, 1, 2, 3]], np.eye(8)
    s[0, 1] = s[1, 0] = 0.99999
    tags = [f"t{i}" for i in range(8)]
    want, u = dense_mig(names(rows), tags, s, 2, None, 1.0)
    got = select_indices(names(rows), 2, "mig", label_graph=LabelGraph(tags, s), prop_weight=1.0).tolist()
    assert got[0] == want[0] == 0
    assert_same_greedy(got, want, u)
    with pytest.raises(AssertionError):  # a real difference in gain is still caught
        assert_same_greedy([0, 1], [0, 2], np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 5.0]]))


@pytest.mark.parametrize("cap", [1, 2])
def test_max_per_tag_matches_the_reference(cap):
    rng = np.random.default_rng(cap)
    rows = [[f"t{t}" for t in rng.choice(8, rng.integers(1, 4), replace=False)] for _ in range(60)]
    tags = [f"t{i}" for i in range(8)]
    s = graph_matrix(rng, 8, 5)
    want, u = dense_mig(rows, tags, s, 60, max_per_tag=cap)
    got = select_indices(rows, 60, "mig", label_graph=LabelGraph(tags, s), max_per_tag=cap).tolist()
    assert_same_greedy(got, want, u)
    counts = Counter(t for p in got for t in rows[p])
    assert max(counts.values()) <= cap


# ------------------------------------------------------------------ properties

tag_rows = st.lists(st.lists(st.integers(0, 9), max_size=6), min_size=1, max_size=40)
GRAPH = LabelGraph(TAGS, graph_matrix(np.random.default_rng(0), 10, 8))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=tag_rows, data=st.data())
def test_mig_properties(rows, data):
    usable = data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    scores = data.draw(st.none() | st.lists(st.floats(0, 5), min_size=len(rows), max_size=len(rows)))
    n = data.draw(st.integers(0, len(rows) + 3))
    ts = TagSets.from_lists(names(rows), usable=usable)
    picks = select_indices(ts, n, "mig", label_graph=GRAPH, scores=scores).tolist()
    assert len(picks) == len(set(picks)) == min(n, len(rows))  # no row twice; exactly n or every row
    tagged = [i for i in range(len(rows)) if usable[i] and rows[i]]
    assert set(picks[:min(n, len(tagged))]) <= set(tagged)  # tagged rows first
    k = data.draw(st.integers(0, n))
    assert select_indices(ts, k, "mig", label_graph=GRAPH, scores=scores).tolist() == picks[:k]  # prefix-stable
    never = select_indices(ts, n, "mig", label_graph=GRAPH, scores=scores, untagged="never").tolist()
    assert never == picks[:min(n, len(tagged))]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=tag_rows)
def test_identity_graph_adds_a_new_tag_while_any_row_can(rows):
    # With at most L tags per row, a row with a new tag gains >= phi'(0) / L and any other row at most
    # phi'(1 / L): the first is larger for L < 10 at the default a and b.
    identity = LabelGraph(TAGS, sparse.identity(10))
    picks = select_indices(names(rows), len(rows), "mig", label_graph=identity).tolist()
    covered: set[int] = set()
    for p in picks:
        can = any(set(rows[i]) - covered for i in range(len(rows)) if i not in picks[:picks.index(p)])
        if can:
            assert set(rows[p]) - covered, f"row {p} adds no tag while another row could"
        covered |= set(rows[p])


@settings(max_examples=60, deadline=None)
@given(rows=tag_rows, data=st.data())
def test_limits_are_respected(rows, data):
    cap = data.draw(st.integers(1, 3))
    groups = data.draw(st.lists(st.sampled_from("xy"), min_size=len(rows), max_size=len(rows)))
    n = data.draw(st.integers(0, len(rows)))
    picks = select_indices(names(rows), n, "mig", label_graph=GRAPH, max_per_tag=cap,
                           quota_column=groups).tolist()
    assert len(picks) == len(set(picks)) <= n
    counts = Counter(t for p in picks for t in set(rows[p]))
    assert max(counts.values(), default=0) <= cap
    quota = {g: groups.count(g) * n // len(rows) + 1 for g in "xy"}
    assert all(sum(groups[p] == g for p in picks) <= quota[g] for g in "xy")


def test_ties_shuffle_orders_equal_gains_by_the_seeded_permutation():
    g = LabelGraph(["a", "b", "c", "d"], np.eye(4))
    rows = [["a"], ["b"], ["c"], ["d"]]
    orders = {tuple(select_indices(rows, 4, "mig", label_graph=g, ties="shuffle", seed=s).tolist())
              for s in range(8)}
    assert len(orders) > 1
    assert select_indices(rows, 4, "mig", label_graph=g).tolist() == [0, 1, 2, 3]


# ------------------------------------------------------------------ parameters and the Dataset path


def tagged_dataset():
    return Dataset.from_dict({
        schema.NORM_TAGS: [["a"], ["b"], ["a", "b"], [], ["c"]],
        schema.STATUS: ["ok", "ok", "ok", "ok", "backend_error"],
        "score": [1.0, 3.0, 1.0, 1.0, 1.0],
        "name": ["r0", "r1", "r2", "r3", "r4"],
    })


def test_sample_reads_the_score_column_and_reports_mig_settings():
    g = LabelGraph(["a", "b", "c"], np.eye(3))
    subset, report = sample(tagged_dataset(), 5, "mig", label_graph=g, score_column="score", return_report=True)
    assert subset["name"][0] == "r1"  # the highest score first
    assert subset["name"][-2:] == ["r3", "r4"]  # the zero-tag row, then the failed row
    assert report.params["mig"]["score_column"] == "score"
    assert report.params["mig"]["prop_weight"] == 1.0
    assert report.params["mig"]["label_graph"] == {"tags": 3, "edges": 0}


def test_bad_score_columns_fail_clearly():
    g = LabelGraph(["a", "b", "c"], np.eye(3))
    for column, message in (("name", "must hold numbers"), ("score", "only to strategy='mig'")):
        with pytest.raises(ValueError, match=message):
            sample(tagged_dataset(), 2, "mig" if column == "name" else "cfd", score_column=column,
                   **({"label_graph": g} if column == "name" else {}))
    holes = tagged_dataset().remove_columns("score").add_column("score", [1.0, None, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="1 missing"):
        sample(holes, 2, "mig", label_graph=g, score_column="score")


@pytest.mark.parametrize("kwargs, message", [
    (dict(strategy="cfd", prop_weight=0.5), "only to strategy='mig'"),
    (dict(strategy="random", label_graph="x"), "only to strategy='mig'"),
    (dict(prop_weight=-1), "prop_weight"),
    (dict(phi_a=0), "phi_a"),
    (dict(phi_b=1.5), "phi_b"),
    (dict(phi_b=float("nan")), "phi_b"),
    (dict(scores=[1, 2]), "one number per row"),
    (dict(scores=[1, -1, 1, 1, 1]), ">= 0"),
    (dict(scores=[1, float("nan"), 1, 1, 1]), "finite"),
    (dict(scores="nope"), "not found"),
    (dict(label_graph=np.eye(3)), "LabelGraph"),
])
def test_bad_parameters_fail_clearly(kwargs, message):
    kwargs = {"strategy": "mig", "label_graph": LabelGraph(["a", "b", "c"], np.eye(3)), **kwargs}
    with pytest.raises(ValueError, match=message):
        select_indices(tagged_dataset(), 3, **kwargs)


def test_a_data_tag_missing_from_the_graph_is_named():
    g = LabelGraph(["a", "b"], np.eye(2))
    with pytest.raises(ValueError, match=r"1 data tag\(s\) are not in the label graph.*'c'"):
        select_indices([["a"], ["c", "b"]], 2, "mig", label_graph=g)
    many = LabelGraph(["a"], np.eye(1))
    with pytest.raises(ValueError, match=r"7 data tag.*e\.g\. 'b', 'c', 'd', 'e', 'f';"):
        many.indices(list("abcdefgh"))


def test_default_graph_uses_the_default_embedder(monkeypatch):
    table = {"a": [1.0, 0.0], "b": [0.99, 0.141], "c": [0.0, 1.0]}
    monkeypatch.setattr(label_graph_module, "_DEFAULT_EMBEDDER", lambda texts: np.array([table[t] for t in texts]))
    rows = [["a"], ["b"], ["c"]]
    assert select_indices(rows, 3, "mig").tolist() == [0, 2, 1]  # a ~ b (cosine 0.99) in the built graph
    _, report = sample(Dataset.from_dict({schema.NORM_TAGS: rows}), 3, "mig", return_report=True)
    assert report.params["mig"]["label_graph"] == {"tags": 3, "edges": 1}


# ------------------------------------------------------------------ the label graph


def test_label_graph_accepts_dense_and_sparse_and_lists_edges():
    s = hand_graph()
    dense, sparse_graph = LabelGraph(HAND_TAGS, s), LabelGraph(HAND_TAGS, sparse.csr_matrix(s))
    assert (dense.similarity != sparse_graph.similarity).nnz == 0
    assert dense.edges() == [("a", "b", 0.95), ("c", "d", 0.92), ("e", "f", 0.9)]
    assert dense.n_edges == 3 and len(dense) == 6 and "a" in dense and "z" not in dense
    assert dense.indices(["c", "a"]).tolist() == [2, 0]
    assert repr(dense) == "LabelGraph(tags=6, edges=3)"


@pytest.mark.parametrize("tags, matrix, message", [
    (["a", "b"], np.eye(3), r"2 x 2"),
    (["a", "b"], np.ones((2, 3)), r"2 x 2"),
    (["a", "b"], np.ones(4), "2-D"),
    (["a", "b"], [[1, 0.5], [0.4, 1]], "symmetric"),
    (["a", "b"], [[0.5, 0], [0, 1]], "diagonal"),
    (["a", "b"], [[1, -0.5], [-0.5, 1]], r"\[0, 1\]"),
    (["a", "b"], [[1, 1.5], [1.5, 1]], r"\[0, 1\]"),
    (["a", "b"], [[1, np.nan], [np.nan, 1]], "NaN"),
    (["a", "b"], np.array([["x", "y"], ["z", "w"]]), "numeric"),
    (["a", "a"], np.eye(2), "unique"),
    (["a", ""], np.eye(2), "non-empty strings"),
    (["a", 3], np.eye(2), "non-empty strings"),
    ("ab", np.eye(2), "not one string"),
])
def test_label_graph_validation(tags, matrix, message):
    with pytest.raises(ValueError, match=message):
        LabelGraph(tags, matrix)


class TableEmbedder:
    def __init__(self, table):
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}

    def __call__(self, texts):
        return np.stack([self.table[t] for t in texts])


def angle(degrees):
    r = np.deg2rad(degrees)
    return [np.cos(r), np.sin(r), 0.0]


def test_from_tags_keeps_cosines_at_or_above_the_threshold():
    emb = TableEmbedder({"a": angle(0), "b": angle(20), "c": angle(60), "d": angle(25)})
    g = LabelGraph.from_tags(["a", "b", "c", "d", "a"], embedder=emb, threshold=0.9)
    assert g.tags == ["a", "b", "c", "d"]
    got = {(x, y): w for x, y, w in g.edges()}
    assert set(got) == {("a", "b"), ("a", "d"), ("b", "d")}
    for (x, y), cos in {("a", "b"): np.cos(np.deg2rad(20)), ("a", "d"): np.cos(np.deg2rad(25)),
                        ("b", "d"): np.cos(np.deg2rad(5))}.items():
        assert got[(x, y)] == pytest.approx(cos, abs=1e-5)
    assert [e[:2] for e in LabelGraph.from_tags(["a", "b", "c", "d"], embedder=emb, threshold=0.95).edges()] == \
        [("b", "d")]
    matrix = g.similarity
    assert (abs(matrix - matrix.T) > 0).nnz == 0 and np.all(matrix.diagonal() == 1)


def test_from_tags_with_the_synthetic_hash_embedder():
    concept_of = {"code debug": 0, "debug code": 0, "fix code bug": 0, "poem write": 1, "write poem": 1}
    tags = list(concept_of) + ["weather", "travel plan", "tax"]
    g = LabelGraph.from_tags(tags, embedder=SyntheticEmbedder(concept_of, dim=32), threshold=0.9)
    pairs = {(a, b) for a, b, _ in g.edges()}
    assert pairs == {("code debug", "debug code"), ("code debug", "fix code bug"), ("debug code", "fix code bug"),
                     ("poem write", "write poem")}
    again = LabelGraph.from_tags(tags, embedder=SyntheticEmbedder(concept_of, dim=32), threshold=0.9)
    assert g.edges() == again.edges()


def test_from_tags_small_and_bad_inputs():
    assert len(LabelGraph.from_tags([], embedder=TableEmbedder({}))) == 0
    one = LabelGraph.from_tags(["solo"], embedder=TableEmbedder({}))
    assert one.tags == ["solo"] and one.n_edges == 0
    for threshold in (0, 1.5, -0.2, True, "0.9"):
        with pytest.raises(ValueError, match="threshold"):
            LabelGraph.from_tags(["a", "b"], embedder=TableEmbedder({}), threshold=threshold)
    with pytest.raises(ValueError, match="index"):
        LabelGraph.from_tags(["a", "b"], embedder=TableEmbedder({}), index="hnsw")


def test_save_and_load_roundtrip_without_pickle(tmp_path):
    tags = ["café au lait", "naïve", "数学 问题", "x"]
    s = np.eye(4)
    s[0, 2] = s[2, 0] = 0.93
    g = LabelGraph(tags, s)
    path = g.save(tmp_path / "graph.npz")
    with np.load(path, allow_pickle=False) as f:
        assert set(f.files) == {"header", "indptr", "indices", "data"}
    back = LabelGraph.load(path)
    assert back.tags == tags and back.edges() == g.edges()
    assert (back.similarity != g.similarity).nnz == 0
    odd = g.save(tmp_path / "graph.bin")  # any name: nothing is appended
    assert odd.name == "graph.bin" and LabelGraph.load(odd).tags == tags


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a label graph"):
        LabelGraph.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, header=np.frombuffer(b'{"format": "something"}', dtype=np.uint8),
             indptr=np.zeros(1), indices=np.zeros(0), data=np.zeros(0))
    with pytest.raises(ValueError, match="not a label graph"):
        LabelGraph.load(other)
