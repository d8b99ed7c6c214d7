#!/usr/bin/env bash
# Build warmpool's container images without Docker or a registry: the pod sandbox (pause), the
# agent (`warmpool prefetch|warmup|activator`), the operator (`warmpool operator`) and a CPU
# Triton (the server from the nvidia-pytriton wheel). Each is an OCI archive under
# ${WARMPOOL_CACHE:-~/.cache/warmpool}/images/, listed in manifest.json there, rebuilt only when
# its inputs change (recipe, parent layer, source files). See images/README.md.
#
#   hack/build-images.sh                 every image (cached)
#   hack/build-images.sh agent           one image (and the layers below it)
#   hack/build-images.sh --force agent   rebuild even when cached
#
# Needs root (debootstrap, chroot, overlay mounts in a private mount namespace), gcc with static
# glibc, and debootstrap (installed from Debian's mirror when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"

if [[ $(id -u) != 0 ]]; then
  echo "[build-images] needs root: debootstrap, chroot and overlay mounts" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "[build-images] apt-get install debootstrap" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
for tool in gcc unshare chroot; do
  command -v "$tool" >/dev/null || { echo "[build-images] $tool is missing" >&2; exit 1; }
done
exec "$PYTHON" hack/images/build.py "$@"
