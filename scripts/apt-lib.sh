# shellcheck shell=bash
# Sourced by the ensure-*.sh scripts: install Debian packages for the tests when this is root on a machine with apt.

# apt_install WHAT PACKAGE...: install the packages quietly, without recommends; exit 1, saying why, when it cannot.
apt_install() {
    local what="$1"
    shift
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$what is not installed and cannot be installed here (needs root and apt-get):" \
            "install Debian's '$1' package" >&2
        exit 1
    fi
    echo "installing Debian's $* package(s) for $what" >&2
    apt-get update -q >/dev/null
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null || status=$?
    if [ "$status" -ne 0 ]; then
        echo "apt-get install $* failed (exit $status)" >&2
        exit 1
    fi
}
