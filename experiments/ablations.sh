#!/usr/bin/env bash
# Ablations of the `default` preset on a fixed, small budget: each row trains on 6,000 official
# MNIST training digits for 3 epochs (500 more held out), then evaluates on the 10,000 official
# test digits (reported, never used for selection). One row = one `--set` change.
# Usage: bash experiments/ablations.sh [DATA_DIR] [ROW ...]   (DATA_DIR default ../shared/data/mnist)
# Writes runs/ablations/<row>/ and prints a Markdown table; about 3 min per row on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. experiments/train_row.sh
DATA=${1:-../shared/data/mnist}
shift || true
declare -A ROWS=(
  [default]=""
  [attention_similarity]="attention=similarity"
  [attention_none]="attention=none"
  [no_top_down]="top_down=false"
  [skip_accumulators]="skip_periods=15,7,3"
  [steps_3]="steps=3"
  [steps_1]="steps=1"
  [loss_mse]="loss=mse"
  [init_zeros]="init_state=zeros"
  [init_uniform]="init_state=uniform"
)
ORDER=(default attention_similarity attention_none no_top_down skip_accumulators steps_3 steps_1 loss_mse init_zeros init_uniform)
[ $# -gt 0 ] && ORDER=("$@")
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p runs/ablations
for row in "${ORDER[@]}"; do
  [ -n "${ROWS[$row]+x}" ] || { echo "error: unknown row $row" >&2; exit 2; }
  work=runs/ablations/$row
  sets=(--set train_size=6000)
  for s in ${ROWS[$row]}; do sets+=(--set "$s"); done
  train_row "$work" "$DATA" "${sets[@]}"
  echo "${ROWS[$row]:-none (the preset)}" > "$work.change"
  python -m training.evaluate --model "$work/model.keras" --dataset mnist --split test --data-dir "$DATA" \
    --out "$work/eval_mnist_test.json" --overwrite > /dev/null
done
python - "${ORDER[@]}" <<'PY'
import json, sys
print("| row | change | parameters | test vote | test mean | agreement (digit cells) | train s |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for row in sys.argv[1:]:
    work = f"runs/ablations/{row}"
    ev = json.load(open(f"{work}/eval_mnist_test.json"))
    metrics = json.load(open(f"{work}/metrics.json"))
    change = open(f"{work}.change").read().strip()
    print(f"| {row} | `{change}` | {metrics['parameters']:,} | {ev['accuracy_vote']:.4f} | "
          f"{ev['accuracy_mean']:.4f} | {ev['agreement_digit']:.3f} | {metrics['train_seconds']:.0f} |")
PY
