"""A Triton Python-backend model whose first requests are genuinely slower than later ones.

Nothing here sleeps. The model is cold because a warm instance has already done real work that
a cold one must do on its first requests, the CPU analogue of what makes a GPU server slow
after it reports ready (weights first touched, kernels JIT-compiled, kernels autotuned):

1. Lazy weight materialisation (first request only): the ``DIM x DIM`` weight matrix is built
   from a seed and orthonormalised with a QR decomposition, as a server that converts or pages
   in weights on first touch.
2. Per-shape kernel compilation: for every input shape and tiling candidate the model generates
   Python source for a specialised, unrolled kernel (one statement per output tile) and compiles
   it with ``compile()``: a real JIT step whose cost grows with the number of tiles.
3. Autotuning: for each new input shape the next ``len(TILE_CANDIDATES)`` requests each
   benchmark one tiling candidate ``TUNING_REPEATS`` times (small tiles first, which are
   genuinely slow: many small matmuls); afterwards the fastest candidate is used for every
   request of that shape, as cuDNN or ``torch.compile`` autotuning do.

Steady state: one compiled kernel with the best tiling (typically a single matmul) + ``tanh``.
So latency falls over the first ~``len(TILE_CANDIDATES) + 1`` requests, then is flat.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

DIM = 1024
# Output-column tile widths tried by the autotuner, slowest (most tiles) first.
TILE_CANDIDATES = (1, 4, 16, 64, 256, 1024)
# Each candidate is benchmarked this many times, as real autotuners repeat each config.
TUNING_REPEATS = 10

Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _generate_kernel_source(tile: int) -> str:
    """Source of a kernel computing ``x @ w`` as ``DIM // tile`` unrolled tile matmuls."""
    lines = ["def kernel(x, w):", "    out = np.empty((x.shape[0], w.shape[1]), dtype=np.float32)"]
    for start in range(0, DIM, tile):
        stop = start + tile
        lines.append(f"    out[:, {start}:{stop}] = x @ w[:, {start}:{stop}]")
    lines.append("    return out")
    return "\n".join(lines)


def _compile_kernel(tile: int) -> Kernel:
    namespace: dict[str, Any] = {"np": np}
    exec(compile(_generate_kernel_source(tile), f"<kernel tile={tile}>", "exec"), namespace)
    kernel: Kernel = namespace["kernel"]
    return kernel


class _ShapeTuner:
    """Autotuning state for one input shape: candidates tried so far and the winner."""

    def __init__(self) -> None:
        self.timings: dict[int, float] = {}
        self.best: Kernel | None = None

    def run(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Run the tuned kernel, or benchmark the next candidate if tuning is not done."""
        if self.best is not None:
            return self.best(x, weights)
        tile = TILE_CANDIDATES[len(self.timings)]
        kernel = _compile_kernel(tile)
        started = time.perf_counter()
        for _ in range(TUNING_REPEATS):
            result = kernel(x, weights)
        self.timings[tile] = (time.perf_counter() - started) / TUNING_REPEATS
        if len(self.timings) == len(TILE_CANDIDATES):
            winner = min(self.timings, key=self.timings.__getitem__)
            self.best = _compile_kernel(winner)
        return result


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        # Deliberately nothing heavy here: like a real server, the model reports READY long
        # before it is fast.
        self.weights: np.ndarray | None = None
        self.tuners: dict[tuple[int, ...], _ShapeTuner] = {}

    def _materialise_weights(self) -> np.ndarray:
        rng = np.random.default_rng(20240701)
        raw = rng.standard_normal((DIM, DIM))
        q, _ = np.linalg.qr(raw)
        return q.astype(np.float32)

    def execute(self, requests: list[Any]) -> list[Any]:
        if self.weights is None:
            self.weights = self._materialise_weights()
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            tuner = self.tuners.setdefault(tuple(x.shape), _ShapeTuner())
            y = np.tanh(tuner.run(x, self.weights))
            out = pb_utils.Tensor("OUTPUT0", y.astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
