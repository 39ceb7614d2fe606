#!/usr/bin/env bash
# The stability targets of issue "Potentials that hold" for the embedded ensemble of one system: stage=validate
# (committee mean and member 0, NVT at 353 K from classical liquids, fresh GFN2-xTB labels of frames of these runs)
# at the tiny box for 10 ps, the 4-ion-pair box for 5 ps and the paper's training box for 2 ps. Each record lands
# beside the ensemble as validation_<scale>.json (commit it) and in outputs/campaign/<system>/validate_<digest>_<scale>/.
# Resumes (the MD and labels of each stage continue where a killed run stopped). The MD runs the members compiled
# ahead of time (md.compiled=true, 1.6x faster with one thread per job; COMPILED=false for the eager models).
#   SYSTEM=ura bash scripts/validate_scales.sh          SCALES="tiny:10 small:5" to choose scales and ps
source "$(dirname "$0")/campaign_env.sh"
ensemble=${ENSEMBLE:-deepeut/models/$s}
digest=$($py -c "from deepeut.training.potential import ensemble_digest; print(ensemble_digest('$ensemble'))")
for item in ${SCALES:-tiny:10 small:5 train:2}; do
  scale=${item%%:*}
  ps=${item##*:}
  $py run.py stage=validate system=$s scale=$scale committee=$ensemble validate.duration_ps=$ps \
    md.compiled=${COMPILED:-true} output_dir=$root/validate_${digest}_$scale
done
