"""The GitOps tools' own verdicts on objects: kstatus, Argo CD's Lua health check, Flux's CEL.

`warmpool-health` (hack/health, built by hack/build-binaries.sh) runs the tools' code: the
kstatus library (sigs.k8s.io/cli-utils), the Lua interpreter Argo CD embeds (gopher-lua, set up
as Argo CD sets up a configured health check) and Flux's healthCheckExprs evaluator
(github.com/fluxcd/pkg/runtime/cel). The binary is found by the hash of its sources, so a test
never reads verdicts from a harness older than hack/health.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.components import component_unavailable
from warmpool.envtest.binaries import cache_dir

ROOT = Path(__file__).resolve().parents[2]
HEALTH_MODULE = ROOT / "hack" / "health"
HEALTH_FILES = ROOT / "charts" / "warmpool" / "files" / "health"
ARGOCD_LUA = HEALTH_FILES / "argocd-health.lua"
FLUX_EXPRS = HEALTH_FILES / "flux-health-check-exprs.yaml"
#: The tools, in the order the verdict tables list them.
TOOLS = ("kstatus", "argocd", "flux")


@dataclass(frozen=True)
class Verdict:
    """One tool's verdict on one object."""

    name: str
    status: str
    message: str
    error: str = ""


def harness_version() -> str:
    """The cache key hack/build-binaries.sh builds the harness under (its sources' hash)."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((HEALTH_MODULE / name).read_bytes())
    return digest.hexdigest()[:12]


def find_harness() -> Path:
    """$WARMPOOL_HEALTH, else the cached build of the current sources; unavailable otherwise."""
    default = cache_dir() / "bin" / f"warmpool-health-{harness_version()}" / "warmpool-health"
    path = Path(os.environ.get("WARMPOOL_HEALTH", default))
    if not os.access(path, os.X_OK):
        component_unavailable(
            "warmpool-health", f"no executable at {path} (hack/build-binaries.sh builds it)"
        )
    return path


def judge(harness: Path, tool: str, objects: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """Every object's verdict from `tool` (kstatus, argocd or flux)."""
    args = {"kstatus": [], "argocd": [str(ARGOCD_LUA)], "flux": [str(FLUX_EXPRS)]}[tool]
    done = subprocess.run(
        [str(harness), tool, *args],
        input=json.dumps(list(objects)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"warmpool-health {tool} failed: {done.stderr.strip()}")
    return [Verdict(**item) for item in json.loads(done.stdout)]


def verdicts(harness: Path, objects: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """{object name: {tool: status}} from every tool."""
    table: dict[str, dict[str, str]] = {}
    for tool in TOOLS:
        for verdict in judge(harness, tool, objects):
            table.setdefault(verdict.name, {})[tool] = verdict.status
    return table
