#!/usr/bin/env bash
# The GPU check in ONE device call (bench/gpu/README.md). On the GPU host, from the repository root:
#   LIMIT=<the call's timeout_s> bash bench/gpu/run.sh
# Installs the carried wheels (onnxruntime-gpu joined from its parts), then runs every stage of bench.gpu.check so
# that all of it ends before LIMIT; report.md, results.json, log.txt and run.log land in $OUT as they are written.
# Needs nothing from the network.
set -uo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
LIMIT="${LIMIT:-570}"
OUT="${OUT:-/tmp/lnserve-gpu-out}"
SITE=/tmp/site
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
echo "run.sh $(date -u '+%F %T UTC'), limit ${LIMIT} s, $(nvidia-smi -L 2>&1 | head -1)"

timeout 240 python3 bench/gpu/install.py --site "$SITE"
echo "install exit $? after $(($(date +%s) - started)) s"
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
python3 -c 'import onnxruntime as o, fastapi, pydantic_settings, uvicorn; print("onnxruntime", o.__version__, o.get_available_providers())'

left=$((LIMIT - ($(date +%s) - started) - 20))  # 20 s to spare for the last report and the transfer back
python3 -m bench.gpu.check --out "$OUT" --seconds "$left"
echo "run.sh done after $(($(date +%s) - started)) s"
