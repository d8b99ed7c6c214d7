"""Expected sha256 values: from flags (``path=hex``) or a ``sha256sum``-format file (pure)."""

from __future__ import annotations

import re

from warmpool.prefetch.errors import UsageError

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _normalize_path(path: str) -> str:
    path = path.strip()
    while path.startswith("./"):
        path = path[2:]
    return path


def parse_sha256_flags(values: list[str]) -> dict[str, str]:
    """``["model.bin=ab12..."]`` -> ``{"model.bin": "ab12..."}``; hex is lower-cased."""
    expected: dict[str, str] = {}
    for value in values:
        path, sep, digest = value.rpartition("=")
        if not sep or not path or not _HEX64.match(digest.strip()):
            raise UsageError(f"--sha256 wants PATH=<64 hex digits>, got {value[:80]!r}")
        expected[_normalize_path(path)] = digest.strip().lower()
    return expected


def parse_sha256sum_file(text: str) -> dict[str, str]:
    """Parse ``sha256sum`` output: ``<hex>  <path>`` (text) or ``<hex> *<path>`` (binary).

    Blank lines and ``#`` comments are skipped; a malformed line is an error, since a checksum
    file that is silently half-read would verify nothing.
    """
    expected: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, rest = line.partition(" ")
        if not _HEX64.match(digest) or not rest:
            raise UsageError(
                f"checksum file line {number} is not '<sha256>  <path>': {line[:80]!r}"
            )
        path = rest[1:] if rest[:1] in {" ", "*"} else rest
        expected[_normalize_path(path)] = digest.lower()
    return expected


def short(digest: str) -> str:
    """The first 12 hex digits, enough to tell two digests apart in a one-line reason."""
    return digest[:12] + ".."
