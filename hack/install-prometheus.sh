#!/usr/bin/env bash
# Install the real Prometheus server the scaling integration tests scrape with.
#
# Debian's `prometheus` package (2.42 on bookworm). Idempotent: does nothing when a
# `prometheus` binary is already on PATH (or at /usr/bin/prometheus). The package's
# systemd unit is not needed: tests start their own server on a free loopback port with
# a throw-away config and data directory (tests/support/prometheus.py), so the service is
# stopped/disabled where systemd exists, and policy-rc.d keeps it from starting at install.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]; then
    echo "prometheus already installed: $( (prometheus --version 2>&1 || /usr/bin/prometheus --version 2>&1) | head -1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# --no-install-recommends: the exporters and the web console assets are not needed.
$SUDO apt-get install -y --no-install-recommends prometheus

# The package may start a system service on :9090; tests never use it. Stop it when we can so
# it does not hold a port or scrape anything in the background.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

prometheus --version 2>&1 | head -1
