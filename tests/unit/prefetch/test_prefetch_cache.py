"""The node cache on a real filesystem: keys, hit checks, use tracking, LRU eviction, publish."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from warmpool.prefetch.cache import (
    CacheLayout,
    cache_key,
    in_use,
    make_room,
    mark_in_use,
    verify_hit,
)
from warmpool.prefetch.model import PrefetchConfig
from warmpool.prefetch.publish import build_manifest, link_dest, publish, seal_staged


def test_cache_key_ignores_credentials_but_not_revision_or_include() -> None:
    base = cache_key("https://h/m/", "v1")
    assert base == cache_key("https://user:token@h/m", "v1")
    assert (
        len({base, cache_key("https://h/m/", "v2"), cache_key("https://h/m/", "v1", ["*.bin"])})
        == 3
    )


def _fill(layout: CacheLayout, key: str, size: int, uri: str = "s3://b/m") -> Path:
    data_dir = layout.staging_dir(key) / "data"
    data_dir.mkdir(parents=True)
    payload = os.urandom(size)
    (data_dir / "w.bin").write_bytes(payload)
    entries = seal_staged(data_dir, {"w.bin": hashlib.sha256(payload).hexdigest()})
    config = PrefetchConfig(uri=uri, cache_dir=layout.root)
    return publish(layout, build_manifest(config, key, entries), data_dir)


@pytest.fixture
def layout(tmp_path: Path) -> CacheLayout:
    layout = CacheLayout(tmp_path / "cache")
    layout.ensure()
    return layout


def test_hit_detects_a_changed_file_fast_and_a_flipped_byte_with_rehash(
    layout: CacheLayout,
) -> None:
    model = _fill(layout, "k1", 4096)
    assert verify_hit(layout, "k1", rehash=False)[0] is not None
    assert verify_hit(layout, "k1", rehash=True)[0] is not None
    target = model / "w.bin"
    stat = target.stat()
    os.chmod(target, 0o644)
    with target.open("r+b") as handle:  # flip a byte but keep size and mtime
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 1]))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert verify_hit(layout, "k1", rehash=False)[0] is not None  # the fast check trusts mtime
    manifest, why = verify_hit(layout, "k1", rehash=True)
    assert manifest is None and "sha256" in why
    os.utime(target)  # a rewrite that moves the mtime is caught without re-hashing
    assert "changed" in verify_hit(layout, "k1", rehash=False)[1]


def test_hard_link_refs_track_pods_and_drop_when_the_pod_volume_goes(
    layout: CacheLayout, tmp_path: Path
) -> None:
    _fill(layout, "k1", 10)
    pod = tmp_path / "pod-volume"
    pod.mkdir()
    assert not in_use(layout, "k1", in_use_ttl=60)
    mark_in_use(layout, "k1", pod, holder="uid-1")
    assert in_use(layout, "k1", in_use_ttl=60)
    (pod / ".warmpool-ref-k1").unlink()  # what the kubelet does when the pod is deleted
    assert not in_use(layout, "k1", in_use_ttl=60)


def test_lru_eviction_skips_models_in_use(layout: CacheLayout, tmp_path: Path) -> None:
    for index, key in enumerate(["old", "used", "new"]):
        _fill(layout, key, 1000)
        when = time.time() - 1000 + index * 100
        os.utime(layout.meta_path(key), (when, when))
    pod = tmp_path / "pod"
    pod.mkdir()
    mark_in_use(layout, "used", pod, holder="uid")
    evicted = make_room(layout, need=1500, size_limit=3000, keep="incoming", in_use_ttl=60)
    # 3000 cached + 1500 needed > 3000: evict least recently used first, never one in use.
    assert evicted == ["old", "new"]
    assert not layout.model_dir("old").exists() and not layout.meta_path("old").exists()
    assert layout.model_dir("used").exists()


def test_link_dest_swaps_atomically_and_refuses_a_real_directory(tmp_path: Path) -> None:
    first, second = tmp_path / "m1", tmp_path / "m2"
    first.mkdir()
    second.mkdir()
    dest = tmp_path / "pod" / "model"
    link_dest(dest, first)
    link_dest(dest, second)
    assert dest.resolve() == second.resolve()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "file").write_text("x")
    with pytest.raises(FileExistsError):
        link_dest(occupied, first)


def test_cache_key_tells_stores_apart() -> None:
    # s3://bucket/prefix on two S3-compatible stores are two models: never share a cache entry.
    uri = "s3://models/llama"
    assert cache_key(uri, "v1", endpoint="http://store-a:9000") != cache_key(
        uri, "v1", endpoint="http://store-b:9000"
    )
    assert cache_key(uri, "v1", endpoint="http://store-a:9000/") == cache_key(
        uri, "v1", endpoint="http://store-a:9000"
    )
