#!/usr/bin/env bash
# GPU readiness, on one CUDA GPU, in under 8 minutes:
#   1. the method tests on CUDA: tests/core/test_n2d_dcn.py (n2d and dcn against k-means on
#      digits, the auto rule) with DEEPCLUST_TEST_DEVICE=cuda, then the method contract
#      (tests/core/test_method_contract.py: its fits run on the CPU by design, to time the
#      cancel latency) and the engine tests; tests/core needs no PostgreSQL or Redis;
#   2. one full-size benchmark: IDEC on MNIST (n=70000) with the reference schedule (300 SGD
#      pretraining epochs, update_interval 140: bench/baselines.py's preset), through
#      `deepclust run --device cuda`, appended to bench/results/baselines.jsonl;
#   3. if under 5.5 minutes are spent: DCN against ClustPy's DCN on USPS, seed 0, both on the
#      GPU (bench/peer_clustpy.py: issue #19 asks for at most half ClustPy's wall time);
#   4. if time is left: N2D on MNIST on the autoencoder of step 2 (bench/cache).
# Prints the device, each step's wall time and the ACC.     Usage: bash bench/gpu_check.sh
#
# On the lent machine (its image has torch but not this project's environment, and no network):
#   here:   make gpu-bundle          (wheels, ClustPy's source and the data, in .gpu/)
#   there:  device run, carry [".gpu"], command "bash bench/gpu_check.sh"
# The new result lines come back in $OUT/<results file>.jsonl; append them to bench/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=${PY:-.venv/bin/python}; else PY=${PY:-python3}; fi
export PYTHONPATH=$PWD
if [ -d .gpu/whl ]; then  # the bundle from `make gpu-bundle`
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu-site .gpu/whl/*.whl || exit 1
  export PYTHONPATH=$PWD:/tmp/gpu-site:$PWD/.gpu/site
  export DEEPCLUST_DATA=${DEEPCLUST_DATA:-$PWD/.gpu/data}
fi
if [ -z "${DEEPCLUST_DATA:-}" ]; then  # the benchmark data: ./shared/data or ../shared/data
  if [ -d shared/data ]; then export DEEPCLUST_DATA=$PWD/shared/data
  else export DEEPCLUST_DATA=$PWD/../shared/data; fi
fi
RESULTS=(baselines n2d_dcn peer_clustpy)
declare -A lines_before
for r in "${RESULTS[@]}"; do
  lines_before[$r]=$(cat "bench/results/$r.jsonl" 2>/dev/null | wc -l)
done
# pyproject's addopts load the schemathesis plugin, which only the API tests use
PYTEST=("$PY" -m pytest -p no:cacheprovider -o addopts= -q)
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__,
      "| CUDA", torch.version.cuda)' || exit 1

echo "== 1. method tests on CUDA"
DEEPCLUST_TEST_DEVICE=cuda timeout 150 "${PYTEST[@]}" -x tests/core/test_n2d_dcn.py
n2d_dcn_rc=$?
timeout 120 "${PYTEST[@]}" tests/core/test_method_contract.py tests/core/test_engine.py
contract_rc=$?
echo "tests: n2d_dcn rc=$n2d_dcn_rc, contract+engine rc=$contract_rc, $(elapsed) s so far"

echo "== 2. IDEC on MNIST, reference schedule, CUDA"
t0=$(date +%s)
timeout 240 "$PY" bench/baselines.py --datasets mnist --methods idec --seeds 0 --device cuda
echo "idec mnist: rc=$? wall $(( $(date +%s) - t0 )) s (ACC in the JSON line above)"

if [ "$(elapsed)" -lt 330 ]; then
  echo "== 3. DCN against ClustPy's DCN on USPS, seed 0, both on the GPU"
  t0=$(date +%s)
  timeout $(( 470 - $(elapsed) )) "$PY" bench/peer_clustpy.py --datasets usps --seeds 0 \
    --methods clustpy_dcn dcn
  echo "dcn vs clustpy: rc=$? wall $(( $(date +%s) - t0 )) s (both wall_s in the lines above)"
else
  echo "== 3. skipped: $(elapsed) s spent"
fi

if [ "$(elapsed)" -lt 400 ]; then
  echo "== 4. N2D on MNIST on the same pretrained autoencoder (bench/cache)"
  t0=$(date +%s)
  timeout $(( 470 - $(elapsed) )) "$PY" bench/n2d_dcn.py --datasets mnist --methods n2d \
    --seeds 0 --device cuda
  echo "n2d mnist: rc=$? wall $(( $(date +%s) - t0 )) s (ACC in the JSON line above)"
else
  echo "== 4. skipped: $(elapsed) s spent"
fi
if [ -n "${OUT:-}" ]; then  # the device tool returns $OUT: the lines this run appended
  for r in "${RESULTS[@]}"; do
    tail -n +$(( ${lines_before[$r]} + 1 )) "bench/results/$r.jsonl" > "$OUT/$r.jsonl" 2>/dev/null
  done
fi
echo "total $(elapsed) s"
