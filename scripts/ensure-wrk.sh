#!/usr/bin/env bash
# Make sure `wrk` (the HTTP load generator of the benchmarks) is on PATH: install Debian's `wrk` package when it is
# missing and this is root on a machine with apt. Exits 1, saying why, when it cannot be had.
set -euo pipefail
# shellcheck source=scripts/apt-lib.sh
source "$(dirname "$0")/apt-lib.sh"

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
apt_install wrk wrk
command -v wrk >/dev/null 2>&1 || { echo "wrk installed, but not on PATH" >&2; exit 1; }
