"""The data the prefetch program works on: its settings, the source's files, the manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class RemoteFile:
    """One file of the model at the source."""

    path: str
    """Path relative to the model root, ``/``-separated; the same path it gets in the cache."""
    size: int
    """Size in bytes, as the source lists it."""
    sha256: str | None = None
    """The sha256 the source itself vouches for (the hub's LFS oid), if any."""
    etag: str | None = None
    """The source's version tag (ETag, blob id); a change invalidates a partial download."""
    ranged: bool = True
    """Whether the source serves byte ranges of it (parallel parts and resume need that)."""


class PrefetchConfig(BaseModel):
    """Everything one prefetch needs; built by the CLI from flags and environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str
    """``s3://``, ``gs://``, ``https://``/``http://``, ``hf://org/model`` or ``file:///path``."""
    revision: str | None = None
    """Hub revision (branch, tag or commit); part of the cache key for every scheme."""
    include: tuple[str, ...] = ()
    """Glob patterns (``fnmatch``, ``*`` also matches ``/``) of files to fetch; empty = all."""
    sha256: dict[str, str] = Field(default_factory=dict)
    """Expected sha256 by relative path."""
    sha256_file: str | None = None
    """Name of a ``sha256sum``-format file at the source, relative to the model root."""
    cache_dir: Path = Path("/var/cache/warmpool")
    """Node-local cache root (a hostPath shared by every pod on the node)."""
    dest: Path | None = None
    """Where the model must appear for the server (a symlink into the cache); None: fill only."""
    ref_dir: Path | None = None
    """A directory in the pod's own volume where the model's use reference is placed (a hard
    link, see cache.mark_in_use); defaults to the parent of ``dest``. The pre-pull DaemonSet,
    which has no ``dest``, sets it so the copy it keeps stays protected from eviction."""
    size_limit: int | None = None
    """Cache budget in bytes; least recently used models that no pod uses are evicted."""
    s3_endpoint: str | None = None
    """S3-compatible endpoint URL (MinIO-free: any S3 API server); None = AWS."""
    s3_region: str | None = None
    """S3 region; defaults to ``us-east-1`` when an endpoint is given."""
    rehash: bool = False
    """On a cache hit, re-hash every file instead of trusting size + mtime from the manifest."""
    concurrency: int = Field(default=8, ge=1, le=256)
    """Ranged requests in flight at once, across and within files. 8 x 32 MiB used 6-12 % less
    CPU per GiB than 16 x 16 MiB on the 2-core benchmark box and is in line with s5cmd's and
    boto3's per-file defaults (5 x 50 MB, 10 x 8 MiB); raise it for links with a long time to
    first byte."""
    part_size: int = Field(default=32 * 1024 * 1024, ge=64 * 1024)
    """Bytes per ranged request (and the resume granularity). Parts are streamed in ~1 MiB
    pieces and early pieces are read back from the page cache rather than kept, so memory does
    not grow with it: about concurrency x 2 MiB of buffers."""
    progress_interval: float = Field(default=5.0, gt=0)
    """Seconds between progress lines in the log."""
    holder: str | None = None
    """Who uses the model (the pod UID); names the fallback in-use marker."""
    in_use_ttl: float = Field(default=7 * 24 * 3600, gt=0)
    """Seconds a fallback in-use marker protects a model (when the hard-link ref cannot be made)."""
    checkpoint_interval: float = Field(default=1.0, gt=0)
    """Seconds between checkpoints (fdatasync, then journal) of finished parts: a crash loses
    at most this much progress; a resume survives a node crash, not only a killed process."""


class ManifestFile(BaseModel):
    """One verified file as it was published."""

    model_config = ConfigDict(extra="forbid")

    path: str
    size: int
    mtime_ns: int
    sha256: str


class Manifest(BaseModel):
    """What was published for a cache key, recorded at download time for fast hit checks."""

    model_config = ConfigDict(extra="forbid")

    key: str
    uri: str
    revision: str | None
    include: list[str]
    files: list[ManifestFile]
    total_bytes: int
    created_unix: float
