"""Hugging Face Hub source: ``hf://org/model`` at ``--revision``.

``huggingface_hub`` resolves the revision to a commit and lists the files with their sizes and
LFS sha256 (``model_info(files_metadata=True)``), honouring ``HF_ENDPOINT`` and ``HF_TOKEN``.
The bytes then come through the same parallel ranged downloader as every other source, from the
hub's ``resolve/<commit>/<file>`` URLs (which redirect to its CDN), so a hub model gets the same
resume, hash-while-downloading and progress; pinning the commit means a branch that moves
mid-download cannot mix two versions.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils._headers import build_hf_headers

from warmpool.prefetch.errors import Forbidden, NotFound, PrefetchError, SourceError
from warmpool.prefetch.model import RemoteFile
from warmpool.prefetch.sources.base import error_for_status
from warmpool.prefetch.sources.http import HttpReader
from warmpool.prefetch.uris import SourceUri


def _translate(error: Exception, what: str) -> PrefetchError:
    if isinstance(error, GatedRepoError):
        return Forbidden(f"{what}: gated repository; the HF_TOKEN has no access")
    if isinstance(error, RevisionNotFoundError):
        return NotFound(f"{what}: revision not found")
    if isinstance(error, RepositoryNotFoundError):
        # The hub answers 401 for a repo that is private or does not exist alike.
        return NotFound(f"{what}: repository not found (or private and HF_TOKEN has no access)")
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return error_for_status(error.response.status_code, what)
    return SourceError(f"{what}: {type(error).__name__}: {str(error).splitlines()[0][:300]}")


class HubSource:
    """A model repository on the Hugging Face Hub (or a hub-compatible endpoint)."""

    def __init__(self, uri: SourceUri, revision: str | None, concurrency: int) -> None:
        self._repo_id = f"{uri.authority}/{uri.path.strip('/')}".strip("/")
        self._revision = revision or "main"
        # Read at call time (huggingface_hub reads HF_ENDPOINT once, at import).
        self._endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        self._token = os.environ.get("HF_TOKEN") or None
        self._api = HfApi(endpoint=self._endpoint, token=self._token)
        headers = build_hf_headers(token=self._token or False, library_name="warmpool")
        self._reader = HttpReader(concurrency, headers)
        self._commit: str | None = None
        self.description = f"hf://{self._repo_id}@{self._revision}"

    async def list_files(self) -> list[RemoteFile]:
        what = f"listing {self.description}"
        try:
            info = await asyncio.to_thread(
                self._api.model_info, self._repo_id, revision=self._revision, files_metadata=True
            )
        except Exception as error:
            raise _translate(error, what) from error
        self._commit = info.sha or self._revision
        files = []
        for sibling in info.siblings or []:
            size = (
                sibling.size
                if sibling.size is not None
                else (sibling.lfs.size if sibling.lfs else None)
            )
            if size is None:
                raise SourceError(f"{what}: the hub gave no size for {sibling.rfilename}")
            files.append(
                RemoteFile(
                    path=sibling.rfilename,
                    size=int(size),
                    sha256=sibling.lfs.sha256 if sibling.lfs else None,
                    etag=sibling.blob_id,
                )
            )
        if not files:
            raise NotFound(f"{what}: the repository has no files")
        return files

    def stream(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        url = hf_hub_url(self._repo_id, path, revision=self._commit, endpoint=self._endpoint)
        return self._reader.stream(url, start, end)

    async def close(self) -> None:
        await self._reader.close()
