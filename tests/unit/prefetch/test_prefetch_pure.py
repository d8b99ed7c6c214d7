"""Pure parts of the prefetcher: ranges, checksum parsing, sizes, URIs, index pages, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warmpool.prefetch.checksums import parse_sha256_flags, parse_sha256sum_file
from warmpool.prefetch.errors import ChecksumMismatch, UsageError
from warmpool.prefetch.ranges import merge, missing, split
from warmpool.prefetch.sources.http import index_links
from warmpool.prefetch.units import human_bytes, parse_size
from warmpool.prefetch.uris import parse_uri, redact

HEX = "ab" * 32


def test_missing_is_the_complement_of_done() -> None:
    assert missing(100, [(10, 20), (15, 30), (90, 100)]) == [(0, 10), (30, 90)]
    assert missing(0, []) == []
    assert missing(50, [(0, 50)]) == []


@given(
    size=st.integers(0, 10_000),
    done=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), max_size=8),
    part=st.integers(1, 3000),
)
def test_parts_and_done_ranges_tile_the_file(
    size: int, done: list[tuple[int, int]], part: int
) -> None:
    done = [(min(a, b, size), min(max(a, b), size)) for a, b in done]
    parts = split(missing(size, done), part)
    assert all(0 < end - start <= part for start, end in parts)
    assert merge(parts + done) == ([(0, size)] if size else [])
    covered = sum(end - start for start, end in merge(done))
    assert sum(end - start for start, end in parts) == size - covered


def test_sha256sum_file_text_and_binary_modes() -> None:
    text = f"# made by sha256sum\n{HEX}  model.bin\n{'cd' * 32} *./tok/vocab.txt\n\n"
    assert parse_sha256sum_file(text) == {"model.bin": HEX, "tok/vocab.txt": "cd" * 32}


def test_sha256sum_file_refuses_a_bad_line() -> None:
    with pytest.raises(UsageError, match="line 2"):
        parse_sha256sum_file(f"{HEX}  a\nnot a checksum line\n")


def test_sha256_flags() -> None:
    assert parse_sha256_flags([f"dir/a=b.bin={HEX.upper()}"]) == {"dir/a=b.bin": HEX}
    with pytest.raises(UsageError):
        parse_sha256_flags(["model.bin=abc"])


@pytest.mark.parametrize(
    ("text", "value"),
    [("123", 123), ("8Mi", 8 * 1024**2), ("10G", 10**10), ("1.5Gi", 3 * 1024**3 // 2)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.50 KiB"
    assert human_bytes(4 * 1024**3) == "4.00 GiB"


def test_redact_drops_credentials_and_query() -> None:
    assert redact("https://user:pw@host:8443/m/x?X-Amz-Signature=s") == "https://host:8443/m/x"
    assert redact("s3://bucket/prefix") == "s3://bucket/prefix"
    assert redact("file:///models/m") == "file:///models/m"


def test_parse_uri() -> None:
    assert parse_uri("hf://org/model").authority == "org"
    assert parse_uri("s3://b/p/q").path == "/p/q"
    with pytest.raises(UsageError, match="scheme"):
        parse_uri("ftp://x/y")
    with pytest.raises(UsageError):
        parse_uri("s3:///nobucket")


def test_index_links_keep_only_entries_below_the_base() -> None:
    html = """<html><a href="../">..</a><a href="?C=N;O=D">sort</a>
      <a href="model.bin">m</a><a href="sub/">sub</a><a href="/elsewhere/x">x</a>
      <a href="https://other.host/y">y</a><a href="a%20b.txt#frag">a b</a></html>"""
    assert index_links("http://h/m/", html) == [
        "http://h/m/a%20b.txt",
        "http://h/m/model.bin",
        "http://h/m/sub/",
    ]


def test_error_line_is_one_line_with_its_kind() -> None:
    error = ChecksumMismatch("model.bin expected ab12..\ngot cd34..")
    assert error.line() == "ChecksumMismatch: model.bin expected ab12.. got cd34.."
    assert error.exit_code == 5
