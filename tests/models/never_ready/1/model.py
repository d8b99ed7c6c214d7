"""A Triton Python-backend model that never becomes ready: ``initialize`` raises.

It stands for a model whose weights are corrupt or whose runtime cannot start; Triton marks it
UNAVAILABLE with the error as the reason and (with ``--exit-on-error=false``) keeps serving.
"""

from __future__ import annotations

from typing import Any


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        raise RuntimeError("never_ready: this model fails to initialize on purpose")

    def execute(self, requests: list[Any]) -> list[Any]:  # pragma: no cover - never loaded
        raise RuntimeError("unreachable")
