"""Source URIs: scheme parsing and redaction for logs (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from warmpool.prefetch.errors import UsageError

SCHEMES = ("s3", "gs", "http", "https", "hf", "file")


@dataclass(frozen=True)
class SourceUri:
    """A parsed source URI: ``scheme://authority/path``."""

    scheme: str
    authority: str
    """Bucket (s3, gs), host (http), org (hf) or empty (file)."""
    path: str
    """Prefix inside the bucket, URL path, model name (hf) or local path (file)."""


def parse_uri(uri: str) -> SourceUri:
    """Split a source URI and check its scheme."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(f"unsupported --uri scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    if scheme in {"s3", "gs", "hf", "http", "https"} and not parts.netloc:
        raise UsageError(f"--uri {redact(uri)!r} names no bucket/host/org")
    if scheme == "file" and not parts.path:
        raise UsageError("--uri file:// needs an absolute path, e.g. file:///models/llama")
    return SourceUri(scheme=scheme, authority=parts.netloc, path=parts.path)


def redact(uri: str) -> str:
    """Drop a ``user:password@`` and the query (signed URLs) so a URI is safe to log."""
    parts = urlsplit(uri)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if not parts.netloc:
        netloc = ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
