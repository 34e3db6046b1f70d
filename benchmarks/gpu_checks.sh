#!/usr/bin/env bash
# Every GPU check, in two runs that each fit the device tool's 10 minutes a command (a session has ~15 minutes
# of device time in all, start-up included), for a machine with CUDA (Python with torch, numpy, scipy and
# pytest; no DICOM or Qt packages, which these checks do not need). Writes to ${OUT:-.}:
#   gpu.txt              the GPU, its memory and driver
#   gpu_tests.txt        the tests marked gpu (tests/engine/test_gpu.py and the older ones in the engine and planner tests)
#   gpu_throughput.json  benchmarks/gpu_throughput.py (pipeline vs bare model, trainer vs bare loop)
#   gpu_profile.txt      benchmarks/pipeline_profile.py on the GPU (stages synchronised)
# Usage (from the repository root):
#   bash benchmarks/gpu_checks.sh eager     # first: the tests without torch.compile, eager throughput, profile
#   bash benchmarks/gpu_checks.sh compile   # then: the compiled arms and the compile test (inductor, minutes)
# Each step has its own time limit, so that one slow step cannot take the others' time.
set -uo pipefail
stage=${1:-eager}
out=${OUT:-.}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | tee "$out/gpu.txt"
tests="tests/engine/test_gpu.py tests/engine/test_planner.py tests/engine/test_engine_training.py tests/engine/test_engine_inference.py"
case "$stage" in
  eager)
    timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu -k "not compiled" $tests 2>&1 | tail -30 \
      | tee "$out/gpu_tests.txt"
    timeout 180 python3 benchmarks/gpu_throughput.py --no-compile --slices 300 --json "$out/gpu_throughput.json" 2>&1 \
      | tee "$out/gpu_throughput.txt"
    timeout 90 python3 benchmarks/pipeline_profile.py --device cuda --preset gpu --slices 300 --repeat 1 2>&1 \
      | tee "$out/gpu_profile.txt"
    ;;
  compile)
    timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu -k "compiled" $tests 2>&1 | tail -30 \
      | tee "$out/gpu_tests_compile.txt"
    timeout 330 python3 benchmarks/gpu_throughput.py --slices 300 --json "$out/gpu_throughput_compiled.json" 2>&1 \
      | tee "$out/gpu_throughput_compiled.txt"
    ;;
  *) echo "usage: bash benchmarks/gpu_checks.sh eager|compile" >&2; exit 2 ;;
esac
