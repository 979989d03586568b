#!/usr/bin/env bash
# make gpu-prepare: everything the GPU check needs that a GPU host cannot fetch, in git-ignored folders, and the
# call plan for this tree (.gpu/PLAN.md). Re-run it right before a session with a GPU: the plan depends on the size
# of the tree, the weights on the artifacts (both are cheap to redo when nothing changed).
#   .whl/      cp312 manylinux wheels of the service's dependencies the GPU image lacks
#   .ortgpu/   the onnxruntime-gpu wheel (wheel/) and its parts p1 ... pN
#   .gpu/      torch weights recovered from the artifacts, the parts' manifest, prepared.json, PLAN.md
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY="${PY:-.venv/bin/python}"
download() {
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 "$@" 2> >(grep -v "^WARNING: Location" >&2)
}

rm -rf .whl && mkdir -p .whl .ortgpu/wheel .gpu
# shellcheck disable=SC2046
download -d .whl $("$PY" -m bench.gpu.plan pins)
"$PY" -m bench.gpu.plan check-wheels .whl

ort="$("$PY" -c 'import onnxruntime; print(onnxruntime.__version__)')"
ls .ortgpu/wheel/onnxruntime_gpu-"$ort"-cp312-*.whl >/dev/null 2>&1 || download -d .ortgpu/wheel "onnxruntime-gpu==$ort"

"$PY" -m bench.gpu.torch_weights --out .gpu/weights
"$PY" -m bench.gpu.plan split .ortgpu/wheel/onnxruntime_gpu-"$ort"-cp312-*.whl
