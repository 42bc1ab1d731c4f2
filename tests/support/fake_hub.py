"""A recording stand-in for ``huggingface_hub.HfApi``, to test publishing offline at the Hub boundary.

``hub = RecordingHub(); monkeypatch.setattr(huggingface_hub, "HfApi", hub.api)`` makes
every ``HfApi(...)`` the publishing code creates a :class:`FakeHfApi` that keeps repos
in memory: ``hub.calls`` lists the calls in order (without the token, kept apart in
``hub.tokens``), ``hub.files(repo_id)`` the committed files as bytes, ``hub.commits``
each commit's operations. ``hub.fail["create_commit"] = SomeError(...)`` makes that
method raise, to test failed uploads. Every call is bound to the signature of the
installed ``huggingface_hub.HfApi`` method of the same name, so a call the real client
would reject (a renamed or removed argument) fails here too.
"""

from __future__ import annotations

import inspect
import io
import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

_PREFIX = {"dataset": "datasets/", "space": "spaces/", "model": ""}


class RecordingHub:
    """In-memory Hub: repos, commits, Space variables, and the calls made through :class:`FakeHfApi`."""

    def __init__(self, endpoint: str = "https://huggingface.co"):
        self.endpoint = endpoint
        self.calls: list[tuple[str, dict]] = []
        self.tokens: list[Any] = []
        self.repos: dict[tuple[str, str], dict[str, bytes]] = {}
        self.commits: list[dict] = []
        self.variables: dict[str, dict[str, str]] = {}
        self.fail: dict[str, BaseException] = {}
        self._oids = itertools.count(1)

    def api(self, token: Any = None, **kwargs: Any) -> FakeHfApi:
        """Drop-in for the ``HfApi`` class."""
        return FakeHfApi(self, token=token, **kwargs)

    def files(self, repo_id: str, repo_type: str = "dataset") -> dict[str, bytes]:
        return self.repos[(repo_type, repo_id)]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class FakeHfApi:
    def __init__(self, hub: RecordingHub, token: Any = None, **kwargs: Any):
        _check_signature("__init__", dict(kwargs, token=token))
        self._hub = hub
        self._token = token
        hub.tokens.append(token)
        hub.calls.append(("HfApi", dict(kwargs)))

    def _record(self, name: str, token: Any = None, **kwargs: Any) -> None:
        _check_signature(name, dict(kwargs, token=token))
        if token is not None:
            self._hub.tokens.append(token)
        self._hub.calls.append((name, kwargs))
        if name in self._hub.fail:
            raise self._hub.fail[name]

    def _repo(self, repo_id: str, repo_type: str | None) -> dict[str, bytes]:
        key = (repo_type or "model", repo_id)
        if key not in self._hub.repos:
            raise FileNotFoundError(f"404 Client Error: repository {key[0]} {repo_id} not found")
        return self._hub.repos[key]

    def create_repo(self, repo_id: str, *, token: Any = None, private: bool | None = None,
                    repo_type: str | None = None, exist_ok: bool = False, **kwargs: Any) -> str:
        self._record("create_repo", token, repo_id=repo_id, private=private, repo_type=repo_type,
                     exist_ok=exist_ok, **kwargs)
        key = (repo_type or "model", repo_id)
        if key in self._hub.repos and not exist_ok:
            raise FileExistsError(f"409 Client Error: {repo_id} already exists")
        self._hub.repos.setdefault(key, {})
        return f"{self._hub.endpoint}/{_PREFIX.get(key[0], '')}{repo_id}"

    def list_repo_files(self, repo_id: str, *, repo_type: str | None = None, revision: str | None = None,
                        token: Any = None) -> list[str]:
        self._record("list_repo_files", token, repo_id=repo_id, repo_type=repo_type, revision=revision)
        return sorted(self._repo(repo_id, repo_type))

    def create_commit(self, repo_id: str, operations, *, commit_message: str, commit_description: str | None = None,
                      token: Any = None, repo_type: str | None = None, revision: str | None = None,
                      create_pr: bool | None = None, **kwargs: Any) -> SimpleNamespace:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        operations = list(operations)
        self._record("create_commit", token, repo_id=repo_id, commit_message=commit_message,
                     commit_description=commit_description, repo_type=repo_type, revision=revision,
                     create_pr=create_pr, operations=[(type(op).__name__, op.path_in_repo) for op in operations])
        files = self._repo(repo_id, repo_type)
        staged = dict(files)
        for op in operations:
            if isinstance(op, CommitOperationAdd):
                staged[op.path_in_repo] = _read(op.path_or_fileobj)
            elif isinstance(op, CommitOperationDelete):
                if op.path_in_repo not in staged:
                    raise FileNotFoundError(f"404 Client Error: {op.path_in_repo} not found in {repo_id}")
                del staged[op.path_in_repo]
            else:
                raise TypeError(f"unexpected commit operation {type(op).__name__}")
        files.clear()
        files.update(staged)
        oid = f"{next(self._hub._oids):040x}"
        self._hub.commits.append({"repo_id": repo_id, "repo_type": repo_type, "message": commit_message,
                                  "operations": [(type(op).__name__, op.path_in_repo) for op in operations]})
        prefix = _PREFIX.get(repo_type or "model", "")
        return SimpleNamespace(oid=oid, commit_url=f"{self._hub.endpoint}/{prefix}{repo_id}/commit/{oid}",
                               pr_url=None, commit_message=commit_message)

    def upload_folder(self, *, repo_id: str, folder_path: str | Path, token: Any = None,
                      repo_type: str | None = None, revision: str | None = None, create_pr: bool | None = None,
                      commit_message: str | None = None, commit_description: str | None = None,
                      allow_patterns: list[str] | str | None = None, ignore_patterns: list[str] | str | None = None,
                      delete_patterns: list[str] | str | None = None, **kwargs: Any) -> SimpleNamespace:
        """The real method's file selection (huggingface_hub's own pattern filter), as one commit."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete
        from huggingface_hub.utils import filter_repo_objects

        folder = Path(folder_path)
        local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        added = list(filter_repo_objects(local, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        deleted = []
        if delete_patterns is not None:
            existing = sorted(self._repo(repo_id, repo_type))
            deleted = [f for f in filter_repo_objects(existing, allow_patterns=delete_patterns) if f not in added]
        self._hub.calls.append(("upload_folder", {"repo_id": repo_id, "allow_patterns": allow_patterns,
                                                  "delete_patterns": delete_patterns}))
        _check_signature("upload_folder", dict(kwargs, repo_id=repo_id, folder_path=folder_path, token=token,
                                               repo_type=repo_type, revision=revision, create_pr=create_pr,
                                               commit_message=commit_message, commit_description=commit_description,
                                               allow_patterns=allow_patterns, ignore_patterns=ignore_patterns,
                                               delete_patterns=delete_patterns))
        if "upload_folder" in self._hub.fail:
            raise self._hub.fail["upload_folder"]
        operations = [CommitOperationDelete(path_in_repo=f) for f in deleted]
        operations += [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in added]
        return self.create_commit(repo_id, operations, commit_message=commit_message or "Upload folder",
                                  commit_description=commit_description, token=token, repo_type=repo_type,
                                  revision=revision, create_pr=create_pr)

    def add_space_variable(self, repo_id: str, key: str, value: str, *, description: str | None = None,
                           token: Any = None) -> dict:
        self._record("add_space_variable", token, repo_id=repo_id, key=key, value=value)
        self._repo(repo_id, "space")
        self._hub.variables.setdefault(repo_id, {})[key] = value
        return dict(self._hub.variables[repo_id])


def _check_signature(name: str, kwargs: dict) -> None:
    """Raise ``TypeError`` if the real ``HfApi.<name>`` would not accept these keyword arguments."""
    from huggingface_hub.hf_api import (
        HfApi,  # the real class, also while huggingface_hub.HfApi is patched
    )

    inspect.signature(getattr(HfApi, name)).bind(None, **kwargs)


def _read(source: Any) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, (str, Path)):
        return Path(source).read_bytes()
    if isinstance(source, io.IOBase) or hasattr(source, "read"):
        return source.read()
    raise TypeError(f"cannot read {type(source).__name__}")
