#!/usr/bin/env bash
# Regenerates the embedded default ensembles (deepeut/models/<system>/) that `stage=main` uses when no ensemble of
# the system exists in earlier outputs: for each system its potentials campaign with PACK=1 (scripts/campaign.sh:
# committed GFN2-xTB data -> 3 x allegro_small -> active learning -> validation at the tiny box -> pack), then the
# validations at the 4-ion-pair and training boxes (scripts/validate_scales.sh), whose records land beside the packed
# ensemble. Without FROM_SCRATCH=1 each campaign goes on from its committed snapshot (deepeut/data/campaign/<system>);
# FROM_SCRATCH=1 relabels and retrains from the classical liquids (tens of CPU-hours per system). Two systems run
# side by side, one thread each; each writes outputs/campaign_<system>.log. Resumable: kill it, run it again.
#   bash scripts/make_default_ensembles.sh            SYSTEMS="nma" FROM_SCRATCH=1 bash scripts/make_default_ensembles.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p outputs
regenerate() {
  SYSTEM=$1 PACK=1 bash scripts/campaign.sh && SYSTEM=$1 SCALES="small:5 train:2" bash scripts/validate_scales.sh
}
pids=()
for s in ${SYSTEMS:-ura act nma}; do
  regenerate "$s" >> "outputs/campaign_$s.log" 2>&1 &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 5; done
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || { echo "a campaign failed: see outputs/campaign_<system>.log" >&2; exit 1; }
