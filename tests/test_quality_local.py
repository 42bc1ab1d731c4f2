"""The fast local tagger: classifier, persistence without pickles, and the ``local`` backend."""

import hashlib
import io
import json
import re

import numpy as np
import pytest

from instag_hf import Tagger
from instag_hf.tagging.backends import backend_class
from instag_hf.quality.local_backend import LocalBackend, query_of
from instag_hf.tagging.prompts import TEMPLATES
from instag_hf.quality import LocalTagModel, evaluate_tags, tag_f1
from support.synthetic_queries import make_tagged_queries
from instag_hf.quality.local_model import fit_ridge, select_tags


class WordHashEmbedder:
    """Bag of words hashed into 256 buckets: instant, deterministic, good enough for template queries."""

    cache_id = None

    def __call__(self, texts):
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
        return out


@pytest.fixture(scope="module")
def corpus():
    data = make_tagged_queries(900, seed=0)
    seen, rows = set(), []
    for q, t in zip(data.queries, data.teacher):
        if q not in seen:
            seen.add(q)
            rows.append((q, t))
    return rows[:700], rows[700:]


def test_select_tags_hand_values():
    scores = np.array([[0.9, 0.2, 0.5, 0.45], [0.1, 0.2, 0.05, 0.0]])
    picked = select_tags(scores, threshold=0.4, min_tags=1, max_tags=2)
    assert [p.tolist() for p in picked] == [[0, 2], [1]]  # capped at 2; at least 1 below the threshold
    assert [p.tolist() for p in select_tags(scores, 0.4, 0, 8)] == [[0, 2, 3], []]


def test_ridge_fits_every_label_in_closed_form():
    x = np.eye(4, dtype=np.float32)
    offsets, ids = np.array([0, 1, 3, 4, 5]), np.array([0, 0, 1, 1, 1], dtype=np.int32)  # rows: {0}, {0,1}, {1}, {1}
    coef, intercept = fit_ridge(x, offsets, ids, 2, alpha=1e-6)
    pred = x @ coef.T + intercept
    assert np.allclose(pred, [[1, 0], [1, 1], [0, 1], [0, 1]], atol=1e-4)


def test_vocabulary_folds_case_and_drops_rare_tags():
    queries = ["write code", "write some code", "more code please", "a rare one"]
    tags = [["Code Generation"], ["code generation"], [{"tag": "Code  Generation", "explanation": ""}], ["Rare"]]
    model = LocalTagModel(embedder=WordHashEmbedder(), min_count=2, threshold=0.5).fit(queries, tags)
    assert model.vocab == ["Code Generation"] and model.counts == [3]
    assert model.info["unlabeled"] == 1 and model.info["raw_tags"] == 2
    with pytest.raises(ValueError, match="min_count"):
        LocalTagModel(embedder=WordHashEmbedder(), min_count=5).fit(queries, tags)
    with pytest.raises(ValueError, match="method"):
        LocalTagModel(method="svm")


@pytest.mark.parametrize("method, floor", [("ridge", 0.65), ("knn", 0.4)])
def test_learns_the_synthetic_teacher(corpus, method, floor):
    train, test = corpus
    model = LocalTagModel(method, WordHashEmbedder()).fit([q for q, _ in train], [t for _, t in train])
    assert 0.05 <= model.threshold_ <= 0.95 and model.info["val_micro_f1"] > 0
    pred = model.predict([q for q, _ in test])
    assert all(1 <= len(p) <= 8 for p in pred)
    report = tag_f1([[t for t, _ in p] for p in pred], [t for _, t in test], threshold=None)
    assert report.exact.micro.f1 >= floor


def test_save_and_load_without_pickles(corpus, tmp_path):
    train, test = corpus
    emb = WordHashEmbedder()
    model = LocalTagModel("ridge", emb).fit([q for q, _ in train], [t for _, t in train])
    folder = model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "config.json", "vocab.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config["method"] == "ridge" and config["custom_embedder"] and len(config["fingerprint"]) == 64
    loaded = LocalTagModel.load(folder, embedder=emb)
    queries = [q for q, _ in test[:30]]
    assert loaded.predict(queries) == model.predict(queries)
    assert loaded.vocab == model.vocab and loaded.fingerprint == config["fingerprint"]
    with pytest.raises(ValueError, match="custom embedder"):
        LocalTagModel.load(folder)
    # an object array needs pickle to load: refused even with a matching fingerprint
    buf = io.BytesIO()
    np.savez(buf, coef=np.array([{"a": 1}], dtype=object), intercept=np.zeros(1))
    (folder / "arrays.npz").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="fingerprint"):
        LocalTagModel.load(folder, embedder=emb)
    del config["fingerprint"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="pickle"):
        LocalTagModel.load(folder, embedder=emb)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_backend_reads_the_query_back_out_of_any_template(name):
    query = 'Plan a 3-day trip to Rome. Use {braces} and "quotes".'
    assert query_of(TEMPLATES[name].render(query)) == query


def test_backend_is_registered_and_validates():
    assert backend_class("local") is LocalBackend
    with pytest.raises(ValueError, match="model"):
        LocalBackend("")
    with pytest.raises(ValueError, match="threshold"):
        LocalBackend("x", threshold=2)


def test_tagger_with_the_local_backend_and_minilm(tmp_path):
    data = make_tagged_queries(360, seed=11)
    folder = LocalTagModel().fit(data.queries, data.teacher).save(tmp_path / "tagger")
    held = make_tagged_queries(40, seed=12).to_dataset()
    tagger = Tagger(backend="local", model=str(folder), use_cache=False, progress=False)
    tagged = tagger.map(held.select_columns(["id", "query"]), desc=None)
    assert set(tagged["instag_status"]) == {"ok"}
    vocab = {r["tag"] for r in json.loads((folder / "vocab.json").read_text())}
    assert all(t["tag"] in vocab and t["explanation"].startswith("local tagger score")
               for row in tagged["instag_tags"] for t in row)
    assert tagger.describe()["backend"]["revision"] == json.loads((folder / "config.json").read_text())["fingerprint"]
    assert tagger.describe()["template"] == "chatml@1"
    report = evaluate_tags(tagged, held.select_columns(["id", "instag_tags", "instag_status"]), on="id",
                           threshold=0.8)
    assert report.evaluated == 40 and report.exact.micro.f1 >= 0.5
    assert report.fuzzy.micro.f1 >= report.exact.micro.f1
