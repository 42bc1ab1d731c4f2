"""A small SQLite key-value file, the storage of the request cache and the embedding cache.

Tables: ``kv(key TEXT PRIMARY KEY, value, meta TEXT, checksum TEXT)`` holds text (an
answer) or bytes (a vector) as given, with a sha256 of key, value and meta; ``claims``
(which process is computing which key, see :meth:`SQLiteStore.claim`); ``counters``
(monotonic integers). WAL journaling lets several processes read and write one file;
each thread of each process opens its own connection, so an object holding a store
pickles as its path only and travels to ``map(num_proc=...)`` workers.

A damaged file ("file is not a database", "database disk image is malformed"), found
when it is opened or at any read or write, is moved aside to ``<name>.corrupt-<time>``
(with its ``-wal``/``-shm``), a warning says so, and the operation is retried once on a
new, empty file. Moving happens under an exclusive lock on ``<name>.lock`` and only
if the path still names the file found damaged, so two processes that find it at
once move it once and neither loses the store the other rebuilt. A record whose
checksum does not match is dropped (treated as missing) and counted in a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock for recovery
    fcntl = None

logger = logging.getLogger(__name__)

DEFAULT_HOME_ENV = "INSTAG_HF_HOME"
#: keys per ``IN (...)`` query, under SQLite's limit on bound parameters
_CHUNK = 500
_MAGIC = b"SQLite format 3\x00"
#: SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_DAMAGE_CODES = (11, 26)
#: counter holding the file's creation time in microseconds (see :meth:`SQLiteStore.counter`)
BORN_COUNTER = "born_us"
_TABLES = {
    "kv": "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value NOT NULL, meta TEXT, checksum TEXT)",
    "claims": "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)",
    "counters": "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
}


def instag_home() -> Path:
    """Root folder for caches (``$INSTAG_HF_HOME``, else ``~/.cache/instag_hf``)."""
    env = os.environ.get(DEFAULT_HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "instag_hf"


def record_checksum(key: str, value: str | bytes, meta: str | None) -> str:
    """sha256 (hex) of a record's key, value and meta, each length-prefixed and typed."""
    h = hashlib.sha256()
    kind = b"b" if isinstance(value, (bytes, bytearray, memoryview)) else b"s"
    raw = bytes(value) if kind == b"b" else str(value).encode("utf-8", "surrogatepass")
    parts = (key.encode("utf-8", "surrogatepass"), kind + raw,
             b"-" if meta is None else b"+" + meta.encode("utf-8", "surrogatepass"))
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def is_damage(exc: BaseException) -> bool:
    """Whether a SQLite error means the file itself is damaged (not busy, locked or misused)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _DAMAGE_CODES
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


class _Damaged(Exception):
    """The file named by ``ident`` (device, inode) was found damaged."""

    def __init__(self, ident, cause: BaseException):
        super().__init__(str(cause))
        self.ident, self.cause = ident, cause


def _ident(path: Path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _header_ok(path: Path) -> bool:
    """False when the file exists, is not empty and does not start with SQLite's magic."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_MAGIC))
    except FileNotFoundError:
        return True
    return not head or head == _MAGIC


def _chunks(items: Sequence, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class SQLiteStore:
    """``key -> (value, meta)`` records in one SQLite file, created on first write.

    ``what`` and ``redo`` word the warnings: "its {what} will be {redo}".
    """

    def __init__(self, path: str | os.PathLike, *, what: str = "records", redo: str = "computed again"):
        self.path = Path(path)
        self.what, self.redo = what, redo
        self._local = threading.local()

    def __getstate__(self):
        return {"path": str(self.path), "what": self.what, "redo": self.redo}

    def __setstate__(self, state):
        self.__init__(state["path"], what=state.get("what", "records"), redo=state.get("redo", "computed again"))

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    # -- connections, damage and recovery -------------------------------------------------

    @contextlib.contextmanager
    def _file_lock(self, exclusive: bool):
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def _drop(self) -> None:
        """Forget this thread's connection. SQLite does not checkpoint a file that was moved
        away on close, so closing one that still points at a moved-aside file is safe."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def close(self) -> None:
        """Close this thread's connection (it reopens on next use)."""
        self._drop()

    def _open(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._file_lock(exclusive=False):  # no one moves the files while this opens them
            before = _ident(self.path)
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            try:
                self._setup(conn)
                if not _header_ok(self.path):  # junk whose pages a leftover WAL still serves
                    raise sqlite3.DatabaseError("file is not a database (its header was overwritten)")
            except sqlite3.DatabaseError as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                if is_damage(exc):
                    raise _Damaged(before, exc) from exc
                raise
            return conn, _ident(self.path)

    def _setup(self, conn: sqlite3.Connection) -> None:
        for attempt in range(100):  # switching to WAL does not wait on a busy file: retry
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous=NORMAL")
        if self._schema_current(conn):
            return
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            self._migrate(conn)

    @staticmethod
    def _schema_current(conn: sqlite3.Connection) -> bool:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not set(_TABLES) <= tables:
            return False
        return "checksum" in {row[1] for row in conn.execute("PRAGMA table_info(kv)")}

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Create missing tables; give a file of an older version its checksum column (existing
        records are checksummed as they are: from now on an edit to them is noticed)."""
        for ddl in _TABLES.values():
            conn.execute(ddl)
        if "checksum" not in {row[1] for row in conn.execute("PRAGMA table_info(kv)")}:
            conn.execute("ALTER TABLE kv ADD COLUMN checksum TEXT")
        last = 0
        while True:
            rows = conn.execute("SELECT rowid, key, value, meta FROM kv WHERE rowid > ? AND checksum IS NULL "
                                "ORDER BY rowid LIMIT 1000", (last,)).fetchall()
            if not rows:
                break
            conn.executemany("UPDATE kv SET checksum = ? WHERE rowid = ?",
                             [(record_checksum(k, v, m), rowid) for rowid, k, v, m in rows])
            last = rows[-1][0]
        conn.execute("INSERT OR IGNORE INTO counters (name, value) VALUES (?, ?)", (BORN_COUNTER, time.time_ns() // 1000))

    def _connection(self):
        """This thread's connection and the (device, inode) it was opened on; reopens when the
        file at the path was replaced or removed, raises :class:`_Damaged` when it is damaged."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            now = _ident(self.path)
            if now == self._local.ident:
                if not _header_ok(self.path):
                    raise _Damaged(now, sqlite3.DatabaseError("file is not a database (its header was overwritten)"))
                return conn, now
        self._drop()
        conn, ident = self._open()
        self._local.conn, self._local.pid, self._local.ident = conn, os.getpid(), ident
        return conn, ident

    def _run(self, op: Callable[[sqlite3.Connection], object]):
        """``op(connection)``; on a damaged file, recover and run it once more on the new file."""
        try:
            return self._attempt(op)
        except _Damaged as damaged:
            self._recover(damaged.ident, damaged.cause)
        try:
            return self._attempt(op)
        except _Damaged as damaged:
            raise damaged.cause from None

    def _attempt(self, op):
        conn, ident = self._connection()
        try:
            return op(conn)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise _Damaged(ident, exc) from exc
            raise

    def _recover(self, seen, cause: BaseException) -> None:
        """Move the damaged file aside, unless another thread or process already did."""
        with self._file_lock(exclusive=True):
            current = _ident(self.path)
            if current is not None and (seen is None or current == seen):
                stamp = time.strftime("%Y%m%d-%H%M%S")
                dest = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
                n = 1
                while any(Path(f"{dest}{s}").exists() for s in ("", "-wal", "-shm")):
                    n += 1
                    dest = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
                # journal files first: a file opened at the path meanwhile never meets the old WAL
                for suffix in ("-wal", "-shm", ""):
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(f"{self.path}{suffix}", f"{dest}{suffix}")
                logger.warning("%s is damaged (%s): moved it to %s and started an empty one; its %s will be %s",
                               self.path, cause, dest, self.what, self.redo)
        self._drop()

    # -- records ---------------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str | bytes, str | None]]:
        """``(value, meta)`` of the keys that have a sound record; records whose checksum does not
        match are deleted, counted in a warning and left out (so they are computed again)."""
        if not self.path.exists():
            return {}
        keys = list(dict.fromkeys(keys))

        def op(conn):
            found, bad = {}, []
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                for key, value, meta, checksum in conn.execute(
                        f"SELECT key, value, meta, checksum FROM kv WHERE key IN ({marks})", chunk):
                    if checksum is None or checksum == record_checksum(key, value, meta):
                        found[key] = (value, meta)
                    else:
                        bad.append((key, checksum))
            if bad:
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany("DELETE FROM kv WHERE key = ? AND checksum = ?", bad)
                logger.warning("%s: %d %s did not match their checksum (edited or damaged on disk); dropped them, "
                               "they will be %s", self.path, len(bad), self.what, self.redo)
            return found

        return self._run(op)

    def put_many(self, rows: Iterable[tuple[str, str | bytes, str | None]]) -> None:
        """Store ``(key, value, meta)`` rows in one transaction (a key written again is replaced)."""
        rows = [(k, v, m, record_checksum(k, v, m)) for k, v, m in rows]
        if not rows:
            return

        def op(conn):
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT OR REPLACE INTO kv (key, value, meta, checksum) VALUES (?, ?, ?, ?)", rows)

        self._run(op)

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        return self._run(lambda conn: conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0])

    def keys(self) -> set[str]:
        if not self.path.exists():
            return set()
        return self._run(lambda conn: {row[0] for row in conn.execute("SELECT key FROM kv")})

    # -- claims ----------------------------------------------------------------------------

    def claim(self, keys: Sequence[str], owner: str, lease_s: float,
              gone: Callable[[str], bool] | None = None) -> list[str]:
        """Claim for ``owner``, until ``lease_s`` seconds from now, the keys that have no record and
        no live claim of another owner (expired, released, or ``gone(owner)``); returns them in order."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return []

        def op(conn):
            now = time.time()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                stored, held = set(), {}
                for chunk in _chunks(keys):
                    marks = ",".join("?" * len(chunk))
                    stored.update(r[0] for r in conn.execute(f"SELECT key FROM kv WHERE key IN ({marks})", chunk))
                    held.update((k, (o, e)) for k, o, e in conn.execute(
                        f"SELECT key, owner, expires FROM claims WHERE key IN ({marks})", chunk))
                verdicts: dict[str, bool] = {}

                def free(key):
                    other = held.get(key)
                    if other is None or other[0] == owner or other[1] <= now:
                        return True
                    if gone is None:
                        return False
                    if other[0] not in verdicts:
                        verdicts[other[0]] = gone(other[0])
                    return verdicts[other[0]]

                got = [k for k in keys if k not in stored and free(k)]
                conn.executemany("INSERT OR REPLACE INTO claims (key, owner, expires) VALUES (?, ?, ?)",
                                 [(k, owner, now + lease_s) for k in got])
            return got

        return self._run(op)

    def renew(self, keys: Sequence[str], owner: str, lease_s: float) -> None:
        """Extend ``owner``'s claims on ``keys`` to ``lease_s`` seconds from now."""
        self._claims_write("UPDATE claims SET expires = ? WHERE owner = ? AND key IN ({})",
                           keys, lambda: [time.time() + lease_s, owner])

    def release(self, keys: Sequence[str], owner: str) -> None:
        """Drop ``owner``'s claims on ``keys`` (answered or failed)."""
        self._claims_write("DELETE FROM claims WHERE owner = ? AND key IN ({})", keys, lambda: [owner])

    def _claims_write(self, sql: str, keys: Sequence[str], head: Callable[[], list]) -> None:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return

        def op(conn):
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                for chunk in _chunks(keys):
                    conn.execute(sql.format(",".join("?" * len(chunk))), head() + list(chunk))

        self._run(op)

    def claim_holders(self, keys: Sequence[str] | None = None) -> dict[str, tuple[str, float]]:
        """``key -> (owner, expires)`` of the claims on ``keys`` (all claims when None)."""
        if not self.path.exists():
            return {}

        def op(conn):
            if keys is None:
                return {k: (o, e) for k, o, e in conn.execute("SELECT key, owner, expires FROM claims")}
            out = {}
            wanted = list(dict.fromkeys(keys))
            for chunk in _chunks(wanted):
                marks = ",".join("?" * len(chunk))
                out.update((k, (o, e)) for k, o, e in conn.execute(
                    f"SELECT key, owner, expires FROM claims WHERE key IN ({marks})", chunk))
            return out

        return self._run(op)

    # -- counters --------------------------------------------------------------------------

    def add_to_counter(self, name: str, n: int) -> int:
        """Add ``n`` to counter ``name`` (0 when new); returns the new value."""

        def op(conn):
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, int(n)))
                return conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]

        return self._run(op)

    def counter(self, *names: str) -> int:
        """Sum of the named counters (one never added to counts 0), read at once. The file is
        created if missing; :data:`BORN_COUNTER` holds its creation time in microseconds."""

        def op(conn):
            marks = ",".join("?" * len(names))
            row = conn.execute(f"SELECT SUM(value) FROM counters WHERE name IN ({marks})", names).fetchone()
            return int(row[0] or 0)

        return self._run(op)
