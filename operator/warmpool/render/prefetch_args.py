"""The command line of `warmpool prefetch` for a pool (pure).

The flags are exactly those of `warmpool.prefetch.cli` (docs/prefetch.md). Credentials never
appear here: they reach the program as environment from spec.model.credentialsSecret.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from warmpool.api.resource import InferencePool
from warmpool.render.common import Obj
from warmpool.render.config import RenderConfig

PREFETCH_COMMAND = ["warmpool", "prefetch"]
TERMINATION_LOG = "/dev/termination-log"

# Sizes `warmpool prefetch --size-limit` reads as Kubernetes does; any other quantity form
# (milli, exponent, Pi/Ei) is converted to bytes here.
_PLAIN_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?([KMGT]i|[kMGT])?$")
_QUANTITY = re.compile(r"^([0-9.]+)(?:([eE][+-]?[0-9]+)|([KMGTPE]i|[numkMGTPE]))?$")
_FACTORS = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def size_flag(quantity: str | int) -> str:
    """A cache budget (a Kubernetes quantity) in a form `--size-limit` parses exactly."""
    text = str(quantity).lstrip("+")
    if _PLAIN_SIZE.match(text):
        return text
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"not a quantity: {quantity!r}")
    number, exponent, suffix = match.groups()
    value = float(number + (exponent or "")) * _FACTORS[suffix or ""]
    return str(int(-(-value // 1)))  # ceil: a budget is never rounded down to zero


def prefetch_args(
    pool: InferencePool,
    config: RenderConfig,
    *,
    source_uri: str,
    dest: str | None,
    ref_dir: str | None = None,
) -> list[str]:
    """Arguments after `warmpool prefetch`: what to fetch, how to verify it, where to put it.

    `dest` is the model's path in Triton's repository (a symlink into the cache); None only
    fills the cache (pre-pull), which then names `ref_dir`, a directory in its own volume for
    the reference that keeps the copy from eviction while the pod lives.
    """
    model = pool.spec.model
    cache = pool.spec.cache
    args = [f"--uri={source_uri}"]
    if model.revision:
        args.append(f"--revision={model.revision}")
    args += [f"--include={pattern}" for pattern in model.include]
    args += [f"--sha256={path}={digest}" for path, digest in sorted(model.sha256.items())]
    if model.sha256_file:
        args.append(f"--sha256-file={model.sha256_file}")
    scheme = urlsplit(model.uri).scheme
    if scheme == "s3":
        if model.endpoint:
            args.append(f"--s3-endpoint={model.endpoint}")
        if model.region:
            args.append(f"--s3-region={model.region}")
    args.append(f"--cache-dir={config.cache_mount_path}")
    if dest is not None:
        args.append(f"--dest={dest}")
    if ref_dir is not None:
        args.append(f"--ref-dir={ref_dir}")
    if cache.size_limit is not None and cache.kind != "ephemeral":
        # An emptyDir's sizeLimit is enforced by the kubelet; on shared caches the prefetcher
        # evicts least recently used models beyond the budget itself.
        args.append(f"--size-limit={size_flag(cache.size_limit)}")
    args.append(f"--termination-log={TERMINATION_LOG}")
    return args


def prefetch_env(pool: InferencePool) -> list[Obj]:
    """Environment of the prefetcher: its holder identity and a hub mirror, never secrets."""
    env: list[Obj] = [
        {
            "name": "POD_UID",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.uid"}},
        }
    ]
    model = pool.spec.model
    if model.endpoint and urlsplit(model.uri).scheme == "hf":
        env.append({"name": "HF_ENDPOINT", "value": model.endpoint})
    return env


def credentials_env_from(pool: InferencePool) -> list[Obj]:
    """The credentials Secret, whole, as environment (envFrom): values never enter a manifest."""
    secret = pool.spec.model.credentials_secret
    return [{"secretRef": {"name": secret}}] if secret else []
