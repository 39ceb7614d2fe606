#!/usr/bin/env bash
# The GPU checks of the engine issue, as ONE script for a lent GPU (see ../shared/gpu/README.md):
#   here, once:  printf "/.whl/\n/.site/\n" >> .git/info/exclude; bash ../shared/gpu/fetch-wheels.sh torch-sim-atomistic==0.3.0
#   device tool: bash scripts/gpu_check.sh      (timeout ~480 s; results under $OUT)
# It installs the carried wheels, runs `pytest -m gpu` and the MD benchmark (one member and the committee, torch-sim
# and ASE engines, the embedded URA ensemble) and tees every log into $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
  export PYTHONPATH=$PWD/.site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
timeout 200 python3 -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/pytest_gpu.log"
timeout 240 python3 scripts/bench_md.py --ensemble deepeut/models/ura --steps 200 --device cuda 2>&1 | tee "$OUT/bench_md.log"
