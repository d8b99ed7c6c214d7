"""A Triton Python-backend model whose latency genuinely never settles.

Nothing here sleeps. Every request appends a block of keys derived from its input to an
unbounded history (a leak, like a KV cache that is never evicted) and then scores a set of
queries derived from the input against the WHOLE history. Request ``n`` therefore does ``n``
blocks of real matrix work: latency grows linearly with the number of requests served, so the
recent latency never comes back within a small tolerance of the best seen before it.

Memory grows by ``ROWS_PER_REQUEST * DIM * 4`` bytes (2 MiB) per request; tests bound the
number of requests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

DIM = 512
ROWS_PER_REQUEST = 1024
QUERIES = 128


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.history: list[np.ndarray] = []
        rng = np.random.default_rng(7)
        self.key_basis = rng.standard_normal((ROWS_PER_REQUEST, DIM)).astype(np.float32)
        self.query_basis = rng.standard_normal((DIM, QUERIES)).astype(np.float32)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            feature = x.reshape(-1, x.shape[-1]).mean(axis=0).astype(np.float32)
            self.history.append(self.key_basis * feature)
            queries = self.query_basis * feature[:, None]
            best = np.full(QUERIES, -np.inf, dtype=np.float32)
            for keys in self.history:
                best = np.maximum(best, (keys @ queries).max(axis=0))
            out = pb_utils.Tensor("OUTPUT0", best)
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
