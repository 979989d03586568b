#!/usr/bin/env bash
# Make sure `prometheus` and `promtool` are on PATH: install Debian's `prometheus` package when they are missing
# and this is root on a machine with apt. Exits 1, saying why, when they cannot be had.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "prometheus/promtool are not installed and cannot be installed here (needs root and apt-get):" \
        "install Debian's 'prometheus' package or put both binaries on PATH" >&2
    exit 1
fi
echo "installing Debian's prometheus package (prometheus, promtool)" >&2
apt-get update -q >/dev/null
# --no-install-recommends: no node exporter. policy-rc.d keeps the package from starting its own server.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null || status=$?
[ "$created_policy" -eq 1 ] && rm -f "$policy"
if [ "$status" -ne 0 ] || ! command -v promtool >/dev/null 2>&1; then
    echo "apt-get install prometheus failed (exit $status)" >&2
    exit 1
fi
