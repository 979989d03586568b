#!/usr/bin/env bash
# Build the lnserve image: scripts/build-image.sh [cpu|gpu] [TAG]
#
#   IMAGE_ENGINE   podman or docker (default: podman if installed, else docker)
#   BASE_IMAGE     base image (default: the Dockerfile's python:3.11-slim-bookworm). `local` builds (once) and
#                  uses a Debian bookworm base made with debootstrap, for machines that cannot pull from a
#                  container registry; this needs root, apt and podman.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/container-lib.sh
source scripts/container-lib.sh

target="${1:-cpu}"
tag="${2:-localhost/lnserve:$target}"
case "$target" in cpu | gpu) ;; *) die "target must be cpu or gpu, not '$target'" ;; esac

engine="${IMAGE_ENGINE:-}"
if [ -z "$engine" ]; then
    if command -v podman >/dev/null 2>&1 || [ "${BASE_IMAGE:-}" = local ]; then engine=podman; else engine=docker; fi
fi

args=(build --target "$target" -t "$tag")
if [ "$engine" = podman ]; then
    setup_podman
    # --format docker keeps HEALTHCHECK (the OCI format drops it silently); --network host reaches the same
    # package mirrors as the host.
    args+=(--format docker --network host)
fi
if [ "${BASE_IMAGE:-}" = local ]; then
    [ "$engine" = podman ] || die "BASE_IMAGE=local needs podman"
    ensure_local_base_image
    args+=(--pull=never --build-arg "BASE_IMAGE=$LOCAL_BASE_IMAGE")
elif [ -n "${BASE_IMAGE:-}" ]; then
    args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
fi
mapfile -t pip_args < <(pip_build_args)
args+=("${pip_args[@]}")

log "$engine ${args[*]} ."
start=$(date +%s)
"$engine" "${args[@]}" .
log "built $tag ($target) in $(($(date +%s) - start)) s, $("$engine" image inspect --format '{{.Size}}' "$tag" \
    | awk '{printf "%.0f MB", $1 / 1e6}')"
