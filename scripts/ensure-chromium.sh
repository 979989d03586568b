#!/usr/bin/env bash
# Make sure Debian's headless-capable `chromium` is installed for the inspector's browser tests (tests/inspector/):
# install the `chromium` package when it is missing and this is root on a machine with apt. Playwright drives it
# through `executable_path`; it never downloads a browser of its own. Exits 1, saying why, when it cannot be had.
set -euo pipefail

CHROMIUM="${LNSERVE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is not installed and cannot be installed here (needs root and apt-get):" \
        "install Debian's 'chromium' package or point LNSERVE_CHROMIUM at a Chromium binary" >&2
    exit 1
fi
echo "installing Debian's chromium package" >&2
apt-get update -q >/dev/null
status=0
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null \
    || status=$?
if [ "$status" -ne 0 ] || [ ! -x "$CHROMIUM" ]; then
    echo "apt-get install chromium failed (exit $status)" >&2
    exit 1
fi
