#!/usr/bin/env bash
# Build the real GCS-API server used by the prefetch gs:// integration tests.
#
# fake-gcs-server (github.com/fsouza/fake-gcs-server, BSD-2-Clause): the GCS JSON API (list,
# ranged media GETs, uploads) over plain HTTP on loopback. obstore's GCSStore reaches it through
# a service-account file with "gcs_base_url" and "disable_oauth" (object_store's own way to
# talk to an emulator), so the code under test is the real gs:// path.
#
# Idempotent: the binary is cached outside the clone, keyed by version, built only when missing.
# Prints the binary's path on its last line.
set -euo pipefail

FAKE_GCS_VERSION="${FAKE_GCS_VERSION:-v1.56.1}"
CACHE="${WARMPOOL_CACHE:-$HOME/.cache/warmpool}"
BIN_DIR="$CACHE/bin"
TARGET="$BIN_DIR/fake-gcs-server-$FAKE_GCS_VERSION"

if [[ ! -x "$TARGET" ]]; then
  mkdir -p "$BIN_DIR"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "building fake-gcs-server $FAKE_GCS_VERSION (one-off, cached at $TARGET)" >&2
  # -trimpath/-s -w: smaller binary, faster link on the 2-core CI machine.
  GOBIN="$work" GOFLAGS="-trimpath" go install -ldflags="-s -w" \
    "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION"
  mv "$work/fake-gcs-server" "$TARGET"
fi
ln -sfn "$(basename "$TARGET")" "$BIN_DIR/fake-gcs-server"
echo "$TARGET"
