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
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping

DEFAULT_HOME_ENV = "INSTAG_HF_HOME"


def instag_home() -> Path:
    """Root folder for caches (``$INSTAG_HF_HOME``, else ``~/.cache/instag_hf``)."""
    env = os.environ.get(DEFAULT_HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "instag_hf"


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
    """A SQLite file of ``key -> answer`` records, safe across processes and threads.

    Pickles as its path only, so a ``Tagger`` holding one stays cheap to hash and
    to send to ``map(num_proc=...)`` workers; each process opens its own connection.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self._directory = directory
        self._local = threading.local()

    @property
    def directory(self) -> Path:
        """The given folder, else ``$INSTAG_HF_HOME/requests`` as set when first used."""
        return Path(self._directory).expanduser() if self._directory else instag_home() / "requests"

    @property
    def path(self) -> Path:
        return self.directory / "requests.sqlite"

    def __getstate__(self):
        return {"directory": None if self._directory is None else str(self._directory)}

    def __setstate__(self, state):
        self.__init__(state["directory"])

    def __repr__(self) -> str:
        return f"RequestCache({str(self.directory)!r})"

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            for attempt in range(100):  # switching to WAL does not wait on a busy file: retry
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL, meta TEXT)"
                    )
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 99:
                        raise
                    time.sleep(0.05)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        """Cached records (``{"text": ..., **meta}``) for the keys that have one."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict] = {}
        conn = self._conn()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, answer, meta in conn.execute(
                f"SELECT key, answer, meta FROM answers WHERE key IN ({marks})", chunk
            ):
                record = json.loads(meta) if meta else {}
                record["text"] = answer
                found[key] = record
        return found

    def put_many(self, records: Mapping[str, Mapping]) -> None:
        """Store answers (``{"text": ..., **meta}``) in one transaction."""
        if not records:
            return
        rows = []
        for key, record in records.items():
            meta = {k: v for k, v in record.items() if k != "text"}
            rows.append((key, record["text"], json.dumps(meta) if meta else None))
        conn = self._conn()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO answers (key, answer, meta) VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        return self._conn().execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def keys(self) -> set[str]:
        if not self.path.exists():
            return set()
        return {row[0] for row in self._conn().execute("SELECT key FROM answers")}
