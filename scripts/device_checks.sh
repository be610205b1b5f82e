#!/usr/bin/env bash
# The GPU checks of issues 3 and 6 in one short call, for a session that is lent a device.
# The device image has torch, OpenCV, click, rich, scikit-image and safetensors but no PyAV and no
# registry, so PyAV travels as a wheel (see docs/BENCHMARKS.md, "GPU"):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl av==18.1.0
#   run(command="bash scripts/device_checks.sh", carry=[".whl"], timeout_s=420)
# Writes every result under $OUT (default: ./device-results) so it comes back with the reply:
#   cuda-tests.txt        pytest -m cuda (the CUDA paths: pipeline vs CPU, compose on the device, ...)
#   bench-gpu.json/.txt   scripts/bench.py: the sample and synthetic 480p/1080p, profile of one batch,
#                         each pipeline thread timed alone
#   train-gpu*.txt        scripts/bench_train.py at 256x256 (issue 3's 800 img/s target), cGAN and L1
#   bench-threads.txt, threads-*.json  1080p at several torch/OpenCV CPU thread settings
#   bench-gpu-compile.* the same with torch.compile (optional speed-up, measured last)
#   env.txt               nvidia-smi, CPU count, package versions
# Each step is time-boxed, so one hang never costs the whole call. SMOKE=1 runs tiny sizes on
# whatever device there is (for checking the script itself on a CPU machine). ONLY="cuda-tests
# bench-gpu" runs just those steps; FRAMES=N and PROFILE=0 shorten the bench; BOX=S is each step's limit.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-results}"
mkdir -p "$out"
py=$(command -v python3 || command -v python)
frames=${FRAMES:-600}; train_steps=40; batch=64; crop=256; box=${BOX:-150}
if [[ "${SMOKE:-0}" == 1 ]]; then frames=20; train_steps=2; batch=2; crop=64; box=120; fi

if ! "$py" -c "import av" 2>/dev/null && compgen -G ".whl/*.whl" > /dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    > /tmp/filmcolor-install.txt 2>&1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$py" -c "import filmcolor.configs" 2>/dev/null; then  # no registry there: nothing may be fetched
  "$py" -m pip install -q --no-index --no-deps --no-build-isolation -e . >> /tmp/filmcolor-install.txt 2>&1 ||
    { "$py" -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site . \
        >> /tmp/filmcolor-install.txt 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}; }
fi
profile=--profile; [[ "${PROFILE:-1}" == 0 ]] && profile=
device=cuda
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || device=cpu
[[ "$device" == cpu && "${SMOKE:-0}" != 1 ]] && { echo "no CUDA device here; SMOKE=1 to check the script on CPU"; exit 3; }
{ cat /tmp/filmcolor-install.txt 2>/dev/null; nvidia-smi; nproc; "$py" -c "import av, cv2, torch, numpy, filmcolor; print('torch', torch.__version__, 'av', av.__version__, 'cv2', cv2.__version__, 'numpy', numpy.__version__)"; } \
  > "$out/env.txt" 2>&1
tail -n 2 "$out/env.txt"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its output, report the status
  local name=$1 secs=$2; shift 2
  [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]] && return 0
  local t0=$SECONDS
  echo "== $*" >> "$out/$name.txt"
  PYTHONUNBUFFERED=1 timeout "$secs" "$@" >> "$out/$name.txt" 2>&1
  echo "$name: exit $? in $((SECONDS - t0)) s"
}

step cuda-tests "$box" "$py" -m pytest -q -m cuda -p no:cacheprovider tests/test_pipeline.py tests/test_speed_paths.py \
    tests/test_bars.py \
    tests/test_sequences.py
step bench-gpu "$box" "$py" scripts/bench.py samples/steamboat_willie_1928.mp4 --synthetic --device "$device" \
    --frames "$frames" $profile --no-baseline --smooth-off --per-thread --json "$out/bench-gpu.json"
step train-gpu "$box" "$py" scripts/bench_train.py --device "$device" --crop "$crop" --batch "$batch" \
    --steps "$train_steps" --warmup 5 --json
step train-gpu-l1 "$box" "$py" scripts/bench_train.py --device "$device" --crop "$crop" --batch "$batch" \
    --steps "$train_steps" --warmup 5 --phase l1 --json
# 1080p end to end at several CPU thread settings (torch's, OpenCV's): which pipeline thread is slowest
for v in "default:" "torch1:--threads 1" "torch4:--threads 4" "torch1-cv4:--threads 1 --cv-threads 4"; do
  # shellcheck disable=SC2086
  step bench-threads "$box" "$py" scripts/bench.py --synthetic --sizes synthetic-1080p --device "$device" \
      --frames "$frames" --no-baseline --per-thread --workdir /tmp/filmcolor-bench ${v#*:} \
      --json "$out/threads-${v%%:*}.json"
done
step bench-gpu-compile "$box" "$py" scripts/bench.py --synthetic --device "$device" --frames "$frames" \
    --no-baseline --compile --json "$out/bench-gpu-compile.json"
tail -n 4 "$out"/*.txt
