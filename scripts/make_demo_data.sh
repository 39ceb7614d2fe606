#!/usr/bin/env bash
# Regenerates the shipped GFN2-xTB demo datasets (deepeut/data/demo/<system>/) with the reference stage:
# 60 fs of xTB-driven NVT MD at 353 K on the tiny box (120 steps of 0.5 fs), 45 train + 15 test frames.
# Takes ~15-30 min per system on one core; systems run side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
for s in ${SYSTEMS:-ura act nma}; do
  ( .venv/bin/python run.py stage=reference system=$s scale=tiny reference.duration_ps=0.06 \
      reference.n_train=45 reference.n_test=15 output_dir=outputs/demo/$s \
    && .venv/bin/python -m deepeut.data.demo pack outputs/demo/$s/data deepeut/data/demo/$s ) &
done
wait
