#!/usr/bin/env bash
# The GPU checks of issues 3 and 6 in one short call, for a session that is lent a device:
#   run(command="bash scripts/device_checks.sh", timeout_s=540)
# Writes every result under $OUT (default: ./device-results) so it comes back with the reply:
#   cuda-tests.txt      pytest -m cuda (the CUDA paths: pipeline vs CPU, compose on the device, ...)
#   bench-gpu.json/.txt scripts/bench.py at 480p and 1080p on the GPU, with a profile of one batch
#   train-gpu.json/.txt scripts/bench_train.py at 256x256 (issue 3's 800 img/s target), cGAN and L1
#   nvidia-smi.txt      the card, driver and memory
# Each step is time-boxed, so one hang never costs the whole call. SMOKE=1 runs tiny sizes on
# whatever device there is (for checking the script itself on a CPU machine).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-results}"
mkdir -p "$out"
frames=600; train_steps=30; batch=64; crop=256; box=140
if [[ "${SMOKE:-0}" == 1 ]]; then frames=20; train_steps=2; batch=2; crop=64; box=120; fi
device=cuda
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || device=cpu
[[ "$device" == cpu && "${SMOKE:-0}" != 1 ]] && { echo "no CUDA device here; SMOKE=1 to check the script on CPU"; exit 3; }

python -c "import filmcolor" 2>/dev/null || python -m pip install -q -e ".[test]" > "$out/install.txt" 2>&1
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its output, report the status
  local name=$1 secs=$2; shift 2
  local t0=$SECONDS
  timeout "$secs" "$@" > "$out/$name.txt" 2>&1
  echo "$name: exit $? in $((SECONDS - t0)) s"
}

step cuda-tests "$box" python -m pytest -q -m cuda
step bench-gpu "$box" python scripts/bench.py --synthetic --device "$device" --frames "$frames" --profile \
    --no-baseline --json "$out/bench-gpu.json"
step train-gpu "$box" python scripts/bench_train.py --device "$device" --crop "$crop" --batch "$batch" \
    --steps "$train_steps" --warmup 5 --json
step train-gpu-l1 "$box" python scripts/bench_train.py --device "$device" --crop "$crop" --batch "$batch" \
    --steps "$train_steps" --warmup 5 --phase l1 --json
tail -n 3 "$out"/*.txt
