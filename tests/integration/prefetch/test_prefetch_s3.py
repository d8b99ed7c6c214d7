"""warmpool prefetch against a real S3 API server (versitygw), as the init container runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prefetch_servers import S3Server

from conftest import MiB, make_model, run_prefetch, sha256sums, upload_model
from warmpool.prefetch import cache_key

pytestmark = pytest.mark.s3

SIZES = {"big.bin": 5 * MiB + 123, "config.json": 700, "tokenizer/vocab.txt": 300 * 1024}


def _s3_args(s3: S3Server, uri: str, cache: Path, *extra: str) -> list[str]:
    return [
        "--uri",
        uri,
        "--s3-endpoint",
        s3.endpoint,
        "--cache-dir",
        str(cache),
        "--part-size",
        "1Mi",
        "--concurrency",
        "4",
        *extra,
    ]


def _published(cache: Path) -> list[str]:
    models = cache / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_fetch_verify_publish_then_hit(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "src"
    digests = make_model(local, SIZES)
    (local / "SHA256SUMS").write_text(sha256sums(digests))
    upload_model(s3_server, bucket, "llama/v1", local)
    cache, dest = tmp_path / "cache", tmp_path / "pod" / "models" / "llama"
    args = _s3_args(
        s3_server,
        f"s3://{bucket}/llama/v1",
        cache,
        "--dest",
        str(dest),
        "--sha256-file",
        "SHA256SUMS",
        "--revision",
        "v1",
    )

    first = run_prefetch(tmp_path, *args, env=s3_server.env())
    result = first.result()
    assert result["cacheHit"] is False
    assert result["fetchedBytes"] == sum(SIZES.values()) + len(sha256sums(digests))
    assert dest.is_symlink()
    for rel in SIZES:
        assert (dest / rel).read_bytes() == (local / rel).read_bytes()
    key = cache_key(f"s3://{bucket}/llama/v1", "v1", endpoint=s3_server.endpoint)
    assert result["cacheKey"] == key and _published(cache) == [key]
    manifest = json.loads((cache / "meta" / f"{key}.json").read_text())
    assert {f["path"]: f["sha256"] for f in manifest["files"]}["big.bin"] == digests["big.bin"]
    assert not (cache / "staging" / key).exists()
    assert first.termination.startswith(f"Cached: {key}")

    second = run_prefetch(tmp_path, *args, env=s3_server.env())
    assert second.result()["cacheHit"] is True
    assert second.result()["fetchedBytes"] == 0

    rehashed = run_prefetch(tmp_path, *args, "--rehash", env=s3_server.env())
    assert rehashed.result()["cacheHit"] is True
    assert "full re-hash" in rehashed.stderr


def test_corrupted_byte_is_a_checksum_mismatch(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    local = tmp_path / "src"
    digests = make_model(local, SIZES)
    upload_model(s3_server, bucket, "m", local)
    stored = s3_server.object_path(bucket, "m/big.bin")  # bit rot at the source
    with stored.open("r+b") as handle:
        handle.seek(3 * MiB + 17)
        byte = handle.read(1)
        handle.seek(3 * MiB + 17)
        handle.write(bytes([byte[0] ^ 0xFF]))
    cache, dest = tmp_path / "cache", tmp_path / "pod" / "model"
    sums = [f"--sha256={path}={digest}" for path, digest in digests.items()]
    run = run_prefetch(
        tmp_path,
        *_s3_args(s3_server, f"s3://{bucket}/m", cache, "--dest", str(dest), *sums),
        env=s3_server.env(),
    )
    assert run.code == 5, run.stderr
    assert run.termination.startswith(
        f"ChecksumMismatch: big.bin expected {digests['big.bin'][:12]}"
    )
    assert run.termination.count("\n") == 1
    assert _published(cache) == [] and not dest.exists() and not dest.is_symlink()
    assert list((cache / "staging").iterdir()) == []


def test_wrong_secret_is_forbidden(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    make_model(tmp_path / "src", {"a.bin": 1000})
    upload_model(s3_server, bucket, "m", tmp_path / "src")
    env = {**s3_server.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    run = run_prefetch(tmp_path, *_s3_args(s3_server, f"s3://{bucket}/m", tmp_path / "c"), env=env)
    assert run.code == 4, run.stderr
    assert run.termination.startswith("Forbidden: ")
    assert "403" in run.termination
    assert "not-the-secret" not in run.stderr + run.stdout + run.termination


@pytest.mark.parametrize("where", ["missing-bucket", "empty-prefix"])
def test_missing_model_is_not_found(
    s3_server: S3Server, bucket: str, tmp_path: Path, where: str
) -> None:
    uri = (
        f"s3://no-such-bucket-{os.getpid()}/m"
        if where == "missing-bucket"
        else f"s3://{bucket}/nothing"
    )
    run = run_prefetch(tmp_path, *_s3_args(s3_server, uri, tmp_path / "c"), env=s3_server.env())
    assert run.code == 3, run.stderr
    assert run.termination.startswith("NotFound: ")
    assert _published(tmp_path / "c") == []
