"""A small SQLite key-value file, the storage of the request cache and the embedding cache.

One table ``kv(key TEXT PRIMARY KEY, value, meta TEXT)``: ``value`` holds text (an
answer) or bytes (a vector) as given. WAL journaling lets several processes read and
write one file; each thread of each process opens its own connection, so an object
holding a store pickles as its path only and travels to ``map(num_proc=...)`` workers.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

DEFAULT_HOME_ENV = "INSTAG_HF_HOME"
#: keys per ``IN (...)`` query, under SQLite's limit on bound parameters
_CHUNK = 500


def instag_home() -> Path:
    """Root folder for caches (``$INSTAG_HF_HOME``, else ``~/.cache/instag_hf``)."""
    env = os.environ.get(DEFAULT_HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "instag_hf"


class SQLiteStore:
    """``key -> (value, meta)`` records in one SQLite file, created on first write."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._local = threading.local()

    def __getstate__(self):
        return {"path": str(self.path)}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            for attempt in range(100):  # switching to WAL does not wait on a busy file: retry
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value NOT NULL, meta TEXT)")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 99:
                        raise
                    time.sleep(0.05)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str | bytes, str | None]]:
        """``(value, meta)`` of the keys that have a record."""
        if not self.path.exists():
            return {}
        keys = list(dict.fromkeys(keys))
        found: dict[str, tuple[str | bytes, str | None]] = {}
        conn = self._conn()
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, value, meta in conn.execute(f"SELECT key, value, meta FROM kv WHERE key IN ({marks})", chunk):
                found[key] = (value, meta)
        return found

    def put_many(self, rows: Iterable[tuple[str, str | bytes, str | None]]) -> None:
        """Store ``(key, value, meta)`` rows in one transaction (a key written again is replaced)."""
        rows = list(rows)
        if not rows:
            return
        conn = self._conn()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO kv (key, value, meta) VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        return self._conn().execute("SELECT COUNT(*) FROM kv").fetchone()[0]

    def keys(self) -> set[str]:
        if not self.path.exists():
            return set()
        return {row[0] for row in self._conn().execute("SELECT key FROM kv")}
