#!/usr/bin/env bash
# `make demo-down`: stop what hack/demo.sh started and leave nothing behind. The operator,
# the activator, the pools, S3 and Prometheus are pods of the demo's node: stopping the node
# (`python -m warmpool.envtest down`) stops them with it and undoes what the node changed on the
# host (processes, cgroups, sysctls, mounts, network namespaces). The state directory goes too,
# unless WARMPOOL_DEMO_KEEP_STATE=1 (keep it for its logs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${WARMPOOL_DEMO_STATE:-${ROOT}/.demo}
PYTHON=${PYTHON:-${ROOT}/.venv/bin/python}

if [[ ! -d ${STATE} ]]; then
  echo "nothing to stop (no ${STATE})"
  exit 0
fi
"${PYTHON}" -m warmpool.envtest down --state "${STATE}"
if [[ ${WARMPOOL_DEMO_KEEP_STATE:-0} != 1 ]]; then
  rm -rf "${STATE}"
  echo "removed ${STATE}"
fi
