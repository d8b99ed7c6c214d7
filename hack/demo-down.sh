#!/usr/bin/env bash
# `make demo-down`: stop what hack/demo.sh started (operator, then the local cluster).
# The state directory (./.demo/) stays for its logs; `rm -rf .demo` removes it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${WARMPOOL_DEMO_STATE:-${ROOT}/.demo}
PYTHON=${PYTHON:-${ROOT}/.venv/bin/python}

if [[ -f ${STATE}/operator.pid ]]; then
  pid=$(cat "${STATE}/operator.pid")
  # Only a process that is still our operator (the pid may have been reused since).
  if grep -q "warmpool" "/proc/${pid}/cmdline" 2>/dev/null; then
    echo "stopping the operator (process group ${pid})"
    kill -TERM -- "-${pid}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-${pid}" 2>/dev/null || true
  fi
  rm -f "${STATE}/operator.pid"
fi

if [[ -d ${STATE} ]]; then
  "${PYTHON}" -m warmpool.envtest down --state "${STATE}"
else
  echo "nothing to stop (no ${STATE})"
fi
