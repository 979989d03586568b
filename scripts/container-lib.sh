# shellcheck shell=bash
# Shared by scripts/build-image.sh and scripts/test-container.sh (source it, do not run it).
# Sets up podman on a machine without a Docker engine or a reachable container registry: podman + runc from
# Debian's packages, a containers.conf of our own (crun fails on hybrid cgroups here), and a local Debian base
# image made with debootstrap. See docs/deployment.md.

LOCAL_BASE_IMAGE="${LOCAL_BASE_IMAGE:-localhost/debian:bookworm}"
BUILD_DIR="${LNSERVE_BUILD_DIR:-build}"  # ignored by git; holds containers.conf and build logs

die() {
    echo "ERROR: $*" >&2
    exit 1
}

log() {
    echo "[$(date -u +%H:%M:%S)] $*" >&2
}

# Installs the Debian packages named if their commands are missing; only as root with apt.
ensure_debian_packages() {
    local missing=()
    local pair cmd pkg
    for pair in "$@"; do
        cmd="${pair%%:*}"
        pkg="${pair##*:}"
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and run again"
    fi
    log "installing ${missing[*]} with apt-get"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# podman with runc and cgroupfs; the ulimits stay within this shell's hard limits or runc cannot set them.
setup_podman() {
    ensure_debian_packages podman:podman runc:runc
    mkdir -p "$BUILD_DIR"
    local nofile nproc
    nofile="$(ulimit -Hn)"
    nproc="$(ulimit -Hu)"
    [ "$nofile" = unlimited ] && nofile=16384
    [ "$nproc" = unlimited ] && nproc=16384
    [ "$nofile" -gt 16384 ] && nofile=16384
    [ "$nproc" -gt 16384 ] && nproc=16384
    CONTAINERS_CONF="$(cd "$BUILD_DIR" && pwd)/containers.conf"
    cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_CONF
    podman info >/dev/null 2>&1 || die "podman cannot run on this host ('podman info' fails: $(podman info 2>&1 | tail -1))"
}

# The host's Debian mirror, from its apt sources (one-line or deb822 format).
debian_mirror() {
    local uri
    uri="$(grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk '$3 ~ /^bookworm$/ && $2 ~ /debian\/?$/ {print $2; exit}')"
    if [ -z "$uri" ]; then
        uri="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u ~ /debian\/?$/ {print u; exit}' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null)"
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# Debian bookworm minbase as a local image (no registry needed), built once and reused.
ensure_local_base_image() {
    if podman image exists "$LOCAL_BASE_IMAGE"; then
        log "reusing base image $LOCAL_BASE_IMAGE"
        return 0
    fi
    ensure_debian_packages debootstrap:debootstrap
    local rootfs mirror
    rootfs="$(mktemp -d /tmp/lnserve-rootfs.XXXXXX)"
    mirror="$(debian_mirror)"
    log "debootstrap bookworm from $mirror (about a minute)"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
        tail -20 "$rootfs.log" >&2
        rm -rf "$rootfs" "$rootfs.log"
        die "debootstrap failed"
    fi
    # Slim like the official debian:*-slim images: no apt lists or caches, docs, man pages or translations,
    # now or from later apt installs.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/lnserve-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
    # The same TLS trust as the host, so pip and apt inside a build reach what the host reaches.
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || true
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE_IMAGE" >/dev/null \
        || die "podman import of the base image failed"
    rm -rf "$rootfs" "$rootfs.log"
    log "built base image $LOCAL_BASE_IMAGE"
}

# Build args that hand the host's package index (a mirror, if one is configured) to pip inside the build.
# Local file:// indexes and find-links are left out: they do not exist inside the build.
pip_build_args() {
    local key value
    while IFS='=' read -r key value; do
        value="${value#\'}"
        value="${value%\'}"
        case "$value" in file://* | /* | "") continue ;; esac
        case "$key" in
        *.index-url) echo "--build-arg=PIP_INDEX_URL=$value" ;;
        *.extra-index-url) echo "--build-arg=PIP_EXTRA_INDEX_URL=$value" ;;
        *.trusted-host) echo "--build-arg=PIP_TRUSTED_HOST=$value" ;;
        esac
    done < <(pip config list 2>/dev/null || true)
    [ -n "${PIP_INDEX_URL:-}" ] && echo "--build-arg=PIP_INDEX_URL=$PIP_INDEX_URL"
    return 0
}
