"""Score a tagger on the bundled reference set (:func:`instag_hf.samples.load_reference`).

One call gives what the benchmarks and ``instag eval --reference`` report: exact and
fuzzy micro precision/recall/F1 against the reference tags, tags per query, the most
frequent predicted tag and the share of rows holding it (a tagger that copies one tag
everywhere shows up here even when its F1 looks fine), speed, and the predictions.
"""

from __future__ import annotations

import time
from collections import Counter

from .. import schema
from ..samples import REFERENCE_COLUMN, load_reference
from .f1 import DEFAULT_THRESHOLD, evaluate_tags
from .matching import tag_names


def _prf(scores) -> dict | None:
    if scores is None:
        return None
    m = scores.micro
    return {"precision": m.precision, "recall": m.recall, "f1": m.f1}


def score_tagger(tagger, dataset=None, *, threshold: float | None = DEFAULT_THRESHOLD, embedder=None,
                 matching: str = "hungarian", failed: str = "empty") -> dict:
    """Tag ``dataset`` (default: the reference set) with ``tagger`` and score it against ``reference_tags``.

    ``tagger`` is a :class:`~instag_hf.Tagger`; ``dataset`` needs a ``messages`` column (or
    whatever the tagger reads) and ``reference_tags``. Rows whose tagging failed count as
    predicting no tag (``failed="empty"``), so a tagger cannot gain by failing; pass
    ``threshold=None`` to skip fuzzy matching (no embedding model). Returns a dict:

    - ``exact``, ``fuzzy``: micro ``precision``/``recall``/``f1`` (``fuzzy`` is ``None``
      without a threshold);
    - ``rows``, ``queries`` (user turns tagged), ``statuses``, ``seconds``,
      ``queries_per_s`` (user turns per second, request-cache hits included: pass a
      tagger with ``use_cache=False`` to time the model);
    - ``tags_per_query`` (mean predicted tags per row), ``top_tag``, ``top_tag_share``
      (share of rows whose prediction holds it) and ``top_tag_reference_share`` (the same
      for the reference tags, to tell a copied tag from a common one);
    - ``predictions``: per row ``id``, ``category``, ``tags`` (as the tagger wrote them),
      ``reference_tags`` and ``status``;
    - ``report``: the full :class:`~instag_hf.quality.f1.TagEvalReport` (not JSON; use
      ``report.as_dict()``).
    """
    ds = load_reference() if dataset is None else dataset
    if REFERENCE_COLUMN not in ds.column_names:
        raise ValueError(f"the dataset has no {REFERENCE_COLUMN!r} column; columns: {ds.column_names}")
    turns_before = tagger.stats.turns
    start = time.perf_counter()
    tagged = tagger.map(ds, load_from_cache_file=False, keep_in_memory=True, desc="Tagging the reference set")
    seconds = time.perf_counter() - start
    queries = tagger.stats.turns - turns_before
    report = evaluate_tags(tagged, predicted_column=schema.TAGS, gold_column=REFERENCE_COLUMN,
                           threshold=threshold, embedder=embedder, matching=matching, failed=failed)
    raw, gold, statuses = tagged[schema.TAGS], tagged[REFERENCE_COLUMN], tagged[schema.STATUS]
    predicted = [tag_names(row) for row in raw]
    reference = [tag_names(row) for row in gold]
    counts = Counter(t for row in predicted for t in row)
    top, top_rows = counts.most_common(1)[0] if counts else (None, 0)
    n = len(tagged)
    ids = tagged["id"] if "id" in tagged.column_names else list(range(n))
    categories = tagged["category"] if "category" in tagged.column_names else [None] * n
    return {
        "rows": n,
        "queries": queries,
        "exact": _prf(report.exact),
        "fuzzy": _prf(report.fuzzy),
        "tags_per_query": sum(map(len, predicted)) / n if n else 0.0,
        "top_tag": top,
        "top_tag_share": top_rows / n if n else 0.0,
        "top_tag_reference_share": sum(top in row for row in reference) / n if n and top else 0.0,
        "statuses": dict(Counter(statuses)),
        "seconds": seconds,
        "queries_per_s": queries / max(seconds, 1e-9),
        "predictions": [{"id": i, "category": c, "tags": [item["tag"] for item in p], REFERENCE_COLUMN: r,
                         "status": s} for i, c, p, r, s in zip(ids, categories, raw, gold, statuses)],
        "report": report,
    }
