"""Byte-range arithmetic for parallel and resumed downloads (pure)."""

from __future__ import annotations

Range = tuple[int, int]
"""Half-open byte range ``[start, end)``."""


def merge(ranges: list[Range]) -> list[Range]:
    """Sort and coalesce overlapping or touching ranges."""
    merged: list[Range] = []
    for start, end in sorted(ranges):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def missing(size: int, done: list[Range]) -> list[Range]:
    """The parts of ``[0, size)`` not covered by ``done``."""
    gaps: list[Range] = []
    cursor = 0
    for start, end in merge(done):
        if start > cursor:
            gaps.append((cursor, min(start, size)))
        cursor = max(cursor, end)
    if cursor < size:
        gaps.append((cursor, size))
    return [gap for gap in gaps if gap[1] > gap[0]]


def split(ranges: list[Range], part_size: int) -> list[Range]:
    """Cut each range into parts of at most ``part_size`` bytes, in order."""
    parts: list[Range] = []
    for start, end in ranges:
        for offset in range(start, end, part_size):
            parts.append((offset, min(offset + part_size, end)))
    return parts
