#!/usr/bin/env bash
# Every GPU check in one run, for a machine with CUDA (the device tool's GPU machine: Python with torch,
# numpy, scipy and pytest; no DICOM or Qt packages, which these checks do not need). Writes to ${OUT:-.}:
#   gpu_tests.txt        the tests marked gpu (tests/test_gpu.py and the older ones in the engine and planner tests)
#   gpu_throughput.json  benchmarks/gpu_throughput.py (pipeline vs bare model, trainer vs bare loop)
#   gpu_profile.txt      benchmarks/pipeline_profile.py on the GPU (stages synchronised)
# Usage: bash benchmarks/gpu_checks.sh   (from the repository root)
set -uo pipefail
out=${OUT:-.}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py tests/test_planner.py tests/test_engine_training.py \
  tests/test_engine_inference.py 2>&1 | tail -30 | tee "$out/gpu_tests.txt"
python3 benchmarks/gpu_throughput.py --slices 500 --json "$out/gpu_throughput.json" 2>&1 | tee "$out/gpu_throughput.txt"
python3 benchmarks/pipeline_profile.py --device cuda --preset gpu --slices 500 --repeat 2 2>&1 | tee "$out/gpu_profile.txt"
