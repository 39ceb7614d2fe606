#!/usr/bin/env bash
# The GPU checks of the engine issue, as ONE script for a lent GPU (see ../shared/gpu/README.md):
#   here, once:  bash ../shared/gpu/fetch-wheels.sh torch-sim-atomistic==0.3.0   (wheels into .whl/, ignored)
#                bash scripts/gpu_check.sh prepare                                (boxes into .gpu/, ignored)
#   device tool: bash scripts/gpu_check.sh   with carry [".whl", ".gpu"]        (timeout ~560 s: the steps below are capped at 540 s; results under $OUT)
# It installs the carried wheels, runs `pytest -m gpu`, then the MD benchmark: the engines' overhead at the tiny
# box, and one member vs the committee (members one by one or vmapped) with nequip's vs the vesin-torch neighbour
# list at the paper's training box (URA, 352 atoms; and 10 of them batched, as AL exploration) and production box
# (NMA, 8192 atoms), and Allegro's contraction vs the matmul one for the small and the paper model at 8192 atoms
# (time and peak memory); every log in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = prepare ]; then
  mkdir -p .gpu
  for item in ura:train nma:production; do
    s=${item%%:*}; scale=${item##*:}
    .venv/bin/python run.py stage=build system=$s scale=$scale output_dir=outputs/gpu_boxes/${s}_$scale
    cp outputs/gpu_boxes/${s}_$scale/box.extxyz .gpu/${s}_$scale.extxyz
  done
  exit 0
fi
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
  export PYTHONPATH=$PWD/.site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
timeout 90 python3 -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/pytest_gpu.log"
timeout 100 python3 scripts/bench_md.py --ensemble deepeut/models/ura --steps 200 --device cuda 2>&1 | tee "$OUT/bench_md.log"
timeout 80 python3 scripts/bench_md.py --ensemble deepeut/models/ura --box .gpu/ura_train.extxyz --device cuda \
  --replicas 10 2>&1 | tee "$OUT/bench_md_ura_train.log"
timeout 150 python3 scripts/bench_md.py --ensemble deepeut/models/nma --box .gpu/nma_production.extxyz --device cuda \
  --calls 10 2>&1 | tee "$OUT/bench_md_nma_production.log"
timeout 120 python3 scripts/bench_contraction.py --system nma --box .gpu/nma_production.extxyz --device cuda \
  --calls 3 2>&1 | tee "$OUT/bench_contraction_nma_production.log"
