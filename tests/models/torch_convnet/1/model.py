"""A torch CNN served by Triton's Python backend (CPU) whose first requests are slow for real.

Nothing here imitates a warm-up curve; the slow first requests are torch's own work, the same
work a TorchScript/PyTorch server does on its first requests after it reports READY:

1. Lazy weights: ``initialize`` only checks that ``model.safetensors`` is there; the first
   request reads it (safetensors, memory-mapped) and builds the module.
2. Per-shape specialisation: the first request of each input shape traces the network with
   ``torch.jit.trace``, freezes it (``torch.jit.freeze``: weights folded into the graph) and runs
   ``torch.jit.optimize_for_inference`` (conv/batch-norm folding, oneDNN weight pre-packing).
3. The profiling executor: TorchScript's first runs of a graph record tensor shapes and types,
   then it compiles an optimised, shape-specialised plan; oneDNN creates its primitives for
   each shape on first use.

Steady state: one frozen, optimised plan per shape. Weights come from
``python model.py --write-weights <file> [--seed N]`` (random, produced by torch).
"""

from __future__ import annotations

import argparse
import os
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


class ConvNet(nn.Module):
    """A small residual CNN: 3x64x64 images -> 10 logits."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.block1 = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width),
        )  # fmt: skip
        self.down = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width),
        )  # fmt: skip
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block1(x))
        x = self.down(x)
        x = torch.relu(x + self.block2(x))
        return self.head(x.mean(dim=(2, 3)))


def write_weights(path: Path, seed: int) -> None:
    """Random weights (and batch-norm statistics) produced by torch, saved as safetensors."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    net = ConvNet()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path))


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        # One intra-op thread unless told otherwise: test machines are small and shared.
        torch.set_num_threads(int(os.environ.get("WARMPOOL_TORCH_THREADS", "1")))
        self.weights = Path(args["model_repository"]) / args["model_version"] / WEIGHTS
        if not self.weights.is_file():
            raise pb_utils.TritonModelException(f"no weights at {self.weights}")
        self.net: ConvNet | None = None
        self.plans: dict[tuple[int, ...], Any] = {}

    def _load(self) -> ConvNet:
        from safetensors.torch import load_file

        net = ConvNet()
        net.load_state_dict(load_file(str(self.weights)))
        return net.eval()

    def _plan(self, shape: tuple[int, ...]) -> Any:
        plan = self.plans.get(shape)
        if plan is None:
            if self.net is None:
                self.net = self._load()
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated
                traced = torch.jit.trace(self.net, torch.zeros(shape))
                plan = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            self.plans[shape] = plan
            # Tests read this line: the expensive specialisation happens once per shape.
            pb_utils.Logger.log_info(f"torch_convnet: specialised a plan for shape {list(shape)}")
        return plan

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            x = torch.from_numpy(pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy())
            with torch.no_grad():
                y = self._plan(tuple(x.shape))(x)
            out = pb_utils.Tensor("OUTPUT0", y.numpy())
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="write random weights for torch_convnet")
    parser.add_argument("--write-weights", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    write_weights(options.write_weights, options.seed)
