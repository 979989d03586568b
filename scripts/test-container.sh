#!/usr/bin/env bash
# End-to-end test of the cpu image with podman on this machine (`make test-container`):
# build (on a local debootstrap base, since no registry is reachable), run it the way Kubernetes does (read-only
# root filesystem, no capabilities, non-root), wait for readiness, send a chat, a forecast and a v2 infer request
# (scripts/smoke_requests.py), read /metrics, run the HEALTHCHECK, check the user, stop it gracefully, clean up.
# Fails with a plain message if this host cannot build or run containers.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/container-lib.sh
source scripts/container-lib.sh

IMAGE="${IMAGE:-localhost/lnserve:test}"
NAME="lnserve-test-$$"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-180}"
PYTHON="${PYTHON:-python3}"
t0=$(date +%s)

cleanup() {
    podman rm -f -t 5 "$NAME" >/dev/null 2>&1 || true
}
on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && podman container exists "$NAME" 2>/dev/null; then
        echo "--- container log (last 40 lines) ---" >&2
        podman logs --tail 40 "$NAME" 2>&1 | grep -v 'systemd' >&2 || true
    fi
    cleanup
    [ "$rc" -eq 0 ] || echo "test-container: FAILED (exit $rc)" >&2
}
trap on_exit EXIT
trap 'exit 130' INT TERM

[ "$(uname -s)" = Linux ] || die "this host cannot run the container test: podman needs Linux"
setup_podman

t_base=$(date +%s)
ensure_local_base_image
t_build=$(date +%s)
mapfile -t pip_args < <(pip_build_args)
log "building $IMAGE (target cpu) on $LOCAL_BASE_IMAGE"
podman build --pull=never --format docker --network host --target cpu \
    --build-arg "BASE_IMAGE=$LOCAL_BASE_IMAGE" "${pip_args[@]}" -t "$IMAGE" . >"$BUILD_DIR/test-container-build.log" 2>&1 \
    || { tail -30 "$BUILD_DIR/test-container-build.log" >&2; die "podman build failed (log: $BUILD_DIR/test-container-build.log)"; }
t_run=$(date +%s)
size_mb=$(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f", $1 / 1e6}')
log "built in $((t_run - t_build)) s, image size ${size_mb} MB"

port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# As deploy/base/deployment.yaml runs it: read-only root, a tmpfs /tmp, no capabilities, no privilege escalation.
podman run -d --name "$NAME" -p "127.0.0.1:$port:8000" \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
    -e LNSERVE_ACTIVATION_SAMPLE_RATE=1 "$IMAGE" >/dev/null 2>"$BUILD_DIR/test-container-run.log" \
    || { cat "$BUILD_DIR/test-container-run.log" >&2; die "this host cannot run containers: podman run failed"; }
base="http://127.0.0.1:$port"

log "waiting for $base/v2/health/ready (at most ${READY_TIMEOUT_S} s)"
deadline=$(($(date +%s) + READY_TIMEOUT_S))
until "$PYTHON" -c "import urllib.request as r; r.urlopen('$base/v2/health/ready', timeout=2)" 2>/dev/null; do
    [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || die "the container exited before it was ready"
    [ "$(date +%s)" -lt "$deadline" ] || die "not ready after ${READY_TIMEOUT_S} s"
    sleep 1
done
t_ready=$(date +%s)
log "ready $((t_ready - t_run)) s after start"

"$PYTHON" scripts/smoke_requests.py "$base" || die "the requests against the container failed"

podman healthcheck run "$NAME" 2>&1 | grep -v systemd || true
[ "$(podman inspect --format '{{.State.Health.Status}}' "$NAME")" = healthy ] \
    || die "podman healthcheck run did not report healthy"
log "ok healthcheck: healthy"

uid=$(podman exec "$NAME" python3 -c "print([l.split()[1] for l in open('/proc/1/status') if l.startswith('Uid:')][0])")
[ -n "$uid" ] && [ "$uid" != 0 ] || die "the server process runs as uid '$uid' (root)"
log "ok user: the server process runs as uid $uid"

podman exec "$NAME" python3 -c "import importlib.util as u; bad = [m for m in ('torch', 'pip', 'setuptools') \
if u.find_spec(m)]; assert not bad, bad" || die "the image holds packages it must not (above)"
! podman exec "$NAME" sh -c 'command -v gcc || command -v cc || command -v make' \
    || die "the image holds a compiler or build tool"
log "ok contents: no torch, pip, setuptools or compiler in the image"

podman exec "$NAME" python3 -c "from pathlib import Path; from service.runtime.precision import to_int8; \
import onnx; g = onnx.load_from_string(to_int8(Path('/app/models/chatbot/artifacts/chatbot-post/fast.onnx'))); \
assert sum(n.op_type == 'MatMulInteger' for n in g.graph.node) > 0" \
    || die "the image cannot quantize the chatbot to int8 (LNSERVE_PRECISION=int8)"
log "ok int8: the image quantizes the chatbot's fast graph at load"

stop_start=$(date +%s)
podman stop -t 30 "$NAME" >/dev/null 2>&1
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$exit_code" = 0 ] || die "the server exited with $exit_code on SIGTERM (want a graceful 0)"
log "ok stop: SIGTERM, exit 0 after $(($(date +%s) - stop_start)) s"

t_end=$(date +%s)
echo "test-container: passed in $((t_end - t0)) s (base image $((t_build - t_base)) s, build $((t_run - t_build)) s," \
    "ready after $((t_ready - t_run)) s); image $IMAGE is ${size_mb} MB"
