"""On-disk, content-addressed cache of model answers, shared by all backends.

The key hashes everything that decides an answer: backend, model, revision,
template id, generation parameters and the query text. Answers are committed as
soon as each backend call returns, so a run killed half-way and started again
re-pays only for the requests that were in flight. Only successful answers are
stored (a parse failure is stored too: it is the model's answer, and so is one cut at
the token budget, with its ``finish_reason``); transport errors are not, so they are
retried on the next run, but they are counted (:meth:`RequestCache.failure_epoch`).

Processes sharing one cache claim the keys they are about to send
(:meth:`RequestCache.claim`), so a request is paid once however many ask for it. A
damaged file is moved aside and rebuilt, and an answer edited on disk is re-asked
(see :mod:`instag_hf.store`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Iterable, Mapping

from ..store import BORN_COUNTER, SQLiteStore, instag_home

__all__ = ["RequestCache", "namespace_hash", "request_key", "instag_home", "claim_owner", "owner_gone"]

logger = logging.getLogger(__name__)

#: counter of failed requests (see :meth:`RequestCache.note_failures`)
FAILURES_COUNTER = "failed_requests"


def claim_owner() -> str:
    """A new claim owner name, ``host:pid:token`` (one per caller that sends requests)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"


def owner_gone(owner: str) -> bool:
    """True when ``owner`` names a process of this host that no longer runs (its claims are void)."""
    try:
        host, pid, _ = owner.rsplit(":", 2)
        pid = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname() or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False

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
            self._store = SQLiteStore(self.path, what="answers", redo="re-asked")
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
        """Store answers (``{"text": ..., **meta}``) in one transaction; a record whose text is not
        a string is left out (with a warning), never the others."""
        rows = []
        for key, record in records.items():
            text = record.get("text")
            if not isinstance(text, str):
                logger.warning("not caching the answer for %s: its text is %s, not a string", key, type(text).__name__)
                continue
            meta = {k: v for k, v in record.items() if k != "text"}
            rows.append((key, text, json.dumps(meta, default=str) if meta else None))
        self.store.put_many(rows)

    def claim(self, keys: Iterable[str], owner: str, lease_s: float) -> list[str]:
        """Claim for ``owner`` (see :func:`claim_owner`) the keys that have no answer and no live
        claim of another owner, for ``lease_s`` seconds; returns the keys claimed, in order.
        A claim whose owner released it, whose lease ran out, or whose process on this host
        is gone, is taken over."""
        return self.store.claim(list(keys), owner, lease_s, gone=owner_gone)

    def renew(self, keys: Iterable[str], owner: str, lease_s: float) -> None:
        """Extend ``owner``'s claims on ``keys`` to ``lease_s`` seconds from now."""
        self.store.renew(list(keys), owner, lease_s)

    def release(self, keys: Iterable[str], owner: str) -> None:
        """Drop ``owner``'s claims on ``keys`` (answered, failed or not sent)."""
        self.store.release(list(keys), owner)

    def claim_holders(self, keys: Iterable[str] | None = None) -> dict[str, tuple[str, float]]:
        """``key -> (owner, expires)`` of the current claims on ``keys`` (all when None)."""
        return self.store.claim_holders(None if keys is None else list(keys))

    def note_failures(self, n: int) -> None:
        """Count ``n`` failed requests: :meth:`failure_epoch` grows by ``n``."""
        if n > 0:
            self.store.add_to_counter(FAILURES_COUNTER, n)

    def failure_epoch(self) -> int:
        """An integer that grows with every failed request counted in this cache and never goes
        back: a file created or rebuilt after damage starts from its creation time in
        microseconds, above any earlier value. Creates the file if missing."""
        return self.store.counter(BORN_COUNTER, FAILURES_COUNTER)

    def close(self) -> None:
        """Close this thread's connection to the file (it reopens on next use)."""
        if self._store is not None:
            self._store.close()

    def __len__(self) -> int:
        return len(self.store)

    def keys(self) -> set[str]:
        return self.store.keys()
