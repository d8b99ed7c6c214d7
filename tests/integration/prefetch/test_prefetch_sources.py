"""The other sources: HTTP(S) file and index, the hub (through huggingface_hub), file://."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from prefetch_servers import HubRepo, HubStandIn, RangeHTTPServer, self_signed_tls

from conftest import MiB, make_model, run_prefetch, sha256sums


def test_http_index_with_subdirectories(http_server: RangeHTTPServer, tmp_path: Path) -> None:
    sizes = {"llama/1/model.plan": 3 * MiB + 5, "llama/config.pbtxt": 200, "tok/vocab.txt": 4000}
    digests = make_model(http_server.root / "repo", sizes)
    (http_server.root / "repo" / "SHA256SUMS").write_text(sha256sums(digests))
    dest = tmp_path / "pod" / "models"
    run = run_prefetch(
        tmp_path,
        "--uri",
        f"{http_server.url}/repo/",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--dest",
        str(dest),
        "--sha256-file",
        "SHA256SUMS",
        "--include",
        "llama/*",
        "--include",
        "SHA256SUMS",
        "--part-size",
        "1Mi",
    )
    result = run.result()
    assert result["files"] == 3  # tok/ left out by --include
    assert (dest / "llama/1/model.plan").read_bytes() == (
        http_server.root / "repo/llama/1/model.plan"
    ).read_bytes()
    assert not (dest / "tok").exists()


def test_progress_lines_read_well(http_server: RangeHTTPServer, tmp_path: Path) -> None:
    make_model(http_server.root / "m", {"w.bin": 2 * MiB})
    http_server.stats.throttle_bytes_per_s = 2 * MiB  # at least 1 s, lines every 0.2 s
    run = run_prefetch(
        tmp_path,
        "--uri",
        f"{http_server.url}/m/",
        "--cache-dir",
        str(tmp_path / "c"),
        "--progress-interval",
        "0.2",
    )
    run.result()
    lines = [line for line in run.stderr.splitlines() if " progress " in line]
    assert lines, run.stderr
    assert re.search(
        r"progress [\d.]+ \w+ / 2.00 MiB \([\d.]+%\) [\d.]+ \w+/s ETA \S+ files", lines[0]
    )


def test_http_single_file(http_server: RangeHTTPServer, tmp_path: Path) -> None:
    digests = make_model(http_server.root, {"model.onnx": 2 * MiB})
    run = run_prefetch(
        tmp_path,
        "--uri",
        f"{http_server.url}/model.onnx",
        "--cache-dir",
        str(tmp_path / "c"),
        "--sha256",
        f"model.onnx={digests['model.onnx']}",
    )
    model_dir = Path(str(run.result()["modelDir"]))
    assert (
        hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest() == digests["model.onnx"]
    )


def _hub_repo() -> HubRepo:
    import random

    rng = random.Random(3)
    return HubRepo(
        files={"model.safetensors": rng.randbytes(3 * MiB), "config.json": b'{"a": 1}'},
        lfs={"model.safetensors"},
    )


def test_hub_through_huggingface_hub(hub: HubStandIn, tmp_path: Path) -> None:
    """The REAL huggingface_hub client against a LOCAL STAND-IN of the hub's API."""
    hub.repos["acme/tiny"] = _hub_repo()
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token or ""}
    dest = tmp_path / "pod" / "model"
    run = run_prefetch(
        tmp_path,
        "--uri",
        "hf://acme/tiny",
        "--revision",
        "main",
        "--cache-dir",
        str(tmp_path / "c"),
        "--dest",
        str(dest),
        "--part-size",
        "1Mi",
        env=env,
    )
    assert run.result()["files"] == 2
    assert (dest / "model.safetensors").read_bytes() == hub.repos["acme/tiny"].files[
        "model.safetensors"
    ]
    # The API call came through huggingface_hub (blobs=True asks for the LFS sha256), and the
    # bytes were fetched at the pinned commit, not the moving branch.
    assert any(r.startswith("/api/models/acme/tiny/revision/main?blobs=") for r in hub.requests)
    assert any(f"/resolve/{hub.repos['acme/tiny'].commit}/" in r for r in hub.requests)
    assert hub.token not in run.stderr + run.stdout + run.termination  # type: ignore[operator]


def test_hub_lfs_sha256_mismatch(hub: HubStandIn, tmp_path: Path) -> None:
    repo = _hub_repo()
    repo.sha_override["model.safetensors"] = "ab" * 32
    hub.repos["acme/tiny"] = repo
    run = run_prefetch(
        tmp_path,
        "--uri",
        "hf://acme/tiny",
        "--cache-dir",
        str(tmp_path / "c"),
        env={"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token or ""},
    )
    assert run.code == 5, run.stderr
    assert run.termination.startswith("ChecksumMismatch: model.safetensors expected abababababab..")


def test_hub_without_token_is_not_found(hub: HubStandIn, tmp_path: Path) -> None:
    hub.repos["acme/tiny"] = _hub_repo()
    run = run_prefetch(
        tmp_path,
        "--uri",
        "hf://acme/tiny",
        "--cache-dir",
        str(tmp_path / "c"),
        env={"HF_ENDPOINT": hub.url},
    )
    assert run.code == 3, run.stderr
    assert run.termination.startswith("NotFound: listing hf://acme/tiny@main: repository not found")


def test_file_source(tmp_path: Path) -> None:
    digests = make_model(tmp_path / "pvc" / "m", {"w.bin": MiB + 1, "sub/x": 10})
    run = run_prefetch(
        tmp_path,
        "--uri",
        f"file://{tmp_path}/pvc/m",
        "--cache-dir",
        str(tmp_path / "c"),
        "--dest",
        str(tmp_path / "d"),
    )
    assert run.result()["files"] == 2
    assert hashlib.sha256((tmp_path / "d" / "w.bin").read_bytes()).hexdigest() == digests["w.bin"]


def test_https_with_a_verified_certificate(tmp_path: Path) -> None:
    tls = self_signed_tls(tmp_path)
    if tls is None:
        pytest.skip("openssl CLI not installed")
    context, ca_file = tls
    root = tmp_path / "www"
    digests = make_model(root, {"m/w.bin": 2 * MiB})
    server = RangeHTTPServer(root, tls=context).start()
    try:
        args = ["--uri", f"{server.url}/m/", "--cache-dir", str(tmp_path / "c")]
        untrusted = run_prefetch(tmp_path, *args)  # the system CAs do not know this cert
        assert untrusted.code == 7 and "TLS verification failed" in untrusted.termination
        run = run_prefetch(tmp_path, *args, env={"SSL_CERT_FILE": str(ca_file)})
        model = Path(str(run.result()["modelDir"]))
        assert hashlib.sha256((model / "w.bin").read_bytes()).hexdigest() == digests["m/w.bin"]
    finally:
        server.stop()


def test_size_limit_evicts_the_unused_model_not_the_prepulled_one(tmp_path: Path) -> None:
    """Pre-pull keeps its copy referenced from its own volume (--ref-dir); LRU skips it."""
    for name in ("a", "b", "c"):
        make_model(tmp_path / "pvc" / name, {"w.bin": MiB})
    cache = tmp_path / "cache"
    prepull_volume = tmp_path / "prepull-pod-volume"

    def fill(name: str, *extra: str) -> dict[str, object]:
        return run_prefetch(
            tmp_path, "--uri", f"file://{tmp_path}/pvc/{name}", "--cache-dir", str(cache), *extra
        ).result()

    kept = fill("a", "--ref-dir", str(prepull_volume))
    unused = fill("b")
    fill("c", "--size-limit", str(2 * MiB + MiB // 2))  # room for two of the three
    assert (cache / "models" / str(kept["cacheKey"])).is_dir()
    assert not (cache / "models" / str(unused["cacheKey"])).exists()
    assert (prepull_volume / f".warmpool-ref-{kept['cacheKey']}").exists()
