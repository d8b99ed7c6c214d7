#!/usr/bin/env bash
# `make demo`: warmpool on a real local Kubernetes control plane, no Docker needed.
#
#   1. builds (or reuses) the binaries: hack/build-binaries.sh
#   2. starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK in
#      the background with two fake 8-GPU H100 nodes (state in ./.demo/, admin
#      kubeconfig at ./.demo/kubeconfig)
#   3. when the operator exists (`warmpool operator`, crds/, examples/): installs the
#      CRD, runs the operator in the background, applies examples/*.yaml and watches
#      the pools for WARMPOOL_DEMO_WATCH_SECONDS (default 60)
#
# Stop everything with `make demo-down` (hack/demo-down.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"
STATE=${WARMPOOL_DEMO_STATE:-${ROOT}/.demo}
PYTHON=${PYTHON:-${ROOT}/.venv/bin/python}
WATCH_SECONDS=${WARMPOOL_DEMO_WATCH_SECONDS:-60}
GPU_NODES=${WARMPOOL_DEMO_GPU_NODES:-2}

say() { printf '\n==> %s\n' "$*"; }
trap 'echo "demo.sh failed (see above); the cluster may still run: make demo-down" >&2' ERR

if [[ ! -x ${PYTHON} ]]; then
  echo "no Python at ${PYTHON}: create the venv first (python3.11 -m venv .venv &&" \
    ".venv/bin/pip install -e '.[test]'), or set PYTHON" >&2
  exit 1
fi

say "building or reusing the control-plane binaries (hack/build-binaries.sh)"
hack/build-binaries.sh

say "starting the local cluster (state in ${STATE})"
"${PYTHON}" -m warmpool.envtest up --state "${STATE}" --gpu-nodes "${GPU_NODES}"

export KUBECONFIG=${STATE}/kubeconfig
KUBECTL=$("${PYTHON}" -c 'from warmpool.envtest import find_binary; print(find_binary("kubectl"))')
"${KUBECTL}" get nodes -L nvidia.com/gpu.product -L nvidia.com/gpu.count

operator_ready() {
  "${PYTHON}" -c 'import warmpool.controller.cli' 2>/dev/null &&
    compgen -G "crds/*.yaml" >/dev/null
}

if operator_ready; then
  say "installing the InferencePool CRD"
  "${KUBECTL}" apply -f crds/
  "${KUBECTL}" wait --for condition=established --timeout=60s crd/inferencepools.warmpool.dev

  say "running the operator in the background (log: ${STATE}/operator.log)"
  if [[ -f ${STATE}/operator.pid ]] && kill -0 "$(cat "${STATE}/operator.pid")" 2>/dev/null; then
    echo "operator already running (pid $(cat "${STATE}/operator.pid"))"
  else
    # Its own session, so demo-down can stop it (and only it) by process group.
    setsid "${PYTHON}" -m warmpool.cli operator >"${STATE}/operator.log" 2>&1 </dev/null &
    echo $! >"${STATE}/operator.pid"
  fi

  if compgen -G "examples/*.yaml" >/dev/null; then
    say "applying examples/*.yaml"
    # kubectl apply does not create the namespaces the examples name: create them first.
    "${PYTHON}" - <<'PY' | while read -r ns; do
import pathlib, yaml
names = set()
for path in sorted(pathlib.Path("examples").glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict):
            names.add((doc.get("metadata") or {}).get("namespace") or "")
print("\n".join(sorted(n for n in names if n)))
PY
      "${KUBECTL}" create namespace "${ns}" --dry-run=client -o yaml | "${KUBECTL}" apply -f -
    done
    "${KUBECTL}" apply -f examples/
    say "watching the pools for ${WATCH_SECONDS}s (kubectl get inferencepools -A -w)"
    timeout "${WATCH_SECONDS}" "${KUBECTL}" get inferencepools -A -w || true
  fi
else
  say "the operator is not there yet (warmpool.controller.cli, crds/*.yaml): cluster only"
fi

cat <<EOF

The cluster keeps running in the background.
  export KUBECONFIG=${KUBECONFIG}
  ${KUBECTL} get nodes,pods -A
  logs: ${STATE}/cluster/logs/ (operator: ${STATE}/operator.log)
Stop it with: make demo-down   (or hack/demo-down.sh)
EOF
