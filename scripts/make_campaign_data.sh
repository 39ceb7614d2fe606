#!/usr/bin/env bash
# GFN2-xTB reference data that samples the liquid (issue "Potentials that hold", step 1), for one system:
#   1. stage=classical at scale=tiny (6 boxes) and scale=small (3 boxes): GAFF2 liquids, then unconstrained
#      frames every 2 ps at 353, 400 and 450 K (6 per temperature at tiny, 3 at small);
#   2. the frames of each box become one source file; the last box of each scale is the test set (split by
#      trajectory, never by neighbouring frames); the sources are committed with the data
#      (deepeut/data/campaign/<system>/sources/, their splits in sources/splits.txt);
#   3. stage=label labels each file with GFN2-xTB into outputs/campaign/<system>/data, and after each file the
#      store is packed into deepeut/data/campaign/<system>/ (commit it: it is the dataset the next steps train on);
#      the file `complete` there marks the end.
# Every step resumes: rerun the same command after a kill. On a fresh machine the committed sources and labels
# are restored first, so the same frames are labeled and no committed label is recomputed.
#   SYSTEM=ura bash scripts/make_campaign_data.sh
source "$(dirname "$0")/campaign_env.sh"
mkdir -p $root/sources
if [ -f $packed/sources/splits.txt ]; then  # committed sources: label exactly these frames
  for f in $packed/sources/*.extxyz.gz; do
    [ -f $root/sources/$(basename "$f" .gz) ] || gunzip -c "$f" > $root/sources/$(basename "$f" .gz)
  done
  sed "s|^\([a-z]*\) |\1 $root/sources/|" $packed/sources/splits.txt > $root/sources/splits.txt
else
  $py run.py stage=classical system=$s scale=tiny classical.replicas=${TINY_BOXES:-6} \
    classical.samples_per_temperature=${TINY_SAMPLES:-6} output_dir=$root/classical_tiny
  $py run.py stage=classical system=$s scale=small classical.replicas=${SMALL_BOXES:-3} \
    classical.samples_per_temperature=${SMALL_SAMPLES:-3} output_dir=$root/classical_small
  for scale in tiny small; do
    $py -m deepeut.classical.samples $root/classical_$scale $root/sources
  done > $root/sources/splits.txt
  mkdir -p $packed/sources
  while read -r split path; do
    gzip -n -9 -c "$path" > $packed/sources/$(basename "$path").gz
    echo "$split $(basename "$path")"
  done < $root/sources/splits.txt > $packed/sources/splits.txt
fi
if [ -f $packed/train.extxyz.gz ]; then $py -m deepeut.data.demo unpack $packed $root/data; fi
while read -r split path; do
  $py run.py stage=label system=$s data.source=$path data.split=$split data.store=$root/data \
    labeler.executor.n_workers=${WORKERS:-2} output_dir=$root/label_$(basename "$path" .extxyz) < /dev/null
  $py -m deepeut.data.demo pack $root/data $packed < /dev/null
done < $root/sources/splits.txt
echo "liquid data complete: $(wc -l < $packed/manifest.jsonl) frames of $(wc -l < $packed/sources/splits.txt) source files labeled by scripts/make_campaign_data.sh ($(date +%F)); active-learning labels are added to this folder by the snapshot" \
  > $packed/complete
