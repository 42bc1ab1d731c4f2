"""The request cache survives a damaged file and edited answers, lets processes sharing it pay
once per request, and counts failed requests in an epoch that never goes back."""

import json
import logging
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from instag_hf.tagging.answers import answer_requests
from instag_hf.tagging.backends.base import Backend, Completion, GenerationParams
from instag_hf.tagging.cache import RequestCache, claim_owner
from instag_hf.tagging.prompts import Prompt

PARAMS = GenerationParams()
KEYS = [f"key-{i:02d}" for i in range(12)]


class SlowBackend(Backend):
    """Answers ``answer:<key>`` after ``delay`` seconds per batch; appends every key asked to ``log``."""

    name = "slow"

    def __init__(self, log=None, delay=0.0, on_call=None, reply=None):
        self.log, self.delay, self.on_call, self.reply = log, delay, on_call, reply
        self.asked: list[str] = []

    def identity(self):
        return {"backend": self.name}

    def generate(self, prompts, params):
        keys = [p.text for p in prompts]
        self.asked.extend(keys)
        if self.log:
            with open(self.log, "a") as fh:
                fh.write("".join(k + "\n" for k in keys))
        if self.on_call is not None:
            self.on_call(len(self.asked), keys)
        if self.delay:
            time.sleep(self.delay)
        return [self.reply(k) if self.reply else Completion(text=f"answer:{k}", finish_reason="stop") for k in keys]


def render(key):
    return Prompt(messages=({"role": "user", "content": key},), text=key)


def ask(cache, keys=KEYS, backend=None, batch_size=3, **kw):
    backend = backend or SlowBackend()
    found, cached = answer_requests(keys, render, backend, PARAMS, cache=cache, batch_size=batch_size, **kw)
    return backend, found, cached


def texts(found):
    return {k: r["text"] for k, r in found.items()}


def corrupt_files(folder):
    return sorted(p.name for p in Path(folder).iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm")))


def filled(folder, keys=KEYS):
    """A cache folder holding answers for ``keys``, its file closed (fully checkpointed)."""
    cache = RequestCache(folder)
    ask(cache, keys)
    cache.close()
    assert not Path(f"{cache.path}-wal").exists()
    return cache.path


def damage_warnings(caplog):
    return [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]


# -- a damaged file ----------------------------------------------------------------------


@pytest.mark.parametrize("garble", ["junk", "truncated_half", "truncated_header"])
def test_a_damaged_file_at_open_is_moved_aside_and_its_answers_are_asked_again(tmp_path, caplog, garble):
    path = filled(tmp_path / "req")
    size = path.stat().st_size
    if garble == "junk":
        path.write_bytes(os.urandom(size))
    else:
        with open(path, "r+b") as fh:
            fh.truncate(size // 2 if garble == "truncated_half" else 50)
    with caplog.at_level(logging.WARNING, logger="instag_hf"):
        backend, found, cached = ask(RequestCache(tmp_path / "req"))
    assert cached == 0 and sorted(backend.asked) == KEYS
    assert texts(found) == {k: f"answer:{k}" for k in KEYS}
    (moved,) = corrupt_files(tmp_path / "req")
    (warning,) = damage_warnings(caplog)
    assert str(path) in warning and moved in warning and "re-asked" in warning
    again, _, cached = ask(RequestCache(tmp_path / "req"))
    assert cached == len(KEYS) and again.asked == []


@pytest.mark.parametrize("how", ["overwritten_in_place", "replaced"])
def test_a_file_damaged_mid_run_is_rebuilt_and_the_run_finishes(tmp_path, caplog, how):
    folder = tmp_path / "req"
    cache = RequestCache(folder)

    def garble(calls, keys):
        if calls == 6:  # after the first two groups of three were committed
            junk = os.urandom(cache.path.stat().st_size or 4096)
            if how == "replaced":
                Path(f"{cache.path}.new").write_bytes(junk)
                os.replace(f"{cache.path}.new", cache.path)
            else:
                with open(cache.path, "r+b") as fh:
                    fh.write(junk)

    with caplog.at_level(logging.WARNING, logger="instag_hf"):
        backend, found, _ = ask(cache, backend=SlowBackend(on_call=garble))
    assert texts(found) == {k: f"answer:{k}" for k in KEYS}
    assert len(corrupt_files(folder)) == 1 and len(damage_warnings(caplog)) == 1
    # the first group's answers went with the damaged file; the later ones are in the new file
    again, _, cached = ask(RequestCache(folder))
    assert sorted(again.asked) == KEYS[:3] and cached == 9


def test_two_stores_finding_the_damage_at_once_move_the_file_once_and_share_the_new_one(tmp_path, caplog):
    folder = tmp_path / "req"
    path = filled(folder)
    stores = [RequestCache(folder) for _ in range(4)]
    for cache in stores:
        cache.get_many(KEYS[:1])  # each has a connection open on the sound file
    path.write_bytes(b"not a database at all" * 300)
    start, errors = threading.Barrier(len(stores)), []

    def work(i, cache):
        try:
            start.wait()
            cache.put_many({f"new-{i}": {"text": f"value-{i}"}})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="instag_hf"):
        threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert len(corrupt_files(folder)) == 1 and len(damage_warnings(caplog)) == 1
    fresh = RequestCache(folder)
    assert fresh.keys() == {f"new-{i}" for i in range(len(stores))}


# -- edited answers ----------------------------------------------------------------------


def test_an_answer_edited_on_disk_is_not_replayed_but_asked_again(tmp_path, caplog):
    path = filled(tmp_path / "req")
    raw = path.read_bytes()
    assert raw.count(b"answer:key-07") == 1
    path.write_bytes(raw.replace(b"answer:key-07", b"ANSWER:KEY-99"))
    with caplog.at_level(logging.WARNING, logger="instag_hf"):
        backend, found, cached = ask(RequestCache(tmp_path / "req"))
    assert backend.asked == ["key-07"] and cached == len(KEYS) - 1
    assert found["key-07"]["text"] == "answer:key-07"
    (warning,) = [r.getMessage() for r in caplog.records if "checksum" in r.getMessage()]
    assert "1 answers" in warning and "re-asked" in warning
    assert b"ANSWER:KEY-99" not in sqlite3.connect(path).execute("SELECT group_concat(value) FROM kv").fetchone()[0]\
        .encode()


def test_a_file_of_an_older_version_keeps_its_answers_and_gets_checksums(tmp_path):
    folder = tmp_path / "req"
    folder.mkdir()
    old = sqlite3.connect(folder / "requests.sqlite")
    old.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value NOT NULL, meta TEXT)")
    old.executemany("INSERT INTO kv VALUES (?, ?, ?)", [("a", "old answer a", None), ("b", "old answer b", '{"x": 1}')])
    old.commit()
    old.close()
    cache = RequestCache(folder)
    assert cache.get_many(["a", "b"]) == {"a": {"text": "old answer a"}, "b": {"text": "old answer b", "x": 1}}
    cache.close()
    edit = sqlite3.connect(folder / "requests.sqlite")
    edit.execute("UPDATE kv SET value = 'edited' WHERE key = 'a'")
    edit.commit()
    edit.close()
    assert set(RequestCache(folder).get_many(["a", "b"])) == {"b"}


# -- two processes, one cache ------------------------------------------------------------


def _race(folder, log, keys, start, out):
    start.wait()
    _, found, _ = ask(RequestCache(folder), keys, SlowBackend(log=log, delay=0.2), batch_size=2, poll_s=0.05)
    Path(out).write_text(json.dumps(texts(found)))


@pytest.mark.timeout(300)
def test_two_processes_on_one_cache_send_each_request_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    log = tmp_path / "asked.log"
    procs = [ctx.Process(target=_race, args=(str(tmp_path / "req"), str(log), KEYS, start, str(tmp_path / f"out{i}")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    asked = log.read_text().split()
    assert sorted(asked) == KEYS
    for i in range(2):
        assert json.loads((tmp_path / f"out{i}").read_text()) == {k: f"answer:{k}" for k in KEYS}
    assert RequestCache(tmp_path / "req").claim_holders() == {}


@pytest.mark.timeout(300)
def test_threads_with_their_own_caches_on_one_folder_send_each_request_once(tmp_path):
    log, results = tmp_path / "asked.log", {}
    start = threading.Barrier(3)

    def run(i, keys):
        start.wait()
        _, found, _ = ask(RequestCache(tmp_path / "req"), keys, SlowBackend(log=log, delay=0.1), batch_size=2,
                          poll_s=0.02)
        results[i] = texts(found)

    orders = [KEYS, KEYS[::-1], KEYS[4:] + KEYS[:4]]
    threads = [threading.Thread(target=run, args=(i, keys)) for i, keys in enumerate(orders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(log.read_text().split()) == KEYS
    assert all(results[i] == {k: f"answer:{k}" for k in KEYS} for i in range(3))


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_which_claims_can_be_taken_over(tmp_path):
    cache, me = RequestCache(tmp_path / "req"), claim_owner()
    host = claim_owner().split(":")[0]
    live_elsewhere, gone_here = "other-host:1:abc", f"{host}:{_dead_pid()}:abc"
    assert cache.claim(["live"], live_elsewhere, 600) == ["live"]
    assert cache.claim(["this-process"], claim_owner(), 600) == ["this-process"]  # another caller here
    assert cache.claim(["expired"], live_elsewhere, -1) == ["expired"]
    assert cache.claim(["released"], live_elsewhere, 600) == ["released"]
    cache.release(["released"], live_elsewhere)
    assert cache.claim(["crashed"], gone_here, 600) == ["crashed"]
    cache.put_many({"answered": {"text": "done"}})
    wanted = ["live", "this-process", "expired", "released", "crashed", "answered", "new"]
    assert cache.claim(wanted, me, 600) == ["expired", "released", "crashed", "new"]
    assert cache.claim(wanted, me, 600) == ["expired", "released", "crashed", "new"]  # one's own claims stay one's own
    assert cache.claim_holders(["live", "new"]) == {"live": (live_elsewhere, pytest.approx(time.time() + 600, abs=60)),
                                                    "new": (me, pytest.approx(time.time() + 600, abs=60))}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("other_answers", [True, False])
def test_a_key_claimed_by_another_is_waited_for_then_read_or_taken_over(tmp_path, other_answers):
    cache, other = RequestCache(tmp_path / "req"), "other-host:1:abc"
    assert cache.claim(["theirs"], other, 600) == ["theirs"]
    backend, out = SlowBackend(), {}
    worker = threading.Thread(target=lambda: out.update(zip(("found", "cached"), ask(
        RequestCache(tmp_path / "req"), ["mine", "theirs"], backend, poll_s=0.01)[1:])))
    worker.start()
    while "mine" not in backend.asked:  # it sent its own key and now waits for the other's
        time.sleep(0.01)
    if other_answers:
        cache.put_many({"theirs": {"text": "their answer"}})
    cache.release(["theirs"], other)
    worker.join()
    if other_answers:
        assert backend.asked == ["mine"] and out["cached"] == 1 and out["found"]["theirs"]["text"] == "their answer"
    else:
        assert backend.asked == ["mine", "theirs"] and out["found"]["theirs"]["text"] == "answer:theirs"


@pytest.mark.timeout(120)
def test_claims_are_renewed_while_in_flight_and_released_after(tmp_path):
    cache, seen = RequestCache(tmp_path / "req"), {}

    def in_flight(calls, keys):
        (first_expiry,) = {e for _, e in cache.claim_holders(keys).values()}
        while cache.claim_holders(keys)[keys[0]][1] <= first_expiry:  # wait for the renewal thread
            time.sleep(0.02)
        seen["others_got"] = cache.claim(keys, "other-host:1:abc", 600)

    ask(cache, ["a", "b"], SlowBackend(on_call=in_flight), lease_s=0.3)
    assert seen["others_got"] == []
    assert cache.claim_holders() == {}


def test_claims_are_released_when_the_backend_raises(tmp_path):
    cache = RequestCache(tmp_path / "req")

    def boom(calls, keys):
        raise RuntimeError("engine died")

    with pytest.raises(RuntimeError):
        ask(cache, backend=SlowBackend(on_call=boom))
    assert cache.claim_holders() == {}


# -- records ------------------------------------------------------------------------------


def test_a_non_text_answer_becomes_an_error_and_the_rest_of_its_group_is_cached(tmp_path):
    cache = RequestCache(tmp_path / "req")
    reply = lambda k: Completion(text=b"raw bytes") if k == "key-01" else Completion(text=f"answer:{k}")
    _, found, _ = ask(cache, KEYS[:3], SlowBackend(reply=reply))
    assert found["key-01"] == {"text": None,
                               "error": "malformed_response: the backend returned bytes instead of text"}
    assert cache.keys() == {"key-00", "key-02"}


def test_error_texts_are_redacted_and_finish_reasons_cached(tmp_path):
    cache, secret = RequestCache(tmp_path / "req"), "sk-" + "a1b2c3d4" * 4

    def reply(k):
        if k == "fails":
            return Completion(error=f"401 from gateway: invalid api key {secret}")
        return Completion(text="[", finish_reason="length", completion_tokens=512)

    _, found, _ = ask(cache, ["fails", "cut"], SlowBackend(reply=reply))
    assert secret not in found["fails"]["error"] and "401 from gateway" in found["fails"]["error"]
    assert cache.get_many(["fails", "cut"]) == {"cut": {"text": "[", "finish_reason": "length",
                                                         "completion_tokens": 512}}


def test_the_failure_epoch_grows_with_failures_and_never_goes_back(tmp_path):
    folder = tmp_path / "req"
    cache = RequestCache(folder)
    first = cache.failure_epoch()
    reply = lambda k: Completion(error="timeout") if k.endswith(("1", "5")) else Completion(text="ok")
    ask(cache, KEYS, SlowBackend(reply=reply))
    assert RequestCache(folder).failure_epoch() == first + 3  # key-01, key-05, key-11
    ask(cache, KEYS, SlowBackend())  # the failed ones succeed now, nothing more failed
    assert RequestCache(folder).failure_epoch() == first + 3
    cache.note_failures(0)
    assert cache.failure_epoch() == first + 3
    cache.close()
    cache.path.write_bytes(b"junk" * 2000)  # rebuilt: the count starts again, above every earlier value
    assert RequestCache(folder).failure_epoch() > first + 3
