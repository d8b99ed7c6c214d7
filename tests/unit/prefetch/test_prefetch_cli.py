"""Flags and environment of `warmpool prefetch` (what the operator renders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from warmpool.prefetch.cli import ENV, build_parser, config_from, main
from warmpool.prefetch.errors import UsageError

HEX = "ab" * 32


def test_every_flag_has_an_env_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = {a.dest for a in build_parser()._actions if a.dest != "help"}
    assert flags == set(ENV)
    for name in ENV:
        monkeypatch.delenv(ENV[name], raising=False)
    monkeypatch.setenv("WARMPOOL_URI", "s3://models/llama")
    monkeypatch.setenv("WARMPOOL_INCLUDE", "*.safetensors,config.json")
    monkeypatch.setenv("WARMPOOL_SHA256", f"a.bin={HEX} b.bin={HEX}")
    monkeypatch.setenv("WARMPOOL_SIZE_LIMIT", "100Gi")
    monkeypatch.setenv("WARMPOOL_PART_SIZE", "8Mi")
    monkeypatch.setenv("WARMPOOL_REHASH", "true")
    monkeypatch.setenv("WARMPOOL_TERMINATION_LOG", "/tmp/t")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("POD_UID", "1234")
    config, termination = config_from([])
    assert config.include == ("*.safetensors", "config.json")
    assert config.sha256 == {"a.bin": HEX, "b.bin": HEX}
    assert config.size_limit == 100 * 1024**3 and config.part_size == 8 * 1024**2
    assert config.rehash and config.holder == "1234"
    assert config.s3_endpoint == "http://127.0.0.1:9000"
    assert config.cache_dir == Path("/var/cache/warmpool")
    assert termination == Path("/tmp/t")


def test_flags_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARMPOOL_URI", "s3://env/x")
    monkeypatch.setenv("WARMPOOL_CONCURRENCY", "3")
    config, _ = config_from(["--uri", "s3://flag/x", "--concurrency", "9", "--include", "a"])
    assert config.uri == "s3://flag/x" and config.concurrency == 9 and config.include == ("a",)


def test_bad_input_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARMPOOL_URI", raising=False)
    with pytest.raises(UsageError, match="--uri"):
        config_from([])
    with pytest.raises(UsageError, match="concurrency"):
        config_from(["--uri", "s3://b/p", "--concurrency", "0"])


def test_main_writes_a_one_line_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    termination = tmp_path / "termination-log"
    code = main(["--uri", "ftp://x/y", "--termination-log", str(termination)])
    assert code == 2
    line = termination.read_text()
    assert line.startswith("InvalidConfiguration: unsupported --uri scheme 'ftp'; use one of s3")
    assert line.count("\n") == 1
