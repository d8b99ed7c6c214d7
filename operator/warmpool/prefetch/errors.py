"""Failures of a prefetch, each with a one-line reason for the pod's termination log.

The operator shows the line in the pool's ``WeightsCached`` condition, so it must name the kind
of failure first (``ChecksumMismatch: ...``) and never carry a credential.
"""

from __future__ import annotations


class PrefetchError(Exception):
    """A prefetch failure the program reports and exits on."""

    kind = "PrefetchFailed"
    exit_code = 1
    #: Keep the staged partial download for a later resume (transient failures only).
    keep_staging = True

    def line(self) -> str:
        """The single line written to the termination log."""
        text = " ".join(str(self).split())  # one line, whatever the message held
        return f"{self.kind}: {text}"[:1024]


class UsageError(PrefetchError):
    """Bad flags or environment."""

    kind = "InvalidConfiguration"
    exit_code = 2
    keep_staging = False


class NotFound(PrefetchError):
    """The source, bucket, object or revision does not exist (HTTP 404)."""

    kind = "NotFound"
    exit_code = 3


class Forbidden(PrefetchError):
    """The credentials were refused (HTTP 401/403)."""

    kind = "Forbidden"
    exit_code = 4


class ChecksumMismatch(PrefetchError):
    """A file's sha256 is not the expected one; the staged copy is discarded."""

    kind = "ChecksumMismatch"
    exit_code = 5
    keep_staging = False


class DiskFull(PrefetchError):
    """The cache filesystem ran out of space (ENOSPC); the staged copy is discarded."""

    kind = "DiskFull"
    exit_code = 6
    keep_staging = False


class SourceError(PrefetchError):
    """Any other failure talking to the source (network, 5xx, protocol)."""

    kind = "SourceError"
    exit_code = 7


class TransientSourceError(SourceError):
    """A failure worth retrying (connection reset, timeout, 5xx, 429); the part resumes."""
