#!/usr/bin/env bash
# The potentials campaign of one system (issue "Potentials that hold"), from scratch or resumed:
#   1. data:     the committed xTB dataset deepeut/data/campaign/<system>/ is restored into the store; until it is
#                complete (the file `complete` there; or with FROM_SCRATCH=1) scripts/make_campaign_data.sh makes
#                it or goes on labeling its committed sources (classical liquids + GFN2-xTB);
#   2. train:    3 × allegro_small on it (train=campaign), unless the committed snapshot has an ensemble
#                (deepeut/data/campaign/<system>/ensemble/, from an earlier session): then the loop warm-starts
#                from it and nothing is trained from scratch again (its iteration 0 retrains it first when the
#                snapshot holds training labels it never saw);
#   3. al:       the active-learning loop (al=campaign) at scale=tiny (AL_SCALE=small: the 4-ion-pair box) from the
#                classical liquids, warm-started retraining (AL_EPOCHS per member per iteration); the store, the newest complete iteration's
#                ensemble and the history are packed into deepeut/data/campaign/<system>/ after the loop (commit
#                it; `SNAPSHOT_ONLY=1` packs a running loop's state without starting anything; `NEW_SEGMENT=1`
#                continues a finished loop under the current settings from its newest committee);
#   4. validate: stage=validate of the final ensemble (VALIDATE_PS at the AL scale) into validate_<its digest>;
#   5. pack:     the validated ensemble becomes deepeut/models/<system>/ (PACK=1; commit it).
# Every step resumes (kill at any point, rerun the same command). MD (exploration, validation) runs the members
# compiled ahead of time (md.compiled; COMPILED=false for the eager models).     SYSTEM=ura bash scripts/campaign.sh
source "$(dirname "$0")/campaign_env.sh"
snapshot() {
  $py -m deepeut.active_learning.snapshot $root/al $packed --store $root/data \
    --started-from "$(cat $root/initial_ensemble)"
}
if [ "${SNAPSHOT_ONLY:-0}" = 1 ]; then snapshot; exit 0; fi
# NEW_SEGMENT=1: a finished loop (stopped by its rule, or out of iterations) goes on under the current settings:
# its state is packed, its folder kept as al_<date>, and a new loop starts from the newest committed committee
if [ "${NEW_SEGMENT:-0}" = 1 ] && [ -f $root/al/al_state.json ]; then
  snapshot
  mv $root/al $root/al_$(date +%Y%m%d_%H%M%S)
  rm -f $root/initial_ensemble
fi
if [ "${FROM_SCRATCH:-0}" = 1 ] || [ ! -f $packed/complete ]; then  # no data yet, or partly labeled
  SYSTEM=$s bash scripts/make_campaign_data.sh
else
  $py -m deepeut.data.demo unpack $packed $root/data
fi
# the classical liquids the exploration and validation start from (cached: the data step made them already);
# AL_SCALE=small explores the 4-ion-pair liquids instead of the tiny ones (where a member may fail that holds at tiny)
al_scale=${AL_SCALE:-tiny}
if [ "$al_scale" = small ]; then
  $py run.py stage=classical system=$s scale=small classical.replicas=${SMALL_BOXES:-3} \
    classical.samples_per_temperature=${SMALL_SAMPLES:-3} output_dir=$root/classical_small
else
  $py run.py stage=classical system=$s scale=tiny classical.replicas=${TINY_BOXES:-6} \
    classical.samples_per_temperature=${TINY_SAMPLES:-6} output_dir=$root/classical_tiny
fi
starts=$(ls -d $root/classical_$al_scale/replica_*/box.extxyz | paste -sd, -)
# the AL loop's iteration 0 ensemble, chosen once per outputs folder: the committed snapshot, else a fresh training
if [ ! -f $root/initial_ensemble ]; then
  if [ "${FROM_SCRATCH:-0}" != 1 ] && [ -f $packed/ensemble/ensemble.json ]; then
    start=$root/snapshot_$(date +%Y%m%d_%H%M%S)
    mkdir -p $start && cp -r $packed/ensemble/. $start/
    echo "$start" > $root/initial_ensemble
  else
    echo "$root/train" > $root/initial_ensemble
  fi
fi
initial=$(cat $root/initial_ensemble)
if [ "$initial" = "$root/train" ] && [ ! -f $root/al/al_state.json ]; then  # then the loop owns the training
  $py run.py stage=train system=$s train=campaign data.store=$root/data output_dir=$root/train
fi
$py run.py stage=al system=$s scale=$al_scale al=campaign data.store=$root/data al.initial_ensemble=$initial \
  "md.starts=[$starts]" train=campaign train.max_epochs=${AL_EPOCHS:-12} md.compiled=${COMPILED:-true} \
  output_dir=$root/al
snapshot
final=$($py -c "import json,sys; print(json.load(open('$root/al/al_state.json'))['final_ensemble'])")
digest=$($py -c "from deepeut.training.potential import ensemble_digest; print(ensemble_digest('$final'))")
$py run.py stage=validate system=$s scale=$al_scale committee=$final validate.duration_ps=${VALIDATE_PS:-10} \
  "md.starts=[$starts]" md.compiled=${COMPILED:-true} output_dir=$root/validate_$digest  # one folder per committee
if [ "${PACK:-0}" = 1 ]; then
  $py -m deepeut.training.embedded pack $final deepeut/models/$s --origin campaign:$s
fi
