#!/usr/bin/env bash
# Fetch the prometheus-operator CRDs (ServiceMonitor, PodMonitor) that the chart's optional
# monitoring objects are validated against in tests/unit/chart. They come from the
# prometheus-operator Go module through the Go module proxy (no release downloads here), and
# are copied to ${WARMPOOL_CACHE:-$HOME/.cache/warmpool}/monitoring-crds-<version>/.
# Idempotent: does nothing when that directory exists.
set -euo pipefail

VERSION=v0.85.0
MODULE=github.com/prometheus-operator/prometheus-operator
CACHE=${WARMPOOL_CACHE:-$HOME/.cache/warmpool}
DEST=${CACHE}/monitoring-crds-${VERSION}
CRDS=(
  monitoring.coreos.com_servicemonitors.yaml
  monitoring.coreos.com_podmonitors.yaml
  monitoring.coreos.com_prometheusrules.yaml
)

cached=1
for crd in "${CRDS[@]}"; do
  [[ -f ${DEST}/${crd} ]] || cached=0
done
if ((cached)); then
  echo "monitoring CRDs ${VERSION}: cached in ${DEST}" >&2
  exit 0
fi

export GOFLAGS=-mod=mod GOTOOLCHAIN=local
dir=$(go mod download -json "${MODULE}@${VERSION}" | sed -n 's/^[[:space:]]*"Dir": *"\([^"]*\)".*/\1/p')
if [[ -z ${dir} || ! -d ${dir} ]]; then
  echo "go mod download ${MODULE}@${VERSION} gave no directory" >&2
  exit 1
fi

tmp=${DEST}.tmp.$$
rm -rf "${tmp}"
mkdir -p "${tmp}"
for crd in "${CRDS[@]}"; do
  cp "${dir}/example/prometheus-operator-crd/${crd}" "${tmp}/${crd}"
done
chmod -R u+w "${tmp}"
rm -rf "${DEST}" # an older cache with fewer CRDs
mv "${tmp}" "${DEST}"
echo "monitoring CRDs ${VERSION}: copied to ${DEST}" >&2
