#!/usr/bin/env bash
# Train the default model's recipe on a lent GPU within a fixed time, in one call (issue 3).
# The device's working tree is capped at 64 MiB, so the photos travel packed (PyAV is not needed;
# .gpu-data/ is git-ignored, so it travels only as `carry`):
#   python scripts/pack_photos.py ../shared/data/photos/train .gpu-data/train --budget-mb 52 --holdout 150
#   run(command="MINUTES=8 bash scripts/device_train.sh", carry=[".gpu-data"], timeout_s=590)
# Steps: (1) the L1 and cGAN step times at the run's crop and batch (scripts/bench_train.py on
# synthetic photos), (2) `filmcolor train` with the L1 warm-up sized to L1_SHARE of MINUTES from
# those times and a time limit of MINUTES (train's max_minutes), so the run ends and saves by itself.
# Comes back under $OUT: log.txt (environment, bench, training log), bench.json, run/default.safetensors
# (the EMA generator at the end), run/default-l1.safetensors (at the end of the L1 warm-up),
# gan-mid.safetensors (halfway through the cGAN phase), run/loss.png. The models are saved at every
# checkpoint, so a call cut short still returns the latest. With .gpu-data/holdout (training photos
# the run never sees; pack_photos.py --holdout) each checkpoint is validated on it: run/metrics.csv
# shows where the network starts to memorise its photos. SMOKE=1 checks the script on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-results}"; mkdir -p "$out"
py=$(command -v python3 || command -v python)
data=${DATA:-.gpu-data/train}; minutes=${MINUTES:-8}; l1_share=${L1_SHARE:-0.35}
batch=${BATCH:-64}; crop=${CROP:-128}; ndf=${NDF:-64}; device=cuda; bench_steps=40
if [[ "${SMOKE:-0}" == 1 ]]; then device=cpu; batch=2; crop=64; bench_steps=2; fi
export FILMCOLOR_HOME=${FILMCOLOR_HOME:-/tmp/filmcolor-home} PYTHONUNBUFFERED=1
log="$out/log.txt"
if ! "$py" -c "import filmcolor.configs" 2>/dev/null; then  # no registry there: nothing may be fetched
  "$py" -m pip install -q --no-index --no-deps --no-build-isolation -e . >> "$log" 2>&1 ||
    { "$py" -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site . >> "$log" 2>&1 &&
      export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}; }
fi
{ nvidia-smi; nproc; "$py" -c "import torch, cv2, filmcolor; print('torch', torch.__version__, 'cv2', cv2.__version__)"; } >> "$log" 2>&1

# (1) step times
echo "[" > "$out/bench.json"
for phase in l1 gan; do
  "$py" scripts/bench_train.py --device "$device" --crop "$crop" --batch "$batch" --ndf "$ndf" --phase "$phase" \
      --steps "$bench_steps" --warmup 10 --json | "$py" -c "import json,sys; print(json.dumps(json.load(sys.stdin)[0]))" \
      > "/tmp/bench-$phase.json" 2>> "$log"
  cat "/tmp/bench-$phase.json" >> "$out/bench.json"; [[ $phase == l1 ]] && echo "," >> "$out/bench.json"
done
echo "]" >> "$out/bench.json"
cat "$out/bench.json" | tee -a "$log"
read -r warmup steps mid < <("$py" - "$minutes" "$l1_share" <<'EOF'
import json, sys
minutes, share = float(sys.argv[1]), float(sys.argv[2])
l1, gan = (json.load(open(f"/tmp/bench-{p}.json"))["step_ms"] / 1000 for p in ("l1", "gan"))
warmup = max(1, int(share * minutes * 60 / l1))
gan_steps = int((1 - share) * minutes * 60 / gan)
# planned steps run past the time limit on purpose: max_minutes ends the run
print(warmup, warmup + 2 * gan_steps + 100, warmup + gan_steps // 2)
EOF
)
echo "warm-up $warmup steps, at most $steps steps, $minutes min; mid-cGAN copy at step $mid" | tee -a "$log"

# (2) the training run, its log in train.txt
ckpt=$(( warmup / 10 > 250 ? warmup / 10 : 250 ))
val=(--set 'val=[]')
holdout="$(dirname "$data")/holdout"
[[ -d "$holdout" ]] && val=(--val "$holdout" --set val_every="$ckpt" --set val_images=150 --set grid_images=0 --set val_max_side=256)
"$py" -m filmcolor train --device "$device" --data "$data" "${val[@]}" --out "$out/run" --steps "$steps" \
    --batch-size "$batch" --set warmup_steps="$warmup" --set crop="$crop" --set ndf="$ndf" \
    --set max_minutes="$minutes" --set checkpoint_every="$ckpt" --set name=default --set cache= > "$out/train.txt" 2>&1 &
pid=$!
( copied=0  # the EMA halfway through the cGAN phase: the first model saved after step $mid
  while kill -0 "$pid" 2>/dev/null && (( ! copied )); do
    sleep 3
    at=$(grep -o "step [0-9]*/" "$out/train.txt" | tail -n 1 | tr -dc 0-9)
    if [[ -n "$at" ]] && (( at >= mid + ckpt )); then
      cp "$out/run/default.safetensors" "$out/gan-mid.safetensors"; copied=1
    fi
  done ) &
wait "$pid"; echo "train exit $?" | tee -a "$log"
rm -f "$out/run/checkpoint.pt"  # models and optimisers (over the size that comes back)
ls -la "$out" "$out/run" | tee -a "$log"
