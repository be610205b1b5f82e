#!/usr/bin/env bash
# Train the default model's recipe on a lent GPU within a fixed time, in one call (issue 3).
# The device's working tree is capped at 64 MiB, so the photos travel packed (PyAV is not needed;
# .gpu-data/ is git-ignored, so it travels only as `carry`):
#   python scripts/pack_photos.py ../shared/data/photos/train .gpu-data/train --budget-mb 52 --holdout 150
#   run(command="MINUTES=8 bash scripts/device_train.sh", carry=[".gpu-data"], timeout_s=590)
# Two `filmcolor train` processes on one run folder, both timed by train's own --max-minutes (the
# wall time of the training steps, kept across --resume): (1) the L1 warm-up for L1_SHARE of
# MINUTES, (2) --resume with the warm-up set to the step (1) reached, cGAN + L1 until MINUTES.
# Comes back under $OUT: log.txt (environment), train.txt (both training logs),
# run/default-l1.safetensors (the EMA generator at the end of the warm-up), gan-mid.safetensors
# (halfway through the cGAN phase), run/default.safetensors (at the end), run/loss.png, and with
# .gpu-data/holdout (training photos the run never sees; pack_photos.py --holdout) run/metrics.csv,
# a validation on them every VAL_EVERY steps: where the network starts to memorise its photos. The
# models are re-saved at every checkpoint, so a call cut short still returns the latest.
# SMOKE=1 checks the script on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-results}"; mkdir -p "$out"
py=$(command -v python3 || command -v python)
data=${DATA:-.gpu-data/train}; minutes=${MINUTES:-8}; l1_share=${L1_SHARE:-0.35}
batch=${BATCH:-64}; crop=${CROP:-128}; ndf=${NDF:-64}; ckpt=${CKPT:-1000}; val_every=${VAL_EVERY:-2000}
device=cuda
if [[ "${SMOKE:-0}" == 1 ]]; then device=cpu; batch=2; crop=64; ckpt=20; val_every=20; fi
export FILMCOLOR_HOME=${FILMCOLOR_HOME:-/tmp/filmcolor-home} PYTHONUNBUFFERED=1
log="$out/log.txt"
if ! "$py" -c "import filmcolor.configs" 2>/dev/null; then  # no registry there: nothing may be fetched
  "$py" -m pip install -q --no-index --no-deps --no-build-isolation -e . >> "$log" 2>&1 ||
    { "$py" -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site . >> "$log" 2>&1 &&
      export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}; }
fi
{ nvidia-smi; nproc; "$py" -c "import torch, cv2, filmcolor; print('torch', torch.__version__, 'cv2', cv2.__version__)"; } >> "$log" 2>&1

val=(--set 'val=[]')
holdout="$(dirname "$data")/holdout"
[[ -d "$holdout" ]] && val=(--val "$holdout" --set val_every="$val_every" --set val_images=150 --set grid_images=0 \
                            --set val_max_side=256)
run=(-m filmcolor train --device "$device" --data "$data" "${val[@]}" --out "$out/run" --batch-size "$batch"
     --set crop="$crop" --set ndf="$ndf" --set checkpoint_every="$ckpt" --set name=default --set cache=)
big=10000000  # planned steps: the time limits end both phases
l1_minutes=$("$py" -c "print(round($minutes * $l1_share, 3))")

# (1) the L1 warm-up
"$py" "${run[@]}" --steps "$big" --set warmup_steps="$big" --max-minutes "$l1_minutes" > "$out/train.txt" 2>&1
echo "L1 phase exit $?" | tee -a "$log"
warmup=$("$py" -c "from filmcolor.weights import read_info; print(read_info('$out/run/default.safetensors').card['steps'])")
cp "$out/run/default.safetensors" "$out/run/default-l1.safetensors"
echo "warm-up ended at step $warmup" | tee -a "$log"

# (2) cGAN + L1 from there, with a copy of the model halfway through
gan_s=$("$py" -c "print(int($minutes * 60 * (1 - $l1_share)))")
"$py" "${run[@]}" --resume --steps "$big" --set warmup_steps="$warmup" --max-minutes "$minutes" >> "$out/train.txt" 2>&1 &
pid=$!
( sleep $(( gan_s / 2 + 10 )); kill -0 "$pid" 2>/dev/null && cp "$out/run/default.safetensors" "$out/gan-mid.safetensors" ) &
wait "$pid"; echo "cGAN phase exit $?" | tee -a "$log"
rm -f "$out/run/checkpoint.pt"  # models and optimisers (over the size that comes back)
grep -h "time limit\|^step [0-9]*000/" "$out/train.txt" | sed 's/^step \([0-9]*\)\/[0-9]*/step \1/' | tail -n 4 | tee -a "$log"
ls -la "$out" "$out/run" | tee -a "$log"
