#!/usr/bin/env bash
# Installs everything a fresh machine needs to run warmpool's tests and demo:
# the Python venv with the package, then each real component (cached outside the clone,
# keyed by version, rebuilt only when missing). Idempotent; safe to rerun.
#
#   hack/setup.sh            everything
#   hack/setup.sh python     only the venv
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
what="${1:-all}"

log() { printf '\n==> %s\n' "$*"; }

setup_python() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  log "installing warmpool and its test dependencies into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[test]'
}

timed() {
  local name=$1; shift
  local start=$SECONDS
  log "$name"
  "$@"
  log "$name took $((SECONDS - start)) s"
}

setup_python
[[ "$what" == python ]] && exit 0

# Each component has its own script; they share the cache ${WARMPOOL_CACHE:-~/.cache/warmpool}.
timed "control plane, kwok, helm (hack/build-binaries.sh)" hack/build-binaries.sh
timed "real node: kubelet, kube-proxy, containerd, runc, CNI (hack/build-node.sh)" hack/build-node.sh
timed "S3 server and s5cmd (hack/build-s3.sh)" hack/build-s3.sh
timed "GCS emulator (hack/build-gcs.sh)" hack/build-gcs.sh
timed "Triton (hack/install-triton.sh)" hack/install-triton.sh
timed "Prometheus (hack/install-prometheus.sh)" hack/install-prometheus.sh
timed "monitoring CRDs for chart validation (hack/fetch-monitoring-crds.sh)" hack/fetch-monitoring-crds.sh
timed "Gateway API Inference Extension CRD (hack/fetch-gateway-inference-crds.sh)" hack/fetch-gateway-inference-crds.sh
timed "container images: pause, agent, operator, CPU Triton (hack/build-images.sh)" hack/build-images.sh
