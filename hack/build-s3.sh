#!/usr/bin/env bash
# Build the real S3-compatible server used by the prefetch tests and benchmark.
#
# versitygw (github.com/versity/versitygw, Apache-2.0) with its posix backend: objects are plain
# files under a directory, ranged GETs are served with a seek + stream (no whole-object buffering),
# so multi-GiB benchmark models cost disk, not RAM. MinIO (AGPL) is deliberately not used.
#
# Idempotent: the binary is cached outside the clone, keyed by version, built only when missing.
# Prints the binary's path on its last line.
set -euo pipefail

VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
CACHE="${WARMPOOL_CACHE:-$HOME/.cache/warmpool}"
BIN_DIR="$CACHE/bin"
TARGET="$BIN_DIR/versitygw-$VERSITYGW_VERSION"

if [[ ! -x "$TARGET" ]]; then
  mkdir -p "$BIN_DIR"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "building versitygw $VERSITYGW_VERSION (one-off, cached at $TARGET)" >&2
  # -trimpath/-s -w: smaller binary, faster link on the 2-core CI machine.
  GOBIN="$work" GOFLAGS="-trimpath" go install -ldflags="-s -w" \
    "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  mv "$work/versitygw" "$TARGET"
fi
ln -sfn "$(basename "$TARGET")" "$BIN_DIR/versitygw"
echo "$TARGET"
