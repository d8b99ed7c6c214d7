"""warmpool prefetch from gs:// against a real GCS API server (fake-gcs-server).

The program runs as the init container runs it; ``STORAGE_EMULATOR_HOST`` points its obstore
GCSStore at the local server (the only difference from Google: no OAuth token is sent).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from prefetch_servers import GcsServer

from conftest import MiB, make_model, run_prefetch, sha256sums

SIZES = {"big.bin": 3 * MiB + 321, "config.json": 700, "tokenizer/vocab.txt": 200 * 1024}


def _upload(gcs: GcsServer, bucket: str, prefix: str, local: Path) -> dict[str, dict[str, str]]:
    metadata = {}
    for path in sorted(local.rglob("*")):
        if path.is_file():
            rel = path.relative_to(local).as_posix()
            metadata[rel] = gcs.upload(bucket, f"{prefix}/{rel}", path.read_bytes())
    return metadata


def _args(uri: str, cache: Path, *extra: str) -> list[str]:
    # Small parts: the 3 MiB file is fetched as four ranged GETs in parallel and stitched.
    return [
        *("--uri", uri, "--cache-dir", str(cache)),
        *("--part-size", "1Mi", "--concurrency", "4"),
        *extra,
    ]


def test_gcs_lists_fetches_ranges_verifies_and_hits(
    gcs_server: GcsServer, gcs_bucket: str, tmp_path: Path
) -> None:
    local = tmp_path / "src"
    digests = make_model(local, SIZES)
    (local / "SHA256SUMS").write_text(sha256sums(digests))
    stored = _upload(gcs_server, gcs_bucket, "llama/v1", local)
    # What the GCS API vouches for: md5 and crc32c, no sha256 (so sha256 comes from the
    # checksum file; the server's md5 still agrees with what was uploaded).
    assert not [key for meta in stored.values() for key in meta if "sha256" in key.lower()]
    md5 = base64.b64decode(stored["big.bin"]["md5Hash"]).hex()
    assert md5 == hashlib.md5((local / "big.bin").read_bytes()).hexdigest()

    cache, dest = tmp_path / "cache", tmp_path / "pod" / "model"
    args = _args(
        f"gs://{gcs_bucket}/llama/v1", cache, "--sha256-file", "SHA256SUMS", "--dest", str(dest)
    )
    first = run_prefetch(tmp_path, *args, env=gcs_server.env()).result()
    assert first["cacheHit"] is False
    assert first["files"] == len(SIZES) + 1  # the model and its SHA256SUMS
    for rel in SIZES:
        assert (dest / rel).read_bytes() == (local / rel).read_bytes(), rel

    second = run_prefetch(tmp_path, *args, env=gcs_server.env()).result()
    assert second["cacheHit"] is True and second["fetchedBytes"] == 0


def test_gcs_checksum_mismatch_publishes_nothing(
    gcs_server: GcsServer, gcs_bucket: str, tmp_path: Path
) -> None:
    local = tmp_path / "src"
    make_model(local, {"weights.bin": 2 * MiB})
    _upload(gcs_server, gcs_bucket, "m", local)
    cache = tmp_path / "cache"
    wrong = "0" * 64
    run = run_prefetch(
        tmp_path,
        *_args(f"gs://{gcs_bucket}/m", cache, "--sha256", f"weights.bin={wrong}"),
        env=gcs_server.env(),
    )
    assert run.code != 0
    assert "weights.bin expected 000000" in run.termination
    models = cache / "models"
    assert not models.exists() or not any(models.iterdir())


def test_gcs_missing_prefix_is_a_one_line_not_found(
    gcs_server: GcsServer, gcs_bucket: str, tmp_path: Path
) -> None:
    run = run_prefetch(
        tmp_path, *_args(f"gs://{gcs_bucket}/absent", tmp_path / "cache"), env=gcs_server.env()
    )
    assert run.code != 0
    assert f"no objects under gs://{gcs_bucket}/absent" in run.termination
    assert "\n" not in run.termination.strip()
