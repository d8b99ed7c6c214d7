"""Routing: which pool a Host/:authority or X-Warmpool-Pool header names."""

from __future__ import annotations

import pytest

from warmpool.activator.routing import PoolKey, RouteError, resolve, strip_port

LLAMA_ML = PoolKey("ml", "llama")
LLAMA_DEV = PoolKey("dev", "llama")
BERT_ML = PoolKey("ml", "bert")


@pytest.mark.parametrize(
    "host",
    [
        "llama.ml",
        "llama.ml:8000",
        "llama.ml.svc",
        "llama.ml.svc:8001",
        "llama.ml.svc.cluster.local",
        "LLAMA.ML.SVC.CLUSTER.LOCAL.",
        "llama.ml.svc.corp.example:8000",
    ],
)
def test_qualified_names_resolve(host: str) -> None:
    assert resolve(host, None, [LLAMA_ML, LLAMA_DEV, BERT_ML]) == LLAMA_ML


def test_short_name_resolves_when_unique() -> None:
    assert resolve("bert:8000", None, [LLAMA_ML, LLAMA_DEV, BERT_ML]) == BERT_ML


def test_short_name_is_refused_when_ambiguous() -> None:
    route = resolve("llama", None, [LLAMA_ML, LLAMA_DEV, BERT_ML])
    assert isinstance(route, RouteError)
    assert "ambiguous" in route.message
    assert "dev, ml" in route.message


def test_unknown_pool_is_refused() -> None:
    route = resolve("gpt.ml", None, [LLAMA_ML])
    assert isinstance(route, RouteError)
    assert "ml/gpt" in route.message


def test_header_wins_over_host() -> None:
    assert resolve("llama.ml", "dev/llama", [LLAMA_ML, LLAMA_DEV]) == LLAMA_DEV


@pytest.mark.parametrize("value", ["llama", "/llama", "ml/", "a/b/c"])
def test_malformed_header_is_refused(value: str) -> None:
    assert isinstance(resolve("llama.ml", value, [LLAMA_ML]), RouteError)


@pytest.mark.parametrize("host", ["10.0.0.7:8000", "llama.ml.cluster.local", "[::1]:8000"])
def test_addresses_and_foreign_names_are_refused(host: str) -> None:
    assert isinstance(resolve(host, None, [LLAMA_ML]), RouteError)


def test_missing_host_is_refused() -> None:
    assert isinstance(resolve(None, None, [LLAMA_ML]), RouteError)


def test_strip_port() -> None:
    assert strip_port("Llama.ML:8000") == "llama.ml"
    assert strip_port("[fe80::1]:8001") == "[fe80::1]"
    assert strip_port("llama.ml.") == "llama.ml"
