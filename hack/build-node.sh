#!/usr/bin/env bash
# Build or fetch what a real local node runs (warmpool.envtest's RealNode), cached like
# the control plane under ${WARMPOOL_CACHE:-$HOME/.cache/warmpool}/bin/<component>-<version>/:
#
#   kube-node-<k8s>     kubelet, kube-proxy and fake-gpu-plugin: one multi-call binary from
#                       k8s.io/kubernetes with hack/k8s/go.mod (the control plane's pinned
#                       version) and hack/k8s-node/*.go
#   containerd-<ver>    containerd, containerd-shim-runc-v2, ctr: built from the containerd v2
#                       Go module (see docs/development.md for why not Debian's 1.6)
#   node-debs-<ver>     runc, the CNI plugins (bridge, host-local, loopback, portmap), iptables
#                       (nf_tables backend) and conntrack: Debian bookworm packages fetched with
#                       `apt-get download` and unpacked with `dpkg -x`, never installed; bin/
#                       holds wrappers that point them at their unpacked libraries
#   distribution-<ver>  registry: the CNCF distribution registry from Debian's docker-registry
#                       package (unpacked with `dpkg -x`, a static binary), the OCI registry a
#                       real node's containerd pulls from (warmpool.envtest.registry)
#   crane-<ver>         crane, built from the go-containerregistry Go module: pushes the built
#                       OCI images into that registry and appends layers to them
#
# Nothing is installed system-wide. The pause image comes from hack/build-images.sh.
set -euo pipefail

NODE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# build_component, has_binaries, kube_ldflags, K8S_VERSION, BIN, BUILD, log (and the Go
# environment: CGO_ENABLED=0, GOFLAGS, GOTOOLCHAIN).
# shellcheck source=hack/build-binaries.sh
source "${NODE_ROOT}/hack/build-binaries.sh"

CONTAINERD_VERSION=v2.2.9
# Debian bookworm's docker-registry package, pinned: the cache directory is keyed by its
# upstream version.
DISTRIBUTION_VERSION=v2.8.2
DISTRIBUTION_DEB=docker-registry=2.8.2+ds1-1
CRANE_VERSION=v0.22.1
# Bump when the package list below changes (the cache directory is keyed by it).
NODE_DEBS_VERSION=v1
NODE_DEBS=(
  runc libseccomp2
  containernetworking-plugins
  iptables libip4tc2 libip6tc2 libxtables12 libmnl0 libnetfilter-conntrack3 libnfnetlink0 libnftnl11
  conntrack
)

build_kube_node() {
  local out=$1 version=$2
  local dir=${BUILD}/k8s-node-${version}
  rm -rf "${dir}" && mkdir -p "${dir}" || return 1
  cp "${NODE_ROOT}"/hack/k8s/go.mod "${NODE_ROOT}"/hack/k8s/go.sum "${NODE_ROOT}"/hack/k8s-node/*.go \
    "${dir}/" || return 1
  local ldflags
  ldflags=$(kube_ldflags "${version}") || return 1
  (cd "${dir}" && go build -trimpath -ldflags "${ldflags}" -o "${out}/kube-node" .) || return 1
  local tool
  for tool in kubelet kube-proxy fake-gpu-plugin; do
    ln -sf kube-node "${out}/${tool}" || return 1
  done
}

build_containerd() {
  local out=$1 version=$2
  local module=github.com/containerd/containerd/v2
  # No CGO: the btrfs, devmapper and zfs snapshotters need it and are not used (overlayfs).
  GOBIN=${out} go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X ${module}/version.Version=${version}" \
    "${module}/cmd/containerd@${version}" \
    "${module}/cmd/containerd-shim-runc-v2@${version}" \
    "${module}/cmd/ctr@${version}"
}

# write_wrapper OUT NAME TARGET [ARGS...]: OUT/bin/NAME runs the unpacked TARGET (relative
# to OUT/root) with its unpacked libraries first on the library path.
write_wrapper() {
  local out=$1 name=$2 target=$3
  shift 3
  cat >"${out}/bin/${name}" <<WRAPPER || return 1
#!/bin/sh
# Runs ${target} unpacked from Debian's packages (hack/build-node.sh), with their libraries.
root=\$(dirname "\$(readlink -f "\$0")")/../root
LD_LIBRARY_PATH="\$root/usr/lib/${MULTIARCH}:\$root/lib/${MULTIARCH}" \\
XTABLES_LIBDIR="\$root/usr/lib/${MULTIARCH}/xtables" \\
exec "\$root/${target}" ${*:+$*} "\$@"
WRAPPER
  chmod +x "${out}/bin/${name}"
}

build_node_debs() {
  local out=$1
  local download=${out}/debs
  mkdir -p "${download}" "${out}/root" "${out}/bin" || return 1
  # apt-get download writes into the current directory; it changes nothing on the system.
  (cd "${download}" && apt-get download -q "${NODE_DEBS[@]}") || return 1
  local deb
  for deb in "${download}"/*.deb; do
    dpkg-deb -x "${deb}" "${out}/root" || return 1
    dpkg-deb -f "${deb}" Package Version | paste -sd' ' >>"${out}/versions.txt"
  done
  rm -rf "${download}"
  local tool
  for tool in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    write_wrapper "${out}" "${tool}" usr/sbin/xtables-nft-multi "${tool}" || return 1
  done
  write_wrapper "${out}" runc usr/sbin/runc || return 1
  write_wrapper "${out}" conntrack usr/sbin/conntrack || return 1
  ln -sfn root/usr/lib/cni "${out}/cni" || return 1
}

build_distribution() {
  local out=$1
  local download=${out}/debs
  mkdir -p "${download}" || return 1
  (cd "${download}" && apt-get download -q "${DISTRIBUTION_DEB}") || return 1
  dpkg-deb -x "${download}"/docker-registry_*.deb "${out}/root" || return 1
  rm -rf "${download}"
  ln -sf root/usr/bin/docker-registry "${out}/registry" || return 1
}

build_crane() {
  local out=$1 version=$2
  GOBIN=${out} go install -trimpath -ldflags "-s -w" \
    "github.com/google/go-containerregistry/cmd/crane@${version}"
}

# node_main [COMPONENT...]: build the named components (node-debs, containerd, kube-node,
# distribution, crane), or all of them, then print every version.
node_main() {
  MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  mkdir -p "${BIN}" "${BUILD}"
  local start=${SECONDS}
  local wanted=" ${*:-node-debs containerd kube-node distribution crane} "
  [[ ${wanted} != *" node-debs "* ]] || build_component node-debs "${NODE_DEBS_VERSION}" build_node_debs \
    bin/runc bin/iptables bin/iptables-restore bin/conntrack cni/bridge cni/host-local \
    cni/loopback cni/portmap
  [[ ${wanted} != *" containerd "* ]] || build_component containerd "${CONTAINERD_VERSION}" build_containerd \
    containerd containerd-shim-runc-v2 ctr
  [[ ${wanted} != *" kube-node "* ]] || build_component kube-node "${K8S_VERSION}" build_kube_node \
    kube-node kubelet kube-proxy fake-gpu-plugin
  [[ ${wanted} != *" distribution "* ]] || build_component distribution "${DISTRIBUTION_VERSION}" \
    build_distribution registry
  [[ ${wanted} != *" crane "* ]] || build_component crane "${CRANE_VERSION}" build_crane crane
  log "node components ready in $((SECONDS - start))s"
  [[ $# -eq 0 ]] || return 0
  "${BIN}/kube-node-${K8S_VERSION}/kubelet" --version
  "${BIN}/kube-node-${K8S_VERSION}/kube-proxy" --version
  "${BIN}/containerd-${CONTAINERD_VERSION}/containerd" --version
  "${BIN}/node-debs-${NODE_DEBS_VERSION}/bin/runc" --version | sed -n 1p
  "${BIN}/node-debs-${NODE_DEBS_VERSION}/bin/iptables" --version
  "${BIN}/distribution-${DISTRIBUTION_VERSION}/registry" --version
  printf 'crane %s\n' "$("${BIN}/crane-${CRANE_VERSION}/crane" version)"
  sed 's/^/  /' "${BIN}/node-debs-${NODE_DEBS_VERSION}/versions.txt"
}

node_main "$@"
