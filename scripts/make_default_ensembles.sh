#!/usr/bin/env bash
# Regenerates the embedded default ensembles (deepeut/models/<system>/) that `stage=main` uses when no ensemble
# of the system exists in earlier outputs: stage=train with train=embedded (3 x allegro_small, 60 epochs, early
# stopping 15) on the shipped xTB demo dataset, then `pack` (models + manifest only, ~1 MB per member).
# About an hour per system on one core; two systems run side by side (one thread each).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for s in ${SYSTEMS:-ura act nma}; do
  ( .venv/bin/python run.py stage=train system=$s train=embedded output_dir=outputs/embedded/$s \
    && .venv/bin/python -m deepeut.training.embedded pack outputs/embedded/$s deepeut/models/$s ) &
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 5; done
done
wait
