#!/usr/bin/env bash
# Build the local Kubernetes control plane used by the e2e tests and the demo:
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (one
# multi-call binary from k8s.io/kubernetes), etcd, kwok and helm, all from Go
# modules (no Docker, no release downloads on these machines).
#
# Idempotent: each component is built into
#   ${WARMPOOL_CACHE:-$HOME/.cache/warmpool}/bin/<component>-<version>/
# and skipped when that directory exists. A build goes into a temporary
# directory that is renamed into place only on success, so an interrupted run
# never leaves a half-built component behind.
#
# Versions: Kubernetes and etcd are pinned by the wrapper modules in hack/k8s
# and hack/etcd (go.mod + go.sum); kwok and helm below. The health-check
# harness (hack/health: kstatus, Argo CD's Lua, Flux's CEL) is keyed by a hash
# of its module files, so any change to them rebuilds it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${WARMPOOL_CACHE:-$HOME/.cache/warmpool}
BIN=${CACHE}/bin
BUILD=${CACHE}/build
KWOK_VERSION=v0.7.0
HELM_VERSION=v3.19.0
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "${ROOT}/hack/k8s/go.mod" | sed -n 1p)
HEALTH_VERSION=$(cat "${ROOT}"/hack/health/go.mod "${ROOT}"/hack/health/go.sum "${ROOT}"/hack/health/main.go | sha256sum | cut -c1-12)
ETCD_VERSION=$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2}' "${ROOT}/hack/etcd/go.mod" | sed -n 1p)

export CGO_ENABLED=0
# -mod=mod: the wrapper modules are copied to a scratch directory and may gain
# go.sum lines there; the checked-in copies stay untouched.
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local

log() { printf '[build-binaries %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# build_component NAME VERSION FUNCTION BINARY...: unless every BINARY is already
# in $BIN/NAME-VERSION, run FUNCTION with $1 = a scratch output directory and move
# that into place once every BINARY in it is executable.
# (FUNCTION runs in an `if` context, where bash ignores `set -e`: each build
# function checks its own steps with `|| return 1`.)
build_component() {
  local name=$1 version=$2 fn=$3
  shift 3
  local dest=${BIN}/${name}-${version}
  if has_binaries "${dest}" "$@"; then
    log "${name} ${version}: cached in ${dest}"
    return 0
  fi
  local tmp=${dest}.tmp.$$
  rm -rf "${tmp}"
  mkdir -p "${tmp}"
  log "${name} ${version}: building"
  local start=${SECONDS}
  if ! "${fn}" "${tmp}" "${version}" || ! has_binaries "${tmp}" "$@"; then
    rm -rf "${tmp}"
    log "${name} ${version}: BUILD FAILED"
    return 1
  fi
  if has_binaries "${dest}" "$@"; then
    # Another run finished the same component meanwhile; keep its result.
    rm -rf "${tmp}"
  else
    rm -rf "${dest}"
    mv "${tmp}" "${dest}"
  fi
  local took=$((SECONDS - start))
  log "${name} ${version}: built in ${took}s"
  printf '%s %s %s %ss\n' "$(date -u +%FT%TZ)" "${name}" "${version}" "${took}" >>"${BIN}/build-times.log"
}

# has_binaries DIR BINARY...: every BINARY is an executable file (or a symlink
# to one) in DIR.
has_binaries() {
  local dir=$1
  shift
  local binary
  for binary in "$@"; do
    [[ -x ${dir}/${binary} && -f ${dir}/${binary} ]] || return 1
  done
}

# Copy a wrapper module to a scratch directory so that `go build -mod=mod`
# can record go.sum/go.mod changes without touching the clone.
stage_module() {
  local src=$1 dir=$2
  rm -rf "${dir}" &&
    mkdir -p "${dir}" &&
    cp "${src}"/go.mod "${src}"/main.go "${dir}/" || return 1
  if [[ -f ${src}/go.sum ]]; then cp "${src}/go.sum" "${dir}/" || return 1; fi
}

# kube_ldflags VERSION: the -ldflags that set the same version variables as
# k8s.io/kubernetes hack/lib/version.sh, so `kube-apiserver --version`, GET /version and
# a kubelet's node status report the real version.
kube_ldflags() {
  local version=$1
  local minor major commit date
  major=$(cut -d. -f1 <<<"${version#v}")
  minor=$(cut -d. -f2 <<<"${version}")
  commit=$(go mod download -json "k8s.io/kubernetes@${version}" |
    sed -n 's/.*"Hash": *"\([0-9a-f]*\)".*/\1/p' | sed -n 1p)
  date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' \
    "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/${version}.info")
  local ldflags="-s -w"
  local pkg key val
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    for key in gitVersion gitMajor gitMinor gitCommit gitTreeState buildDate; do
      # Like version.sh: commit and tree state only when the commit is known
      # (the module proxy does not always say which commit a tag is).
      if [[ -z ${commit} && ${key} == git[CT]* ]]; then continue; fi
      case ${key} in
        gitVersion) val=${version} ;;
        gitMajor) val=${major} ;;
        gitMinor) val=${minor} ;;
        gitCommit) val=${commit} ;;
        gitTreeState) val=clean ;;
        buildDate) val=${date:-1970-01-01T00:00:00Z} ;;
      esac
      ldflags+=" -X ${pkg}.${key}=${val}"
    done
  done
  printf '%s\n' "${ldflags}"
}

build_kubernetes() {
  local out=$1 version=$2
  local dir=${BUILD}/k8s-${version}
  stage_module "${ROOT}/hack/k8s" "${dir}" || return 1
  local ldflags
  ldflags=$(kube_ldflags "${version}") || return 1
  (cd "${dir}" && go build -trimpath -ldflags "${ldflags}" -o "${out}/kube" .) || return 1
  local tool
  for tool in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    ln -sf kube "${out}/${tool}" || return 1
  done
}

build_etcd() {
  local out=$1 version=$2
  local dir=${BUILD}/etcd-${version}
  stage_module "${ROOT}/hack/etcd" "${dir}" || return 1
  (cd "${dir}" && go build -trimpath -ldflags "-s -w" -o "${out}/etcd" .) || return 1
}

build_kwok() {
  local out=$1 version=$2
  GOBIN=${out} go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${version}"
}

build_helm() {
  local out=$1 version=$2
  # helm reads its version from ldflags, as its Makefile sets them.
  GOBIN=${out} go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${version} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@${version}"
}

build_health() {
  local out=$1 version=$2
  local dir=${BUILD}/health-${version}
  stage_module "${ROOT}/hack/health" "${dir}" || return 1
  (cd "${dir}" && go build -trimpath -ldflags "-s -w" -o "${out}/warmpool-health" .) || return 1
}

main() {
  if [[ -z ${K8S_VERSION} || -z ${ETCD_VERSION} ]]; then
    log "cannot read the Kubernetes/etcd versions from hack/k8s/go.mod, hack/etcd/go.mod"
    return 1
  fi
  mkdir -p "${BIN}" "${BUILD}"
  local start=${SECONDS}
  build_component etcd "${ETCD_VERSION}" build_etcd etcd
  build_component kubernetes "${K8S_VERSION}" build_kubernetes \
    kube kube-apiserver kube-controller-manager kube-scheduler kubectl
  build_component kwok "${KWOK_VERSION}" build_kwok kwok
  build_component helm "${HELM_VERSION}" build_helm helm
  build_component warmpool-health "${HEALTH_VERSION}" build_health warmpool-health
  log "all components ready in $((SECONDS - start))s"

  local k8s=${BIN}/kubernetes-${K8S_VERSION}
  "${BIN}/etcd-${ETCD_VERSION}/etcd" --version | sed -n 1p
  "${k8s}/kube-apiserver" --version
  "${k8s}/kube-controller-manager" --version
  "${k8s}/kube-scheduler" --version
  "${k8s}/kubectl" version --client | sed -n 1p
  "${BIN}/kwok-${KWOK_VERSION}/kwok" --version
  "${BIN}/helm-${HELM_VERSION}/helm" version --short
}

# Sourced by hack/build-node.sh for build_component and friends; run only when executed.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
