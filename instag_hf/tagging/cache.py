"""On-disk, content-addressed cache of model answers, shared by all backends.

The key hashes everything that decides an answer: backend, model, revision,
template id, generation parameters and the query text. Answers are committed as
soon as each backend call returns, so a run killed half-way and started again
re-pays only for the requests that were in flight. Only successful answers are
stored (a parse failure is stored too: it is the model's answer); transport
errors are not, so they are retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Mapping

from ..store import SQLiteStore, instag_home

__all__ = ["RequestCache", "namespace_hash", "request_key", "instag_home"]

def namespace_hash(namespace: Mapping):
    """A sha256 state over the canonical namespace JSON; :func:`request_key` continues it per query."""
    h = hashlib.sha256()
    h.update(json.dumps(namespace, sort_keys=True, ensure_ascii=False, default=str).encode())
    h.update(b"\x00")
    return h


def request_key(namespace: Mapping | "hashlib._Hash", query: str) -> str:
    """Content address of one request: sha256 of the canonical namespace JSON and the query."""
    h = namespace.copy() if hasattr(namespace, "hexdigest") else namespace_hash(namespace)
    h.update(query.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


class RequestCache:
    """``key -> answer`` records in ``requests.sqlite`` (a :class:`~instag_hf.store.SQLiteStore`),
    safe across processes and threads; pickles as its folder only, so a ``Tagger`` holding
    one stays cheap to hash and to send to ``map(num_proc=...)`` workers."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self._directory = directory
        self._store: SQLiteStore | None = None

    @property
    def directory(self) -> Path:
        """The given folder, else ``$INSTAG_HF_HOME/requests`` as set when first used."""
        return Path(self._directory).expanduser() if self._directory else instag_home() / "requests"

    @property
    def path(self) -> Path:
        return self.directory / "requests.sqlite"

    @property
    def store(self) -> SQLiteStore:
        if self._store is None:
            self._store = SQLiteStore(self.path)
        return self._store

    def __getstate__(self):
        return {"directory": None if self._directory is None else str(self._directory)}

    def __setstate__(self, state):
        self.__init__(state["directory"])

    def __repr__(self) -> str:
        return f"RequestCache({str(self.directory)!r})"

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        """Cached records (``{"text": ..., **meta}``) for the keys that have one."""
        found = {}
        for key, (answer, meta) in self.store.get_many(list(keys)).items():
            record = json.loads(meta) if meta else {}
            record["text"] = answer
            found[key] = record
        return found

    def put_many(self, records: Mapping[str, Mapping]) -> None:
        """Store answers (``{"text": ..., **meta}``) in one transaction."""
        rows = []
        for key, record in records.items():
            meta = {k: v for k, v in record.items() if k != "text"}
            rows.append((key, record["text"], json.dumps(meta) if meta else None))
        self.store.put_many(rows)

    def __len__(self) -> int:
        return len(self.store)

    def keys(self) -> set[str]:
        return self.store.keys()
