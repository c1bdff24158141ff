#!/usr/bin/env bash
# One lease of the lent GPU machine (no internet) in one call: the carried wheels (.whl_peer: ultralytics for the
# peer; loguru and pycocotools, which that machine lacks), the device check on CUDA (its table and report to
# $OUT), then benchmarks/device_user_clock.sh with the arguments given, all ending by LIMIT_S seconds.
#
#   bash benchmarks/gpu_lease.sh 590 --data datasets/themis_mars --subset 120 --imgsz 640 \
#       --peer-script .whl_peer/peer_ultralytics.py --time 150s --seeds 0, --device cuda
set -uo pipefail
limit_s=${1:?usage: bash benchmarks/gpu_lease.sh LIMIT_S [benchmarks/user_clock.py arguments]}
shift
out=${OUT:-/tmp/gpu_lease_out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --target /tmp/peer .whl_peer/*.whl || exit 1
export PYTHONPATH=".:/tmp/peer${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout -k 5 150 python3 tools/check_device.py --device cuda --out "$out/device_check.json" 2>&1 \
    | tail -60 > "$out/device_check.log"
echo "device check exit status ${PIPESTATUS[0]}"; tail -40 "$out/device_check.log"
bash benchmarks/device_user_clock.sh $((limit_s - SECONDS)) "$@"
