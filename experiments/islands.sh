#!/usr/bin/env bash
# The islands table of the README: the `default` preset with one change per row, a small fixed
# budget (4,000 official MNIST training digits, 3 epochs, batch 64, seed 0), island figures on
# 500 of the 1,000 held-out validation digits (never the test split).
# Usage: bash experiments/islands.sh DATA_DIR [OUT_JSONL]
set -euo pipefail
DATA=${1:?usage: bash experiments/islands.sh DATA_DIR [OUT_JSONL]}
OUT=${2:-runs/islands.jsonl}
mkdir -p runs
# `default` as the table measured it (dropout 0, before the preset took 0.1)
BUDGET=(--preset default --data-dir "$DATA" --epochs 3 --quiet --set train_size=4000 --set validation_size=1000
        --set dropout=0.0)
AVG=(--set same_level=consensus --set attention=similarity --set update=average --set state_norm=true
     --set hidden_scale=1.0)
row() {
  local name=$1; shift
  python -m training.fit "${BUDGET[@]}" --workdir "runs/islands_$name" "$@" > "runs/islands_$name.log" 2>&1
  python experiments/islands.py --workdir "runs/islands_$name" --data-dir "$DATA" >> "$OUT"
}
row base
row avg "${AVG[@]}"
row avg_beta2 "${AVG[@]}" --set attention_beta=2.0
row avg_isl "${AVG[@]}" --set island_weight=0.3
row avg_learn_isl "${AVG[@]}" --set learned_update_weights=true --set island_weight=0.3
row res_isl --set island_weight=0.3
row avg_isl34 "${AVG[@]}" --set island_weight=0.3 --set island_scales=3,4,0
row avg_isl34_w1 "${AVG[@]}" --set island_weight=1.0 --set island_scales=3,4,0
row avg_isl45_w1 "${AVG[@]}" --set island_weight=1.0 --set island_scales=4,5,0
row avg_top_w1 "${AVG[@]}" --set island_weight=1.0 --set island_scales=9,9,0
row avg_l2_w1 "${AVG[@]}" --set island_weight=1.0 --set island_scales=9,4,9
row avg_p2 "${AVG[@]}" --set patch_size=2  # the finer grid: 2x2 patches, 14x14 columns
