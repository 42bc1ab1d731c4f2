"""Uploads to the Hugging Face Hub: a dataset with its card and plots in one commit, and the Gradio Space.

The Hub boundary is thin on purpose: ``HfApi.create_repo``, ``list_repo_files``,
``create_commit`` (with ``CommitOperationAdd``/``CommitOperationDelete``) and, for
Spaces, ``add_space_variable``. Everything is first written to a local folder, so a
missing token or a failed upload loses nothing: the error names the folder, and
:func:`upload_publication` (``instag push FOLDER REPO_ID``) sends it again.

The token never leaves ``HfApi``: it is not logged, written, put in a card, or shown
in an error (messages are redacted before they are raised).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .bundle import DATA_DIR, PLOTS_DIR, Publication, write_publication
from ..redact import redact as redact_secrets
from ..redact import register_secret
from .card_data import check_repo_id, package_version
from .space import check_variables, write_space

logger = logging.getLogger(__name__)

SPACE_DATASET_VARIABLE = "INSTAG_DATASET"


class PublishError(RuntimeError):
    """Publishing failed; nothing local was lost."""


class MissingTokenError(PublishError):
    """No Hugging Face token was found; nothing was uploaded."""


class UploadError(PublishError):
    """The Hub refused or failed an upload; ``folder`` holds every file, ready to upload again."""

    def __init__(self, message: str, folder: Path | None = None):
        super().__init__(message)
        self.folder = folder


@dataclass
class PushResult:
    """What was (or, for a dry run, would have been) uploaded."""

    repo_id: str
    repo_type: str
    files: list[str]
    folder: Path | None
    dry_run: bool
    url: str | None = None
    commit_url: str | None = None
    commit_oid: str | None = None
    deleted: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        where = f"{self.repo_type} {self.repo_id}"
        if self.dry_run:
            return f"dry run: {len(self.files)} files for {where} written to {self.folder}"
        text = f"uploaded {len(self.files)} files to {where} in one commit"
        if self.deleted:
            text += f" (removed {len(self.deleted)} stale files)"
        return text + (f": {self.commit_url}" if self.commit_url else "")


# ----------------------------------------------------------------------------- tokens


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secrets, or anything :func:`instag_hf.redact.redact` masks."""
    for secret in secrets:
        register_secret(secret)
    return redact_secrets(text)


def resolve_token(token: str | None = None, token_env: str | None = None) -> str:
    """The token to upload with: ``token``, else ``$token_env``, else huggingface_hub's (``HF_TOKEN`` or login)."""
    if token is not None:
        if not isinstance(token, str) or not token.strip():
            raise MissingTokenError("token is empty; nothing was uploaded")
        return token.strip()
    if token_env is not None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env):
            raise ValueError("token_env takes the NAME of an environment variable, not the token itself")
        value = os.environ.get(token_env, "").strip()
        if not value:
            raise MissingTokenError(f"the environment variable {token_env} is not set or empty; nothing was uploaded")
        return value
    import huggingface_hub

    value = huggingface_hub.get_token()
    if not value:
        raise MissingTokenError(
            "no Hugging Face token found: set HF_TOKEN, run `hf auth login`, or name a variable that holds one "
            "(token_env= / --token-env). Nothing was uploaded; use dry_run= (--dry-run DIR) to write the files "
            "locally without a token.")
    return value


def _api(token: str):
    import huggingface_hub

    return huggingface_hub.HfApi(token=token, library_name="instag_hf", library_version=package_version())


def _describe_error(exc: BaseException, token: str) -> str:
    return redact(f"{type(exc).__name__}: {exc}", [token])


def _commit(api, repo_id: str, repo_type: str, folder: Path, files: list[str], managed: list[str],
            *, private: bool | None, revision: str | None, create_pr: bool, commit_message: str,
            commit_description: str | None, create_kwargs: Mapping[str, Any] | None = None
            ) -> tuple[Any, Any, list[str]]:
    """create_repo + one ``upload_folder`` commit of ``files``, whose ``delete_patterns`` remove every other
    file under the ``managed`` folders. Returns the repo URL, the commit info and the files it removes."""
    from huggingface_hub.utils import filter_repo_objects

    repo_url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **(create_kwargs or {}))
    delete = [f"{prefix}*" for prefix in managed]
    stale: list[str] = []
    if delete:  # what the patterns will remove, for the user's summary
        existing = api.list_repo_files(repo_id, repo_type=repo_type, revision=revision)
        stale = sorted(set(filter_repo_objects(existing, allow_patterns=delete)) - set(files))
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type, revision=revision,
                             create_pr=create_pr or None, commit_message=commit_message,
                             commit_description=commit_description, allow_patterns=list(files),
                             delete_patterns=delete or None)
    return repo_url, info, stale


# ----------------------------------------------------------------------------- datasets


def upload_publication(publication: Publication | str | Path, repo_id: str | None = None, *,
                       token: str | None = None, token_env: str | None = None, private: bool | None = None,
                       revision: str | None = None, create_pr: bool = False, commit_message: str | None = None,
                       commit_description: str | None = None, delete_stale: bool = True) -> PushResult:
    """Upload a folder written by :func:`write_publication` (or ``--dry-run``) to a dataset repo in one commit.

    ``delete_stale``: remove files of the same configs (``data/<config>/``) and
    plots that this upload does not replace, so an old shard never lingers.
    """
    pub = publication if isinstance(publication, Publication) else Publication.load(publication)
    repo_id = check_repo_id(repo_id or pub.repo_id or "")
    token = resolve_token(token, token_env)
    managed = ([f"{DATA_DIR}/{c}/" for c in (pub.configs or [])] + [f"{PLOTS_DIR}/"]) if delete_stale else []
    message = commit_message or f"Publish InsTag-tagged dataset ({len(pub.files)} files, instag_hf {package_version()})"
    logger.info("uploading %d files to dataset %s in one commit", len(pub.files), repo_id)
    try:
        api = _api(token)
        repo_url, info, stale = _commit(api, repo_id, "dataset", pub.folder, pub.files, managed,
                                        private=private, revision=revision, create_pr=create_pr,
                                        commit_message=message, commit_description=commit_description)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear, redacted error
        raise UploadError(f"upload to dataset {repo_id} failed ({_describe_error(exc, token)}). Nothing local was "
                          f"lost: the files are in {pub.folder}; upload them again with "
                          f"`instag push {pub.folder} {repo_id}`", pub.folder) from None
    return PushResult(repo_id, "dataset", list(pub.files), pub.folder, False, url=str(repo_url),
                      commit_url=getattr(info, "commit_url", None), commit_oid=getattr(info, "oid", None),
                      deleted=stale)


def push_to_hub(repo_id: str, dataset: Any, *, token: str | None = None, token_env: str | None = None,
                private: bool | None = None, revision: str | None = None, create_pr: bool = False,
                commit_message: str | None = None, dry_run: str | Path | None = None,
                local_dir: str | Path | None = None, overwrite: bool = False, **options: Any) -> PushResult:
    """Publish a tagged dataset, its configs, card and plots to a Hub dataset repo in one commit.

    Parameters
    ----------
    repo_id:
        ``owner/name`` of the dataset repo (created if missing).
    dataset:
        The tagged ``Dataset`` or ``DatasetDict`` (the ``default`` config).
    token, token_env:
        The token, or the name of the environment variable holding it; default:
        huggingface_hub's (``HF_TOKEN`` or ``hf auth login``). Never written anywhere.
    private, revision, create_pr, commit_message:
        Passed to the Hub (``private`` only applies when the repo is created).
    dry_run:
        A folder: write everything there (card, parquet per config, plots) and upload nothing.
    local_dir:
        Where the files are written before uploading (default: a temporary folder,
        removed after a successful upload and kept, and named, after a failed one).
    options:
        Everything :func:`~instag_hf.publish.write_publication` takes: ``tagger``,
        ``subsets``, ``mapping``, ``normalization``, ``vocabulary``, ``plots``,
        ``pretty_name``, ``license``, ``language``, ``tags``, ``description``, ...
    """
    check_repo_id(repo_id)
    if dry_run is not None:
        pub = write_publication(dry_run, dataset, repo_id=repo_id, overwrite=overwrite, **options)
        return PushResult(repo_id, "dataset", pub.files, pub.folder, True)
    token = resolve_token(token, token_env)  # before the long part: fail fast, write nothing
    temporary = local_dir is None
    folder = Path(tempfile.mkdtemp(prefix="instag-push-")) if temporary else Path(local_dir)
    try:
        pub = write_publication(folder, dataset, repo_id=repo_id, overwrite=overwrite, **options)
    except BaseException:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    result = upload_publication(pub, repo_id, token=token, private=private, revision=revision, create_pr=create_pr,
                                commit_message=commit_message)
    if temporary:
        shutil.rmtree(folder, ignore_errors=True)
        result.folder = None
    return result


# ----------------------------------------------------------------------------- the Space


def push_space(repo_id: str, *, app_dir: str | Path | None = None, dataset: str | None = None,
               variables: Mapping[str, str] | None = None, token: str | None = None, token_env: str | None = None,
               private: bool | None = None, hardware: str | None = None, title: str | None = None,
               include_package: bool = True, dry_run: str | Path | None = None, overwrite: bool = False,
               commit_message: str | None = None) -> PushResult:
    """Create or update the Gradio Space: the app folder (``spaces/``) and a copy of ``instag_hf``, one commit.

    ``dataset``: a Hub dataset id the Space shows on start (Space variable
    ``INSTAG_DATASET``); ``variables``: more public Space variables (e.g.
    ``INSTAG_BACKEND``, ``INSTAG_MODEL``; names that look like secrets are refused).
    ``hardware`` applies when the Space is created. ``dry_run``: a folder to write
    the Space's files into instead of uploading.
    """
    check_repo_id(repo_id)
    chosen = dict(variables or {})
    if dataset is not None:
        chosen[SPACE_DATASET_VARIABLE] = check_repo_id(dataset) if "/" in dataset else dataset
    chosen = check_variables(chosen)
    if dry_run is not None:
        files = write_space(dry_run, app_dir=app_dir, title=title, include_package=include_package,
                            overwrite=overwrite)
        return PushResult(repo_id, "space", files, Path(dry_run), True, variables=chosen)
    token = resolve_token(token, token_env)
    folder = Path(tempfile.mkdtemp(prefix="instag-space-"))
    try:
        files = write_space(folder, app_dir=app_dir, title=title, include_package=include_package)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    message = commit_message or f"Update the InsTag Space (instag_hf {package_version()})"
    create_kwargs = {"space_sdk": "gradio", **({"space_hardware": hardware} if hardware else {})}
    managed = ["instag_hf/"] if include_package else []
    logger.info("uploading %d files to Space %s in one commit", len(files), repo_id)
    try:
        api = _api(token)
        repo_url, info, stale = _commit(api, repo_id, "space", folder, files, managed, private=private,
                                        revision=None, create_pr=False, commit_message=message,
                                        commit_description=None, create_kwargs=create_kwargs)
        for key, value in chosen.items():
            api.add_space_variable(repo_id, key, value)
    except Exception as exc:  # noqa: BLE001
        raise UploadError(f"upload to Space {repo_id} failed ({_describe_error(exc, token)}). The Space's files "
                          f"are in {folder}", folder) from None
    shutil.rmtree(folder, ignore_errors=True)
    return PushResult(repo_id, "space", files, None, False, url=str(repo_url),
                      commit_url=getattr(info, "commit_url", None), commit_oid=getattr(info, "oid", None),
                      deleted=stale, variables=chosen)
