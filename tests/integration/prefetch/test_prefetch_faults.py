"""Faults: kill -9 and resume, two prefetchers on one node, a full disk, HTTP 403/404."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefetch_servers import RangeHTTPServer, wait_for

from conftest import MiB, make_model, prefetch_command, prefetch_env, run_prefetch
from warmpool.prefetch import cache_key


def _journal_ranges(journal: Path) -> int:
    if not journal.exists():
        return 0
    return max(len(journal.read_bytes().splitlines()) - 1, 0)  # minus the header line


def test_kill9_mid_download_then_resume(http_server: RangeHTTPServer, tmp_path: Path) -> None:
    sizes = {"weights.bin": 6 * MiB, "config.json": 500}
    make_model(http_server.root / "m", sizes)
    total = sum(sizes.values())
    uri = f"{http_server.url}/m/"
    cache, dest = tmp_path / "cache", tmp_path / "pod" / "model"
    args = [
        "--uri",
        uri,
        "--cache-dir",
        str(cache),
        "--dest",
        str(dest),
        "--part-size",
        "256Ki",
        "--concurrency",
        "2",
    ]
    journal = cache / "staging" / cache_key(uri, None) / "journal"
    http_server.stats.throttle_bytes_per_s = MiB  # per connection: >= 3 s, time to kill it

    process = subprocess.Popen(
        prefetch_command("--termination-log", str(tmp_path / "t1"), *args),
        env=prefetch_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _journal_ranges(journal) >= 4, 60, "four ranges journaled")
    finally:
        process.kill()  # SIGKILL: no clean-up code runs
        process.wait(30)
    assert process.returncode == -9
    assert not dest.exists() and not (cache / "models" / cache_key(uri, None)).exists()
    http_server.stats.throttle_bytes_per_s = None
    wait_for(lambda: http_server.stats.active == 0, 30, "the killed run's responses to end")
    served_first = http_server.stats.total()
    assert served_first < total
    http_server.stats.bytes_by_path.clear()
    run = run_prefetch(tmp_path, *args)
    result = run.result()
    served_second = http_server.stats.total()
    assert served_second < total  # it continued instead of starting from zero
    assert result["fetchedBytes"] == served_second
    assert "already on disk" in run.stderr
    assert (dest / "weights.bin").read_bytes() == (http_server.root / "m/weights.bin").read_bytes()


def test_two_prefetchers_on_one_node_download_once(
    http_server: RangeHTTPServer, tmp_path: Path
) -> None:
    sizes = {"weights.bin": 4 * MiB}
    make_model(http_server.root / "m", sizes)
    http_server.stats.throttle_bytes_per_s = 4 * MiB  # the first holds the lock ~1 s
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            prefetch_command(
                "--uri",
                f"{http_server.url}/m/",
                "--cache-dir",
                str(cache),
                "--dest",
                str(tmp_path / f"pod{i}" / "model"),
                "--termination-log",
                str(tmp_path / f"t{i}"),
                "--part-size",
                "1Mi",
                "--concurrency",
                "2",
            ),
            env=prefetch_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    hits = sorted('"cacheHit": true' in out for out, _err in outputs)
    assert hits == [False, True]
    assert http_server.stats.bytes_by_path["/m/weights.bin"] == sizes["weights.bin"]  # once
    for i in range(2):
        assert (tmp_path / f"pod{i}" / "model" / "weights.bin").stat().st_size == 4 * MiB


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs: a real filesystem that fills up (needs root, as in CI)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    with contextlib.suppress(Exception):
        subprocess.run(["umount", str(mount)], check=True, timeout=30)


def test_full_disk_is_a_clear_error(
    http_server: RangeHTTPServer, tmp_path: Path, small_tmpfs: Path
) -> None:
    make_model(http_server.root / "m", {"weights.bin": 12 * MiB, "config.json": 100})
    dest = tmp_path / "pod" / "model"
    run = run_prefetch(
        tmp_path,
        "--uri",
        f"{http_server.url}/m/",
        "--cache-dir",
        str(small_tmpfs / "cache"),
        "--dest",
        str(dest),
        "--part-size",
        "1Mi",
    )
    assert run.code == 6, run.stderr
    assert run.termination.startswith("DiskFull: no space left on the cache filesystem")
    assert run.termination.count("\n") == 1
    assert list((small_tmpfs / "cache" / "models").iterdir()) == []
    assert list((small_tmpfs / "cache" / "staging").iterdir()) == []  # space given back
    assert not dest.exists()


@pytest.mark.parametrize(("status", "code", "kind"), [(403, 4, "Forbidden"), (404, 3, "NotFound")])
def test_http_403_and_404_have_one_line_reasons(
    http_server: RangeHTTPServer, tmp_path: Path, status: int, code: int, kind: str
) -> None:
    make_model(http_server.root / "m", {"weights.bin": 1000})
    http_server.stats.status_override["/m/weights.bin"] = status
    run = run_prefetch(
        tmp_path,
        "--uri",
        f"{http_server.url}/m/weights.bin",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert run.code == code, run.stderr
    assert run.termination.startswith(
        f"{kind}: HEAD http://127.0.0.1:{http_server.port}/m/weights.bin"
    )
    assert f"HTTP {status}" in run.termination and run.termination.count("\n") == 1
