#!/usr/bin/env bash
# Fetch the Gateway API Inference Extension's InferencePool CRD (kind InferencePool, group
# inference.networking.k8s.io), which shares our kind's name: tests/e2e/test_name_clash.py
# installs it beside ours. It comes from the extension's Go module through the Go module proxy
# (no release downloads here), pinned below, and is copied to
# ${WARMPOOL_CACHE:-$HOME/.cache/warmpool}/gateway-inference-crds-<version>/.
# Idempotent: does nothing when the file is there.
set -euo pipefail

VERSION=v1.6.2
MODULE=sigs.k8s.io/gateway-api-inference-extension
CACHE=${WARMPOOL_CACHE:-$HOME/.cache/warmpool}
DEST=${CACHE}/gateway-inference-crds-${VERSION}
CRD=inference.networking.k8s.io_inferencepools.yaml

if [[ -f ${DEST}/${CRD} ]]; then
  echo "Gateway API Inference Extension CRD ${VERSION}: cached in ${DEST}" >&2
  exit 0
fi

export GOFLAGS=-mod=mod GOTOOLCHAIN=local
dir=$(go mod download -json "${MODULE}@${VERSION}" | sed -n 's/^[[:space:]]*"Dir": *"\([^"]*\)".*/\1/p')
if [[ -z ${dir} || ! -f ${dir}/config/crd/bases/${CRD} ]]; then
  echo "go mod download ${MODULE}@${VERSION} gave no ${CRD}" >&2
  exit 1
fi
tmp=${DEST}.tmp.$$
rm -rf "${tmp}"
mkdir -p "${tmp}"
cp "${dir}/config/crd/bases/${CRD}" "${tmp}/${CRD}"
chmod -R u+w "${tmp}"
rm -rf "${DEST}"
mv "${tmp}" "${DEST}"
echo "Gateway API Inference Extension CRD ${VERSION}: copied to ${DEST}" >&2
