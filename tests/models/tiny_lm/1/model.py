"""A small GPT-style language model (torch, CPU) served as a decoupled (streaming) Triton model.

It really generates token by token: a 4-layer decoder-only transformer over printable ASCII
(95 tokens), prefill of the prompt, then one decode step per token with a KV cache, each token
sent as its own response the moment it exists (``stream: true``), the last one flagged final.
The weights are random (produced by torch, ``python model.py --write-weights <file>``): the text
is gibberish, the work is real.

Its interface is the vLLM backend's: ``text_input`` (BYTES), ``stream`` (BOOL, optional),
``sampling_parameters`` (JSON BYTES, optional: ``max_tokens``, ``temperature``, ``seed``; the
rest is ignored) in, ``text_output`` out. Requests queue for one generation thread (as an engine's
scheduler would), which is what makes "waiting requests" real.

Metrics (``pb_utils.MetricFamily``, labels model and version), named as the vLLM backend names
them: ``vllm:num_requests_waiting`` and ``vllm:num_requests_running`` (gauges),
``vllm:gpu_cache_usage_perc`` (gauge: KV-cache tokens held by running requests over the cache's
capacity, ``KV_CACHE_TOKENS``), ``vllm:prompt_tokens_total`` and ``vllm:generation_tokens_total``
(counters), ``vllm:time_to_first_token_seconds`` (histogram where this Triton supports them).

Why the first requests are slow (nothing imitates it): the weights are read from safetensors on
the first request; the prompt (prefill) runs through a TorchScript graph traced, frozen and
optimised for its length bucket (prompts are padded to ``PREFILL_BUCKETS``, as engines that
compile graphs bucket their prefill lengths) the first time a prompt of that bucket arrives,
then specialised by the profiling executor on its first runs; torch's first calls of each
decode operator and shape (oneDNN/MKL initialisation, allocator growth) happen on the first
tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:  # only inside Triton's Python-backend stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # run as a script: writing weights
    pb_utils = None

WEIGHTS = "model.safetensors"
FIRST_CHAR, VOCAB = 32, 95  # printable ASCII
MAX_LEN = 512
KV_CACHE_TOKENS = 4096
DEFAULT_MAX_TOKENS = 16
PREFILL_BUCKETS = (16, 32, 64, 128, 256)
PAD = 0
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0]


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        t, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(dim, dim=-1)
        q, k, v = (z.view(t, self.heads, dim // self.heads).transpose(0, 1) for z in (q, k, v))
        if cache is not None:
            k = torch.cat([cache[0], k], dim=1)
            v = torch.cat([cache[1], v], dim=1)
        # Causal within the new tokens; every cached token is visible.
        attn = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=cache is None)
        x = x + self.proj(attn.transpose(0, 1).reshape(t, dim))
        return x + self.mlp(self.norm2(x)), (k, v)


class TinyLM(nn.Module):
    def __init__(self, dim: int = 256, heads: int = 4, layers: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.pos = nn.Embedding(MAX_LEN, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, VOCAB)

    def forward(
        self, tokens: torch.Tensor, start: int, caches: list[Any] | None
    ) -> tuple[torch.Tensor, list[Any]]:
        """Logits of the last position, and the updated per-layer KV caches."""
        x = self.embed(tokens) + self.pos(torch.arange(start, start + len(tokens)))
        new = []
        for index, block in enumerate(self.blocks):
            x, kv = block(x, None if caches is None else caches[index])
            new.append(kv)
        return self.out(self.norm(x[-1])), new


class Prefill(nn.Module):
    """The prompt pass, traceable: padded tokens in, every position's logits and the
    per-layer K/V out (causal attention: padding after the prompt does not change it)."""

    def __init__(self, lm: TinyLM) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        lm = self.lm
        x = lm.embed(tokens) + lm.pos(torch.arange(tokens.shape[0]))
        kvs: list[torch.Tensor] = []
        for block in lm.blocks:
            x, (k, v) = block(x, None)
            kvs += [k, v]
        return lm.out(lm.norm(x)), tuple(kvs)


def bucket(length: int) -> int:
    return next((b for b in PREFILL_BUCKETS if b >= length), PREFILL_BUCKETS[-1])


def encode(text: str) -> list[int]:
    return [min(max(ord(c) - FIRST_CHAR, 0), VOCAB - 1) for c in text] or [0]


def write_weights(path: Path, seed: int) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    state = {k: v.contiguous() for k, v in TinyLM().state_dict().items()}
    save_file(state, str(path))


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        torch.set_num_threads(int(os.environ.get("WARMPOOL_TORCH_THREADS", "1")))
        self.weights = Path(args["model_repository"]) / args["model_version"] / WEIGHTS
        if not self.weights.is_file():
            raise pb_utils.TritonModelException(f"no weights at {self.weights}")
        self.lm: TinyLM | None = None
        self.prefill: dict[int, Any] = {}
        self.pending: queue.Queue[Any] = queue.Queue()
        self.kv_tokens = 0
        self._metrics(args["model_name"], args["model_version"])
        self.worker = threading.Thread(target=self._serve, daemon=True)
        self.worker.start()

    def _metrics(self, model: str, version: str) -> None:
        labels = {"model": model, "version": version}
        family = pb_utils.MetricFamily
        self.families = [
            family("vllm:num_requests_waiting", "Requests waiting.", family.GAUGE),
            family("vllm:num_requests_running", "Requests running.", family.GAUGE),
            family("vllm:gpu_cache_usage_perc", "KV-cache usage, 1 = 100%.", family.GAUGE),
            family("vllm:prompt_tokens_total", "Prefill tokens.", family.COUNTER),
            family("vllm:generation_tokens_total", "Generated tokens.", family.COUNTER),
        ]
        waiting, running, cache, prompt, generated = (
            f.Metric(labels=labels) for f in self.families
        )
        self.m_waiting, self.m_running, self.m_cache = waiting, running, cache
        self.m_prompt, self.m_generated = prompt, generated
        self.m_ttft = None
        if hasattr(family, "HISTOGRAM"):
            ttft = family(
                "vllm:time_to_first_token_seconds", "Time to first token.", family.HISTOGRAM
            )
            self.families.append(ttft)
            self.m_ttft = ttft.Metric(labels=labels, buckets=TTFT_BUCKETS)

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            self.pending.put((request, time.perf_counter()))
        self.m_waiting.set(self.pending.qsize())
        return None

    def _serve(self) -> None:
        while True:
            item = self.pending.get()
            if item is None:
                return
            self.m_waiting.set(self.pending.qsize())
            request, arrived = item
            sender = request.get_response_sender()
            try:
                self._generate(request, sender, arrived)
            except Exception as error:  # answer the client, keep serving others
                sender.send(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error))),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
                )

    def _generate(self, request: Any, sender: Any, arrived: float) -> None:
        prompt = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
        text = prompt.decode("utf-8", "replace") if isinstance(prompt, bytes) else str(prompt)
        stream_input = pb_utils.get_input_tensor_by_name(request, "stream")
        stream = bool(stream_input.as_numpy().reshape(-1)[0]) if stream_input is not None else False
        params: dict[str, Any] = {}
        raw = pb_utils.get_input_tensor_by_name(request, "sampling_parameters")
        if raw is not None:
            params = json.loads(raw.as_numpy().reshape(-1)[0])
        max_tokens = int(params.get("max_tokens", DEFAULT_MAX_TOKENS))
        temperature = float(params.get("temperature", 1.0))
        generator = torch.Generator().manual_seed(int(params.get("seed", 0)))
        tokens = encode(text)[-min(MAX_LEN - max_tokens, PREFILL_BUCKETS[-1]) :]
        held = len(tokens) + max_tokens
        self.kv_tokens += held
        self.m_running.set(1)
        self.m_cache.set(min(self.kv_tokens / KV_CACHE_TOKENS, 1.0))
        self.m_prompt.increment(len(tokens))
        pieces: list[str] = []
        try:
            with torch.no_grad():
                logits, caches = self._prefill(tokens)
                position = len(tokens)
                for index in range(max_tokens):
                    if request.is_cancelled():
                        break
                    if temperature <= 0:
                        token = int(torch.argmax(logits))
                    else:
                        probs = torch.softmax(logits / temperature, dim=-1)
                        token = int(torch.multinomial(probs, 1, generator=generator))
                    piece = chr(FIRST_CHAR + token)
                    if index == 0 and self.m_ttft is not None:
                        self.m_ttft.observe(time.perf_counter() - arrived)
                    self.m_generated.increment(1)
                    if stream:
                        self._send(sender, piece)
                    else:
                        pieces.append(piece)
                    if position >= MAX_LEN:
                        break
                    assert self.lm is not None
                    logits, caches = self.lm(torch.tensor([token]), position, caches)
                    position += 1
        finally:
            self.kv_tokens -= held
            self.m_running.set(0)
            self.m_cache.set(self.kv_tokens / KV_CACHE_TOKENS)
        if not stream:
            self._send(sender, "".join(pieces))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def _prefill(self, tokens: list[int]) -> tuple[torch.Tensor, list[Any]]:
        """Logits after the prompt and its KV caches, through the bucket's traced graph."""
        if self.lm is None:
            from safetensors.torch import load_file

            lm = TinyLM()
            lm.load_state_dict(load_file(str(self.weights)))
            self.lm = lm.eval()
        size = bucket(len(tokens))
        graph = self.prefill.get(size)
        if graph is None:
            example = torch.zeros(size, dtype=torch.long)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated
                traced = torch.jit.trace(Prefill(self.lm).eval(), example)
                graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            self.prefill[size] = graph
            pb_utils.Logger.log_info(f"tiny_lm: specialised the prefill graph for {size} tokens")
        padded = torch.tensor(tokens + [PAD] * (size - len(tokens)))
        logits, kvs = graph(padded)
        n = len(tokens)
        caches = [(kvs[i][:, :n], kvs[i + 1][:, :n]) for i in range(0, len(kvs), 2)]
        return logits[n - 1], caches

    @staticmethod
    def _send(sender: Any, text: str) -> None:
        import numpy as np

        out = pb_utils.Tensor("text_output", np.array([text.encode()], dtype=np.object_))
        sender.send(pb_utils.InferenceResponse(output_tensors=[out]))

    def finalize(self) -> None:
        self.pending.put(None)
        self.worker.join(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="write random weights for tiny_lm")
    parser.add_argument("--write-weights", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=11)
    options = parser.parse_args()
    write_weights(options.write_weights, options.seed)
