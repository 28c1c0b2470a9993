#!/usr/bin/env bash
# Check the GPU path in one command, on a machine with an NVIDIA GPU and CuPy: the whole test
# suite (its GPU tests included), the 10-epoch Fashion-MNIST accuracy run, and the benchmark
# against PyTorch, and the timings of each way to run the convolutions and the matrix products
# (scripts/conv_variants.py), all written into one folder:
#   gpu.txt  tests.log  run.log  accuracy.json  bench.log  bench.json  variants.log  variants.json
# Usage: scripts/gpu-check.sh [folder] [tests] [run] [bench] [variants] [sanitize]
#        (default: outputs/gpu-check, the first four)
# sanitize (not by default; a device call of its own): the GPU kernel tests under
# compute-sanitizer's racecheck (shared memory that two threads use with no barrier between),
# synccheck (a barrier not every thread of the block reaches) and memcheck, at most 170 s each:
#   sanitize-racecheck.log  sanitize-synccheck.log  sanitize-memcheck.log
# The runs' own folders go to outputs/gpu-check-runs/, so the folder holds only the files above
# (a device call brings back at most eight).
# The full Fashion-MNIST must be findable (data.root, GPUCNN_DATA, or the Debian package).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-outputs/gpu-check}"
shift || true
steps="${*:-tests run bench variants}"
runs=outputs/gpu-check-runs
mkdir -p "$out" "$runs"
python3 -c "import cupy; assert cupy.cuda.runtime.getDeviceCount() > 0" \
  || { echo "gpu-check: CuPy cannot use a GPU here"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
status=0
export PYTHONUNBUFFERED=1
if [[ " $steps " == *" tests "* ]]; then
  python3 -m pytest -q -p no:cacheprovider -n auto 2>&1 | tee "$out/tests.log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
if [[ " $steps " == *" run "* ]]; then
  rm -rf "$runs/run"
  python3 -m gpucnn.run backend=cupy data=fashion_mnist data.task=multiclass train.epochs=10 \
    train.batch_size=128 train.progress=false hydra.run.dir="$runs/run" 2>&1 | tee "$out/run.log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  python3 - "$runs/run" "$out" <<'PY'
import json, sys
run, out = sys.argv[1:]
s = json.load(open(f"{run}/summary.json"))
keep = ("status", "device", "test_accuracy", "val_accuracy", "seconds_per_epoch", "epoch_seconds")
json.dump({k: s.get(k) for k in keep}, open(f"{out}/accuracy.json", "w"), indent=1)
print("accuracy:", {k: s.get(k) for k in keep[:5]})
PY
fi
if [[ " $steps " == *" bench "* ]]; then
  rm -rf "$runs/bench"
  python3 -m gpucnn.bench backend=cupy data=fashion_mnist data.task=multiclass \
    bench.peer_compile=true bench.profile=true hydra.run.dir="$runs/bench" 2>&1 | tee "$out/bench.log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  cp "$runs/bench/bench.json" "$out/bench.json" 2>/dev/null || status=1
fi
if [[ " $steps " == *" variants "* ]]; then
  python3 scripts/conv_variants.py --json "$out/variants.json" 2>&1 | tee "$out/variants.log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
if [[ " $steps " == *" sanitize "* ]]; then
  for tool in racecheck synccheck memcheck; do
    timeout 170 compute-sanitizer --tool "$tool" --error-exitcode 9 --target-processes all \
      python3 -m pytest -q -p no:cacheprovider tests/test_gpu_kernels.py -k cuda 2>&1 \
      | tee "$out/sanitize-$tool.log"
    [ "${PIPESTATUS[0]}" = 0 ] || status=1
  done
fi
exit $status
