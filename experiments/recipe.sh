#!/usr/bin/env bash
# Recipe search on a fixed, small budget (issue 13): each row trains the `default` preset plus
# one `--set` change on 6,000 official training images for 3 epochs, and is scored on 1,000
# more training images held out for validation (the test split is never read here).
# Usage: bash experiments/recipe.sh DATASET DATA_DIR [ROW ...]
#   e.g. bash experiments/recipe.sh mnist ../shared/data/mnist base radius_2
# Writes runs/recipe_<dataset>/<row>/ (open `tensorboard --logdir runs/recipe_<dataset>`: one
# HParams trial per row) and prints a Markdown table; 3-5 min per row on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. experiments/train_row.sh
DATASET=${1:?usage: recipe.sh DATASET DATA_DIR [ROW ...]}
DATA=${2:?usage: recipe.sh DATASET DATA_DIR [ROW ...]}
shift 2
declare -A ROWS=(
  [base]=""
  [radius_2]="radius=2"
  [dim_48]="dim=48 attention_dim=24"
  [hidden_scale_1]="hidden_scale=1.0"
  [lr_3e-3]="learning_rate=0.003"
  [steps_8]="steps=8"
  [loss_mse]="loss=mse"
  [clipnorm_1]="clipnorm=1.0"
  [no_top_down]="top_down=false"
  [normalize]="normalize=true"
)
ORDER=(base radius_2 dim_48 hidden_scale_1 lr_3e-3 steps_8)
[ $# -gt 0 ] && ORDER=("$@")
for row in "${ORDER[@]}"; do  # every name checked before any training
  [ -n "${ROWS[$row]+x}" ] || { echo "error: unknown row $row (rows: ${!ROWS[*]})" >&2; exit 2; }
done
OUTDIR=runs/recipe_$DATASET
mkdir -p "$OUTDIR"
for row in "${ORDER[@]}"; do
  work=$OUTDIR/$row
  sets=(--set train_size=6000 --set validation_size=1000 --set dataset="$DATASET")
  for s in ${ROWS[$row]}; do sets+=(--set "$s"); done
  train_row "$work" "$DATA" "${sets[@]}"
  echo "${ROWS[$row]:-none (the preset)}" > "$work.change"
done
python - "$OUTDIR" "${ORDER[@]}" <<'PY'
import json, sys
out, rows = sys.argv[1], sys.argv[2:]
print("| row | change | parameters | validation vote | validation mean | agreement | final train loss | train s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for row in rows:
    m = json.load(open(f"{out}/{row}/metrics.json"))
    change = open(f"{out}/{row}.change").read().strip()
    loss = "-" if m.get("train_loss") is None else f"{m['train_loss']:.3f}"
    print(f"| {row} | `{change}` | {m['parameters']:,} | {m['accuracy_vote']:.3f} | {m['accuracy_mean']:.3f} | "
          f"{m['agreement']:.3f} | {loss} | {m['train_seconds']:.0f} |")
PY
