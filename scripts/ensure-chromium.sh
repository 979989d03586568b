#!/usr/bin/env bash
# Make sure Debian's `chromium` is installed for the inspector's browser tests (tests/inspector/): install the package
# when it is missing and this is root on a machine with apt. Playwright drives it through `executable_path`; it never
# downloads a browser of its own. Exits 1, saying why, when it cannot be had.
set -euo pipefail
# shellcheck source=scripts/apt-lib.sh
source "$(dirname "$0")/apt-lib.sh"

CHROMIUM="${LNSERVE_CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && exit 0
apt_install chromium chromium fonts-dejavu-core
[ -x "$CHROMIUM" ] || { echo "chromium installed, but $CHROMIUM is missing" >&2; exit 1; }
