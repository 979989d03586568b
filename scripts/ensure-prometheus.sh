#!/usr/bin/env bash
# Make sure `prometheus` and `promtool` are on PATH: install Debian's `prometheus` package when they are missing
# and this is root on a machine with apt. Exits 1, saying why, when they cannot be had.
set -euo pipefail
# shellcheck source=scripts/apt-lib.sh
source "$(dirname "$0")/apt-lib.sh"

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
# --no-install-recommends: no node exporter. policy-rc.d keeps the package from starting its own server.
policy=/usr/sbin/policy-rc.d
if [ "$(id -u)" -eq 0 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt_install prometheus/promtool prometheus
command -v promtool >/dev/null 2>&1 || { echo "prometheus installed, but promtool is not on PATH" >&2; exit 1; }
