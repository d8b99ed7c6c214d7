#!/usr/bin/env bash
# Regenerate the InferencePool CRD from the pydantic models (`warmpool crd`) into both places
# that carry it: crds/ (for `kubectl apply`) and the Helm chart (rendered by
# charts/warmpool/templates/crds.yaml). Both copies must stay byte-identical to `warmpool crd`;
# tests/unit/chart/test_crd_sync.py fails when they drift.
#
#   hack/sync-crds.sh           rewrite both files
#   hack/sync-crds.sh --check   exit 1 (and show the diff) when either file is stale
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WARMPOOL=${WARMPOOL_BIN:-${ROOT}/.venv/bin/warmpool}
TARGETS=(
  "${ROOT}/crds/warmpool.dev_inferencepools.yaml"
  "${ROOT}/charts/warmpool/files/crds/warmpool.dev_inferencepools.yaml"
)

generated=$(mktemp)
trap 'rm -f "${generated}"' EXIT
"${WARMPOOL}" crd >"${generated}"

if [[ ${1:-} == --check ]]; then
  stale=0
  for target in "${TARGETS[@]}"; do
    if ! cmp -s "${generated}" "${target}"; then
      echo "stale: ${target#"${ROOT}"/} (run hack/sync-crds.sh)" >&2
      diff -u "${target}" "${generated}" >&2 || true
      stale=1
    fi
  done
  exit "${stale}"
fi

for target in "${TARGETS[@]}"; do
  mkdir -p "$(dirname "${target}")"
  cp "${generated}" "${target}"
  echo "wrote ${target#"${ROOT}"/}"
done
