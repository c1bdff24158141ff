#!/usr/bin/env bash
# The one command for the lent GPU machine (no internet): installs the wheels carried in .whl_peer (ultralytics
# for the peer; loguru and pycocotools, which that machine lacks) into /tmp/peer, runs the project from this
# checkout (PYTHONPATH=., no pip install), and runs benchmarks/user_clock.py with the arguments after LIMIT_S,
# all of it ending by LIMIT_S seconds. The log, user_clock.json, user_clock.md and runs.tgz (logs and run folders
# without weights) go to $OUT. Example (carry .whl_peer and the data folder):
#
#   bash benchmarks/device_user_clock.sh 560 --data datasets/themis_mars --peer-script .whl_peer/peer_ultralytics.py \
#       --time 150s --seeds 0, --imgsz 416 --device cuda
set -uo pipefail
limit_s=${1:?usage: bash benchmarks/device_user_clock.sh LIMIT_S [benchmarks/user_clock.py arguments]}
shift
out=${OUT:-/tmp/user_clock_out}
work=/tmp/user_clock
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --target /tmp/peer .whl_peer/*.whl || exit 1
export PYTHONPATH=".:/tmp/peer${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import yolox, loguru, pycocotools, ultralytics, torch; print('torch', torch.__version__)" || exit 1
left=$((limit_s - SECONDS))
# user_clock's own deadline ends it with its table 30 s before the limit; the timeout is only a last resort
timeout -k 5 $((left - 10)) python3 benchmarks/user_clock.py --out "$work" --deadline $((left - 30)) "$@" 2>&1 \
    | tee "$out/user_clock.log"
status=${PIPESTATUS[0]}
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    python3 benchmarks/user_clock.py --summarize "$work/user_clock.json" 2>&1 | tee -a "$out/user_clock.log"
fi
cp "$work/user_clock.json" "$work/user_clock.md" "$out/"
tar czf "$out/runs.tgz" --exclude='*.pth' -C "$work" logs runs
exit "$status"
