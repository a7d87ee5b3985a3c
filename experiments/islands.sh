#!/usr/bin/env bash
# The islands table of docs/islands.md: the `default` preset with one change per row, a small fixed
# budget (4,000 official MNIST training digits, 3 epochs, batch 64, seed 0), island figures on
# 500 of the 1,000 held-out validation digits (never the test split).
# Usage: bash experiments/islands.sh DATA_DIR [ROW ...]   (no rows: the table's first eleven)
#   e.g. bash experiments/islands.sh ../shared/data/mnist avg avg_top_w1_sh1
# Writes runs/islands/<row>/ (`tensorboard --logdir runs/islands`: one HParams trial per row) and
# appends one JSON line per row to runs/islands/islands.jsonl; 2-7 min per row on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. experiments/train_row.sh
DATA=${1:?usage: bash experiments/islands.sh DATA_DIR [ROW ...]}
shift
AVG="same_level=consensus attention=similarity update=average state_norm=true hidden_scale=1.0"
# the residual dynamics with the location and the island terms at temperature 0.3 (res_isl33_w3_sh1_pos_t03)
RPT="island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 position=top_down island_temperature=0.3"
declare -A ROWS=(
  [base]=""
  [avg]="$AVG"
  [avg_beta2]="$AVG attention_beta=2.0"
  [avg_isl]="$AVG island_weight=0.3"
  [avg_learn_isl]="$AVG learned_update_weights=true island_weight=0.3"
  [res_isl]="island_weight=0.3"
  [avg_isl34]="$AVG island_weight=0.3 island_scales=3,4,0"
  [avg_isl34_w1]="$AVG island_weight=1.0 island_scales=3,4,0"
  [avg_isl45_w1]="$AVG island_weight=1.0 island_scales=4,5,0"
  [avg_top_w1]="$AVG island_weight=1.0 island_scales=9,9,0"
  [avg_l2_w1]="$AVG island_weight=1.0 island_scales=9,4,9"
  # island_sharpness: neighbouring cells share an island or are distinct
  [avg_top_w1_sh1]="$AVG island_weight=1.0 island_scales=9,9,0 island_sharpness=1.0"
  [avg_isl34_w1_sh1]="$AVG island_weight=1.0 island_scales=3,4,0 island_sharpness=1.0"
  [avg_isl45_w1_sh1]="$AVG island_weight=1.0 island_scales=4,5,0 island_sharpness=1.0"
  [avg_isl45_w1_sh3]="$AVG island_weight=1.0 island_scales=4,5,0 island_sharpness=3.0"
  [avg_isl23_w1_sh1]="$AVG island_weight=1.0 island_scales=2,3,0 island_sharpness=1.0"
  [avg_isl33_w1_sh1]="$AVG island_weight=1.0 island_scales=3,3,0 island_sharpness=1.0"
  [avg_isl23_w1_sh3]="$AVG island_weight=1.0 island_scales=2,3,0 island_sharpness=3.0"
  [avg_isl33_w1_sh3]="$AVG island_weight=1.0 island_scales=3,3,0 island_sharpness=3.0"
  [avg_isl33_w3_sh1]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0"
  # the row above on the `mnist` preset's training (its shifts; its 8 steps, AdamW and clipping
  # without remat=false, which changes only the speed): the `islands` preset at this budget
  [avg_isl33_w3_sh1_shift2]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 augment_shift=2"
  [avg_isl33_w3_sh1_full]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 steps=8 learning_rate=0.005 weight_decay=0.05 clipnorm=1.0"
  # the `islands` objective on the accuracy model's residual update (the `default` dynamics)
  [res_isl33_w3_sh1]="island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0"
  # the `islands` row with one more capacity choice each (accuracy with the islands kept?):
  # learned update weights, learned consensus attention, 48 dims
  [avg_isl33_w3_sh1_learn]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 learned_update_weights=true"
  [avg_isl33_w3_sh1_att]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 attention=learned"
  [avg_isl33_w3_sh1_d48]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 dim=48 attention_dim=24"
  [avg_att]="$AVG attention=learned"  # the `att` row without the island terms
  # the contrastive temperature 0.1 -> 0.3 (a 48-dim full run merged level 1 at 0.1; docs/islands.md)
  [avg_isl33_w3_sh1_att_t03]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 attention=learned island_temperature=0.3"
  [avg_isl33_w3_sh1_att_d48]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 attention=learned dim=48 attention_dim=24"
  [avg_isl33_w3_sh1_att_d48_t03]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 attention=learned dim=48 attention_dim=24 island_temperature=0.3"
  # each column's learned location added to the top-down networks' input (the paper's top-down
  # "neural field"; position=top_down): on the islands row, on the accuracy model's residual
  # dynamics with the island terms, and on `default` alone
  [avg_isl33_w3_sh1_att_pos]="$AVG island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 attention=learned position=top_down"
  [res_isl33_w3_sh1_pos]="island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 position=top_down"
  [base_pos]="position=top_down"
  # a second seed (another 4,000 training digits and 1,000 held out) for the location's rows
  [base_s1]="seed=1"
  [base_pos_s1]="position=top_down seed=1"
  [res_isl33_w3_sh1_s1]="island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 seed=1"
  [res_isl33_w3_sh1_pos_s1]="island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 position=top_down seed=1"
  # the residual row with the location: a heavier objective, a softer temperature, the `mnist` training
  [res_isl33_w10_sh1_pos]="island_weight=10.0 island_scales=3,3,0 island_sharpness=1.0 position=top_down"
  [res_isl33_w3_sh1_pos_t03]="island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 position=top_down island_temperature=0.3"
  [res_isl33_w3_sh1_pos_full]="island_weight=3.0 island_scales=3,3,0 island_sharpness=1.0 position=top_down steps=8 learning_rate=0.005 weight_decay=0.05 clipnorm=1.0"
  # the `t03` row one `mnist` training setting at a time (which of them keeps level 2 in one piece?),
  # all four, and at the `mnist` preset's 64 dims
  [res_pos_t03_full]="$RPT steps=8 learning_rate=0.005 weight_decay=0.05 clipnorm=1.0"
  [res_pos_t03_steps8]="$RPT steps=8"
  [res_pos_t03_lr005]="$RPT learning_rate=0.005"
  [res_pos_t03_wd]="$RPT weight_decay=0.05"
  [res_pos_t03_clip]="$RPT clipnorm=1.0"
  [res_pos_t03_d64]="$RPT dim=64 attention_dim=32"
  # the four together without the sharpness term, and at Adam's 0.01
  [res_pos_t03_full_sh0]="$RPT steps=8 learning_rate=0.005 weight_decay=0.05 clipnorm=1.0 island_sharpness=0.0"
  [res_pos_t03_full_lr01]="$RPT steps=8 learning_rate=0.01 weight_decay=0.05 clipnorm=1.0"
  # two of steps, weight decay and clipping at a time (each alone keeps level 2's parts)
  [res_pos_t03_steps8_wd]="$RPT steps=8 weight_decay=0.05"
  [res_pos_t03_steps8_clip]="$RPT steps=8 clipnorm=1.0"
  [res_pos_t03_wd_clip]="$RPT weight_decay=0.05 clipnorm=1.0"
  # two phases: the `full_sh0` row's model trained 3 more epochs with the sharpness term
  # (run res_pos_t03_full_sh0 first; its model is this row's starting point)
  [res_pos_t03_full_sh0_then_sh1]="$RPT steps=8 learning_rate=0.005 weight_decay=0.05 clipnorm=1.0 init_from=runs/islands/res_pos_t03_full_sh0/model.keras"
  [avg_p2]="$AVG patch_size=2"  # the finer grid: 2x2 patches, 14x14 columns
  # the `islands` row on the finer grid, its negatives twice as far in cells (the same distance in pixels)
  [avg_isl66_w3_sh1_p2]="$AVG island_weight=3.0 island_scales=6,6,0 island_sharpness=1.0 patch_size=2"
)
ORDER=(base avg avg_beta2 avg_isl avg_learn_isl res_isl avg_isl34 avg_isl34_w1 avg_isl45_w1 avg_top_w1 avg_l2_w1)
[ $# -gt 0 ] && ORDER=("$@")
for row in "${ORDER[@]}"; do  # every name checked before any training
  [ -n "${ROWS[$row]+x}" ] || { echo "error: unknown row $row (rows: ${!ROWS[*]})" >&2; exit 2; }
done
OUTDIR=runs/islands
mkdir -p "$OUTDIR"
for row in "${ORDER[@]}"; do
  work=$OUTDIR/$row
  sets=(--set train_size=4000 --set validation_size=1000)
  for s in ${ROWS[$row]}; do sets+=(--set "$s"); done
  train_row "$work" "$DATA" "${sets[@]}"
  python experiments/islands.py --workdir "$work" --data-dir "$DATA" | tee -a "$OUTDIR/islands.jsonl"
done
