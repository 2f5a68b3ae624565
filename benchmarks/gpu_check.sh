#!/usr/bin/env bash
# The GPU check of the decoding path, in at most 6 minutes on an H100/H200 (compilation included):
#   1. the exactness tests on CUDA (cached == uncached per attention kind, windows after the first,
#      one graph per step, compiled == eager, guided == the two branches apart, batch == single);
#   2. paper-size LOW (2048 guided steps) + UP (8192 steps) in bf16: ms/step eager and compiled
#      (CUDA graphs), and one 4.096 s clip at batch 1 and 64.
# Results: $OUT (or benchmarks/results/) gpu.txt, tests.log, decode_cuda.json.
#
# The device image has torch, einops, transformers and safetensors but not diffusers: carry its wheel.
# Once, here: echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps --only-binary=:all: \
#   --python-version 3.12 --implementation cp -d .whl diffusers importlib_metadata zipp
# then run with carry [".whl"]:  bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}   # the library without installing it (pipelines/ is not needed here)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$RESULTS/gpu.txt"

echo "== 1. exactness on CUDA"
IM2WAV_TEST_DEVICE=cuda timeout 150 python3 -m pytest -q -p no:cacheprovider -x \
    tests/test_decoding.py tests/test_sampling.py 2>&1 | tee "$RESULTS/tests.log" | tail -n 5
tests=${PIPESTATUS[0]}

echo "== 2. paper-size LOW + UP, bf16, eager and compiled"
timeout 330 python3 benchmarks/bench_decode.py --device cuda --dtype bfloat16 --paper --compile --clip \
    --skip-small --steps 30 --out "$RESULTS/decode_cuda.json" 2>&1 | grep -v "^ " | tail -n 30
bench=${PIPESTATUS[0]}
echo "tests exit $tests, benchmark exit $bench"
exit $(( tests != 0 || bench != 0 ))
