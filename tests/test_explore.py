"""The explorer's data views (instag_hf.reporting.explore) on small datasets built here."""

import pytest
from datasets import Dataset

from instag_hf import schema
from instag_hf.reporting.explore import ExploreError, Explorer, compare_datasets, tag_views

ROWS = [  # query, raw tags, normalized tags, status
    ("Write a sorting function in Python", ["python", "sorting"], ["coding", "algorithm"], "ok"),
    ("Fix my Python bug", ["python", "debugging"], ["coding", "debugging"], "ok"),
    ("Translate hello to French", ["translation"], ["translation"], "ok"),
    ("Sort these numbers", ["sorting"], ["algorithm"], "ok"),
    ("broken answer", ["python"], ["coding"], "parse_error"),
    ("Explain recursion in Python with code", ["python", "explanation"], ["coding", "explanation"], "truncated"),
]


def _ds(rows=ROWS, norm=True):
    data = {"instruction": [r[0] for r in rows],
            schema.TAGS: [[{"tag": t, "explanation": ""} for t in r[1]] for r in rows],
            schema.STATUS: [r[3] for r in rows]}
    if norm:
        data[schema.NORM_TAGS] = [r[2] for r in rows]
    return Dataset.from_dict(data)


def test_tag_table_counts_shares_search_and_views():
    ex = Explorer(_ds())
    assert ex.view == "normalized" and ex.views == ["normalized", "raw"]
    table = ex.tag_table()
    assert table[0] == {"tag": "coding", "rows": 3, "share": 3 / 5}  # the parse_error row does not count
    assert [r["tag"] for r in table] == ["coding", "algorithm", "debugging", "explanation", "translation"]
    assert [r["tag"] for r in ex.tag_table(search="CO")] == ["coding"]
    assert [r["tag"] for r in ex.tag_table(sort="tag")][:2] == ["algorithm", "coding"]
    raw = Explorer(_ds(), "raw").tag_table(limit=2)
    assert raw == [{"tag": "python", "rows": 3, "share": 0.6}, {"tag": "sorting", "rows": 2, "share": 0.4}]
    assert tag_views(_ds(norm=False).column_names) == ["raw"]
    with pytest.raises(ExploreError, match="no normalized tags"):
        Explorer(_ds(norm=False), "normalized")


def test_rows_for_tags_all_any_paging_and_cooccurring():
    ex = Explorer(_ds(), "raw")
    page = ex.rows_for_tags(["python"])
    assert page.total == 3 and [r["row"] for r in page.rows] == [0, 1, 5]
    assert page.rows[0] == {"row": 0, "query": "Write a sorting function in Python", "tags": ["python", "sorting"],
                            "status": "ok"}
    assert page.rows[2]["status"] == "truncated"
    assert {c["tag"] for c in page.cooccurring} == {"sorting", "debugging", "explanation"}
    assert all(c["rows"] == 1 and c["share"] == pytest.approx(1 / 3) for c in page.cooccurring)
    assert ex.rows_for_tags(["python", "sorting"], "all").total == 1
    assert [r["row"] for r in ex.rows_for_tags(["python", "sorting"], "any").rows] == [0, 1, 3, 5]
    second = ex.rows_for_tags(["python", "sorting"], "any", page=2, page_size=3)
    assert (second.page, second.pages, [r["row"] for r in second.rows]) == (2, 2, [5])
    assert ex.rows_for_tags("python", page=99, page_size=2).page == 2  # clamped to the last page
    assert page.as_dict()["tags"] == ["python"]


def test_bad_input_gets_a_clear_message():
    ex = Explorer(_ds())
    with pytest.raises(ExploreError, match=r"'codng' is not in .* did you mean 'coding'"):
        ex.rows_for_tags(["codng"])
    with pytest.raises(ExploreError, match="at least one tag"):
        ex.rows_for_tags([" "])
    with pytest.raises(ExploreError, match="mode"):
        ex.rows_for_tags(["coding"], mode="some")
    with pytest.raises(ExploreError, match="empty"):
        Explorer(_ds().select([]))
    with pytest.raises(ExploreError, match="no tags column"):
        Explorer(Dataset.from_dict({"text": ["a"]}))


def test_compare_two_datasets():
    full, subset = _ds(), _ds(ROWS[:2])
    cmp = compare_datasets(full, subset, names=["default", "selected"])
    assert cmp.view == "normalized" and cmp.shared == 3
    assert cmp.coverage == {"default": 1.0, "selected": 3 / 5}
    assert cmp.only["selected"] == [] and [o["tag"] for o in cmp.only["default"]] == ["explanation", "translation"]
    assert cmp.recall == [[1.0, 3 / 5], [1.0, 1.0]]
    assert [m.diversity for m in cmp.metrics] == [5, 3]
    assert cmp.as_dict()["metrics"][1]["name"] == "selected"
    assert compare_datasets(full, _ds(norm=False)).view == "raw"
    with pytest.raises(ExploreError, match="two different names"):
        compare_datasets(full, subset, names=["x", "x"])
