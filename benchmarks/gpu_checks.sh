#!/usr/bin/env bash
# Every check that needs the GPU machine, in one run (device tool, `carry: ["benchmarks/.cases"]`):
# the gpu-marked tests on the GPU, and beside them the few-shot benchmark's CPU grid on the machine's cores
# (2 threads per run, as on the development machine; several runs side by side).
#   bash benchmarks/gpu_checks.sh [JOBS] [MINUTES]
set -uo pipefail
jobs=${1:-7}; minutes=${2:-1}
out=${OUT:-/tmp/out}; mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nproc; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
lscpu | grep -E "Model name|^CPU\(s\)" || true
python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_planner.py tests/test_engine_training.py \
  tests/test_engine_inference.py > "$out/gpu_tests.log" 2>&1 &
tests=$!
timeout 520 python3 benchmarks/fewshot.py --cases benchmarks/.cases --minutes "$minutes" --seeds 0 1 2 \
  --jobs "$jobs" --threads 2 --out "$out/fewshot.json" > "$out/fewshot.log" 2>&1
wait $tests; echo "gpu tests exit $?"; tail -5 "$out/gpu_tests.log"
python3 benchmarks/fewshot.py --table "$out/fewshot.jsonl"
