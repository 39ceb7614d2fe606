#!/usr/bin/env bash
# GFN2-xTB reference data that samples the liquid (issue "Potentials that hold", step 1), for one system:
#   1. stage=classical at scale=tiny (6 boxes) and scale=small (3 boxes): GAFF2 liquids, then unconstrained
#      frames every 2 ps at 353, 400 and 450 K (6 per temperature at tiny, 3 at small);
#   2. the frames of each box become one source file; the last box of each scale is the test set (split by
#      trajectory, never by neighbouring frames);
#   3. stage=label labels each file with GFN2-xTB into outputs/campaign/<system>/data, then the store is packed
#      into deepeut/data/campaign/<system>/ (commit it: it is the dataset the next steps train on).
# Every step resumes: rerun the same command after a kill.   SYSTEM=ura bash scripts/make_campaign_data.sh
set -euo pipefail
cd "$(dirname "$0")/.."
s=${SYSTEM:-ura}
root=outputs/campaign/$s
py=.venv/bin/python
$py run.py stage=classical system=$s scale=tiny classical.replicas=${TINY_BOXES:-6} \
  classical.samples_per_temperature=${TINY_SAMPLES:-6} output_dir=$root/classical_tiny
$py run.py stage=classical system=$s scale=small classical.replicas=${SMALL_BOXES:-3} \
  classical.samples_per_temperature=${SMALL_SAMPLES:-3} output_dir=$root/classical_small
for scale in tiny small; do
  $py -m deepeut.classical.samples $root/classical_$scale $root/sources | while read -r split path; do
    $py run.py stage=label system=$s data.source=$path data.split=$split data.store=$root/data \
      labeler.executor.n_workers=${WORKERS:-2} output_dir=$root/label_$(basename "$path" .extxyz) < /dev/null
    $py -m deepeut.data.demo pack $root/data deepeut/data/campaign/$s < /dev/null
  done
done
