#!/usr/bin/env bash
# Check the GPU path in one command, on a machine with an NVIDIA GPU and CuPy, writing everything
# into one folder. Steps run in the order named, each stopped at its time limit (seconds), so
# that one that hangs leaves time and results to the others:
#   gputests  240  the tests marked gpu (pytest -m gpu), CuPy against NumPy   tests-gpu.log
#   run       270  the 10-epoch Fashion-MNIST accuracy run, then PyTorch's on
#                  the same settings (a 10-epoch benchmark at batch 128)       run.log
#   layers     90  2 epochs of the app with BatchNorm, a global pool, AdamW, label
#                  smoothing and the first Conv and its BatchNorm frozen on CuPy:
#                  the static step's newer operations                          layers.log
#   bench     300  the benchmark against PyTorch eager and torch.compile      bench.log bench.json
#   variants  120  scripts/conv_variants.py: each way to run the convolutions
#                  and the matrix products, timed                             variants.log variants.json
#   tests     240  the rest of the suite (backend=auto picks CuPy there)      tests.log
#   tf32      300  (not by default) the benchmark again with backend.tf32=true: the larger
#                  products on tensor cores, as PyTorch's convolutions     bench-tf32.log/.json
#   sanitize  510  (not by default) the GPU kernel tests under compute-sanitizer's racecheck
#                  (shared memory two threads use with no barrier between), synccheck (a barrier
#                  not every thread reaches) and memcheck, 170 s each           sanitize-TOOL.log
# check.txt gets the GPU and versions, how long the kernels took to compile, then a line per
# step as it ends (exit status, seconds), the accuracies, the benchmark's ratios and where the
# variants' rules pick the faster way:
# read it first.
# Usage: scripts/gpu-check.sh [--within SECONDS] [folder] [step ...]
#        (default: outputs/gpu-check, and gputests run layers bench variants tests)
# --within SECONDS ends the whole check in that time: each step's limit is cut to what is left,
# and a step that would get under 20 s is skipped, so a check run under a caller's time limit
# still writes every step's line to check.txt instead of being killed in the middle of one.
# The runs' own folders go to outputs/gpu-check-runs/, so the folder holds only the files above:
# nine with the default steps.
# The full Fashion-MNIST must be findable (data.root, GPUCNN_DATA, or the Debian package).
set -uo pipefail
cd "$(dirname "$0")/.."
within=""
if [ "${1:-}" = --within ]; then
  within=${2:?"gpu-check: --within needs a number of seconds"}
  [[ "$within" =~ ^[0-9]+$ ]] || { echo "gpu-check: --within takes whole seconds, not '$within'"; exit 2; }
  shift 2
fi
out="${1:-outputs/gpu-check}"
shift || true
steps="${*:-gputests run layers bench variants tests}"
runs=outputs/gpu-check-runs
mkdir -p "$out" "$runs"
python3 -c "import cupy; assert cupy.cuda.runtime.getDeviceCount() > 0" \
  || { echo "gpu-check: CuPy cannot use a GPU here"; exit 1; }
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"
  python3 -c "import torch; print('torch', torch.__version__)" 2>/dev/null || echo "no torch"
  # NVRTC's build of the kernels, which a first run on a machine waits for (CuPy caches it)
  python3 - <<'PY'
import time
start = time.perf_counter()
try:
    from gpucnn.kernels import gpu
    gpu._kernel("adam")
    print(f"kernels: compiled (or read from CuPy's cache) in {time.perf_counter() - start:.1f} s")
except Exception as exc:
    print(f"kernels: not compiled ({type(exc).__name__}: {exc})")
PY
} | tee "$out/check.txt"

# left: the seconds the check has left under --within (a large number without it).
left() { echo $((${within:-999999} - SECONDS)); }

# [append=1] logged SECONDS LOG COMMAND...: the command under the time limit (cut to what the
# check has left), its output into LOG (added to it with append=1), its exit status returned
# (124: stopped at the limit).
logged() {
  local limit=$1 log=$2
  shift 2
  [ "$limit" -le "$(left)" ] || limit=$(left)
  [ "$limit" -gt 0 ] || return 124  # (timeout 0 would mean no limit at all)
  timeout "$limit" "$@" 2>&1 | tee ${append:+-a} "$out/$log"
  return "${PIPESTATUS[0]}"
}

# said run|peer|bench FILE: the figures that matter from a run's summary.json or a bench.json,
# appended to check.txt.
said() {
  python3 - "$@" <<'PY' | tee -a "$out/check.txt"
import json, sys
what, path = sys.argv[1:]
d = json.load(open(path))
def two(x):
    return "-" if x is None else f"{x:.2f}"
if what == "run":
    keys = ("status", "device", "test_accuracy", "val_accuracy", "seconds_per_epoch")
    print("run:", json.dumps({k: d.get(k) for k in keys}))
elif what == "peer":
    r = d["results"][0]
    print(f"10 epochs at batch 128 from the same weights: test accuracy gpucnn "
          f"{r['ours_acc']:.4f}, PyTorch {r.get('peer_acc')}")
else:
    tf32 = " (tf32)" if d.get("tf32") else ""
    for r in d["results"]:
        print(f"bench{tf32} batch {r['batch_size']}: gpucnn {r['ours_epoch_s']:.3f} s/epoch; "
              f"ratio to eager {two(r.get('ratio'))}, to torch.compile "
              f"{two(r.get('ratio_compile'))}")
PY
}

step_gputests() { logged 240 tests-gpu.log python3 -m pytest -q -p no:cacheprovider -n auto -m gpu; }
step_tests() { logged 240 tests.log python3 -m pytest -q -p no:cacheprovider -n auto -m "not gpu"; }

step_run() {
  rm -rf "$runs/run" "$runs/peer"
  logged 120 run.log python3 -m gpucnn.run backend=cupy data=fashion_mnist data.task=multiclass \
    train.epochs=10 train.batch_size=128 train.progress=false hydra.run.dir="$runs/run" || return
  said run "$runs/run/summary.json"
  # PyTorch on the same settings, from the same initial weights and batch order, for comparison.
  append=1 logged 150 run.log python3 -m gpucnn.bench backend=cupy data=fashion_mnist \
    data.task=multiclass 'bench.batch_sizes=[128]' bench.warmup_epochs=0 bench.epochs=10 \
    hydra.run.dir="$runs/peer" || return
  said peer "$runs/peer/bench.json"
}

step_layers() {
  rm -rf "$runs/layers"
  logged 90 layers.log python3 -m gpucnn.run backend=cupy data=fashion_mnist \
    data.task=multiclass model.batch_norm=true model.global_pool=true optimizer=adamw \
    train.label_smoothing=0.1 train.freeze=2 train.epochs=2 train.progress=false \
    hydra.run.dir="$runs/layers" \
    || return
  said run "$runs/layers/summary.json" || return
  # the static step trains it, frozen layers and all, unless the log says why not
  grep -h "GPU kernel set not used" "$out/layers.log" | tee -a "$out/check.txt" || true
}

# bench_as NAME [OVERRIDES...]: the benchmark against PyTorch eager and torch.compile, into
# NAME.log and NAME.json.
bench_as() {
  local name=$1
  shift
  rm -rf "${runs:?}/$name"
  logged 300 "$name.log" python3 -m gpucnn.bench backend=cupy data=fashion_mnist \
    data.task=multiclass bench.peer_compile=true "$@" hydra.run.dir="$runs/$name" \
    && cp "$runs/$name/bench.json" "$out/$name.json" && said bench "$out/$name.json"
}

step_bench() { bench_as bench bench.profile=true; }
step_tf32() { bench_as bench-tf32 backend.tf32=true; }

step_variants() {
  logged 120 variants.log python3 scripts/conv_variants.py --json "$out/variants.json" \
    && grep "the rule picks" "$out/variants.log" >>"$out/check.txt"
}

step_sanitize() {
  local tool status=0
  for tool in racecheck synccheck memcheck; do
    logged 170 "sanitize-$tool.log" compute-sanitizer --tool "$tool" --error-exitcode 9 \
      --target-processes all python3 -m pytest -q -p no:cacheprovider tests/test_gpu_kernels.py \
      -m gpu || status=1
  done
  return $status
}

status=0
for step in $steps; do
  if ! declare -F "step_$step" >/dev/null; then
    echo "gpu-check: no step '$step' (gputests run layers bench variants tests tf32 sanitize)" | tee -a "$out/check.txt"
    status=1
    continue
  fi
  if [ "$(left)" -lt 20 ]; then
    echo "$step: skipped, $(left) s left of the check's $within" | tee -a "$out/check.txt"
    status=1
    continue
  fi
  start=$SECONDS
  "step_$step"
  rc=$?
  [ "$rc" = 124 ] && how="stopped at its time limit" || how="exit $rc"
  echo "$step: $how, $((SECONDS - start)) s" | tee -a "$out/check.txt"
  [ "$rc" = 0 ] || status=1
done
exit $status
