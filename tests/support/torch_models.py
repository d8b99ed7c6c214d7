"""The torch test models, the way a pod gets them: weights produced by torch, stored in a REAL
S3 server, fetched by ``warmpool prefetch`` into the model repository Triton serves.

    repo = prefetched_repository(s3, ["torch_convnet", "tiny_lm"], tmp_path)
    with TritonServer(repo, extra_args=["--model-control-mode=explicit", ...]) as triton: ...

* ``tests/models/torch_convnet`` (a CNN: lazy safetensors weights, per-shape TorchScript tracing
  and freezing, the profiling executor) and ``tests/models/tiny_lm`` (a decoupled, streaming
  language model with the vLLM backend's interface and metric names). Their model.py files
  write their own random weights (``--write-weights``), with Triton's venv python: torch lives
  there (hack/install-triton.sh), never in the project's venv.
* :func:`require_torch` skips (fails under ``CI=true``) when that venv has no torch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.components import component_unavailable
from support.s3 import S3Server
from support.triton import require_triton, triton_home

MODELS = Path(__file__).resolve().parents[1] / "models"
TORCH_MODELS = ("torch_convnet", "tiny_lm")
WEIGHTS = "model.safetensors"
CHECKSUMS = "SHA256SUMS"


def triton_python() -> Path:
    """The python of Triton's venv (``bin/python`` next to ``bin/tritonserver``)."""
    return triton_home() / "bin" / "python"


def require_torch() -> Path:
    """Triton's venv python, with torch and safetensors importable; skip/fail otherwise."""
    require_triton()
    python = triton_python()
    probe = subprocess.run(
        [str(python), "-c", "import torch, safetensors"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        component_unavailable(
            "torch", f"no torch in Triton's venv ({python}); run hack/install-triton.sh"
        )
    return python


def stage_model(model: str, directory: Path) -> Path:
    """A model directory as it is stored: config, code, weights made by torch, checksums."""
    target = directory / model
    (target / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy2(MODELS / model / "config.pbtxt", target / "config.pbtxt")
    shutil.copy2(MODELS / model / "1" / "model.py", target / "1" / "model.py")
    subprocess.run(
        [
            str(triton_python()),
            str(target / "1" / "model.py"),
            "--write-weights",
            str(target / "1" / WEIGHTS),
        ],
        check=True,
        capture_output=True,
    )
    lines = []
    for path in sorted(p for p in target.rglob("*") if p.is_file() and p.name != CHECKSUMS):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(target).as_posix()}\n")
    (target / CHECKSUMS).write_text("".join(lines))
    return target


def upload(s3: S3Server, bucket: str, model_dir: Path) -> str:
    """Upload a staged model under ``<bucket>/<model>/``; returns its s3:// URI."""
    client = s3.client()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        key = f"{model_dir.name}/{path.relative_to(model_dir).as_posix()}"
        client.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{model_dir.name}"


def prefetch(s3: S3Server, uri: str, cache: Path, dest: Path) -> None:
    """``warmpool prefetch`` (the init container's program) of ``uri`` to ``dest``, verified
    against the model's SHA256SUMS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WARMPOOL_"))}
    env.update(s3.env())
    result = subprocess.run(
        [
            sys.executable, "-m", "warmpool.prefetch.cli",
            "--uri", uri, "--s3-endpoint", s3.endpoint,
            "--cache-dir", str(cache), "--dest", str(dest),
            "--sha256-file", CHECKSUMS, "--termination-log", str(cache.parent / "termination"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(
            f"prefetch of {uri} failed ({result.returncode}): {result.stderr[-2000:]}"
        )


def prefetched_repository(s3: S3Server, models: list[str], workdir: Path) -> Path:
    """A Triton model repository holding ``models``, each staged, uploaded and prefetched."""
    bucket = "models-" + hashlib.sha1(str(workdir).encode()).hexdigest()[:12]
    s3.client().create_bucket(Bucket=bucket)
    repository = workdir / "repository"
    repository.mkdir(parents=True, exist_ok=True)
    for model in models:
        staged = stage_model(model, workdir / "store")
        uri = upload(s3, bucket, staged)
        prefetch(s3, uri, workdir / "cache", repository / model)
    return repository
