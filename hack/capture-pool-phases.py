#!/usr/bin/env python3
"""Refresh tests/unit/chart/fixtures/pool-phases.json from a run of the e2e status test.

    .venv/bin/pytest -s tests/e2e/test_status_tools.py --basetemp=/tmp/phases
    .venv/bin/python hack/capture-pool-phases.py /tmp/phases

The e2e test writes every pool it judged, with the verdicts, to
`<basetemp>/cluster0/logs/pool-phases-*.json`; this keeps what the GitOps tools read (identity,
generation, spec, status) and drops managedFields, kopf's progress and the scaler's state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "tests" / "unit" / "chart" / "fixtures" / "pool-phases.json"
COMMENT = (
    "Pools read from the real apiserver by tests/e2e/test_status_tools.py (pytest -s prints the "
    "same verdicts); managedFields, kopf's progress and scalerState dropped, namespace "
    "normalised. Refresh: run it with --basetemp=DIR and hack/capture-pool-phases.py DIR."
)


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    kept: dict[str, Any] = {
        k: meta[k] for k in ("name", "generation", "creationTimestamp") if k in meta
    }
    kept["namespace"] = "ml"
    status = {
        k: v for k, v in (obj.get("status") or {}).items() if k not in ("kopf", "scalerState")
    }
    out = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": kept,
        "spec": obj["spec"],
    }
    if status:
        out["status"] = status
    return out


def main(basetemp: str) -> None:
    phases: dict[str, Any] = {}
    for path in sorted(Path(basetemp).glob("cluster*/logs/pool-phases-*.json")):
        for phase, row in json.loads(path.read_text()).items():
            phases[phase] = {"verdicts": row["verdicts"], "object": slim(row["object"])}
    if not phases:
        raise SystemExit(f"no pool-phases-*.json under {basetemp}")
    OUTPUT.write_text(json.dumps({"_comment": COMMENT, "phases": phases}, indent=2) + "\n")
    print(f"wrote {len(phases)} phases to {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1])
