"""Hop-by-hop headers are dropped, end-to-end headers are kept (RFC 9110 7.6.1)."""

from __future__ import annotations

from multidict import CIMultiDict

from warmpool.activator.http_proxy import end_to_end_headers


def test_hop_by_hop_and_connection_named_headers_are_dropped() -> None:
    headers = CIMultiDict(
        [
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("X-Secret-Hop", "1"),
            ("Content-Type", "application/json"),
            ("Inference-Header-Content-Length", "42"),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
        ]
    )
    out = end_to_end_headers(headers)
    assert sorted(name for name, _ in out.items()) == sorted(
        ["Content-Type", "Inference-Header-Content-Length", "X-Multi", "X-Multi"]
    )
    assert out.getall("X-Multi") == ["a", "b"]
