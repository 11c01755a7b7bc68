#!/usr/bin/env bash
# GPU readiness, on one CUDA GPU, in under 8 minutes:
#   1. the method tests on CUDA: tests/core/test_n2d_dcn.py (n2d and dcn against k-means on
#      digits, the auto rule) with DEEPCLUST_TEST_DEVICE=cuda, then the method contract
#      (tests/core/test_method_contract.py: its fits run on the CPU by design, to time the
#      cancel latency) and the engine tests; tests/core needs no PostgreSQL or Redis;
#   2. one full-size benchmark: IDEC on MNIST (n=70000) with the reference schedule (300 SGD
#      pretraining epochs, update_interval 140: bench/baselines.py's preset), through
#      `deepclust run --device cuda`, appended to bench/results/baselines.jsonl;
#   3. if under 5 minutes are spent: N2D on MNIST on the autoencoder step 2 cached
#      (bench/cache), appended to bench/results/n2d_dcn.jsonl.
# Prints the device, each step's wall time and the ACC.     Usage: bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PYTHONPATH=$PWD
if [ -z "${DEEPCLUST_DATA:-}" ]; then  # the benchmark data: ./shared/data or ../shared/data
  if [ -d shared/data ]; then export DEEPCLUST_DATA=$PWD/shared/data
  else export DEEPCLUST_DATA=$PWD/../shared/data; fi
fi
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__,
      "| CUDA", torch.version.cuda)' || exit 1

echo "== 1. method tests on CUDA"
DEEPCLUST_TEST_DEVICE=cuda timeout 150 "$PY" -m pytest -p no:cacheprovider -q -x \
  tests/core/test_n2d_dcn.py
n2d_dcn_rc=$?
timeout 120 "$PY" -m pytest -p no:cacheprovider -q tests/core/test_method_contract.py \
  tests/core/test_engine.py
contract_rc=$?
echo "tests: n2d_dcn rc=$n2d_dcn_rc, contract+engine rc=$contract_rc, $(elapsed) s so far"

echo "== 2. IDEC on MNIST, reference schedule, CUDA"
t0=$(date +%s)
timeout 240 "$PY" bench/baselines.py --datasets mnist --methods idec --seeds 0 --device cuda
echo "idec mnist: rc=$? wall $(( $(date +%s) - t0 )) s (ACC in the JSON line above)"

if [ "$(elapsed)" -lt 300 ]; then
  echo "== 3. N2D on MNIST on the same pretrained autoencoder (bench/cache)"
  t0=$(date +%s)
  timeout $(( 460 - $(elapsed) )) "$PY" bench/n2d_dcn.py --datasets mnist --methods n2d \
    --seeds 0 --device cuda
  echo "n2d mnist: rc=$? wall $(( $(date +%s) - t0 )) s (ACC in the JSON line above)"
else
  echo "== 3. skipped: $(elapsed) s spent"
fi
echo "total $(elapsed) s"
