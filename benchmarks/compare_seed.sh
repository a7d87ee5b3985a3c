#!/usr/bin/env bash
# The seed preset (this project) beside the original's model (shared/bench/seed_reference.py,
# PyTorch eager as the original runs), same batch size, same machine, one run.
# Usage: bash benchmarks/compare_seed.sh [BATCH] [STEPS] [OUR_BATCH]
#   BATCH (default 16): both at this batch size; speed and memory ratios at equal batch.
#   STEPS (default 3): measured training steps after the warm-up.
#   OUR_BATCH (optional): also runs this project at a larger batch, for peak memory per image
#   against the reference's at BATCH (its eager autograd keeps every step's activations: 266-268 MiB
#   per image at batch 16 (BENCHMARKS.md), 257 at 32).
# Needs PyTorch for the reference: pip install torch==2.13.0 (a CPU build lies on disk here).
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${1:-16}
STEPS=${2:-3}
OUR_BATCH=${3:-}
REF=${GLOM_SEED_REFERENCE:-../shared/bench/seed_reference.py}
[ -f "$REF" ] || { echo "error: reference $REF not found (set GLOM_SEED_REFERENCE)" >&2; exit 2; }
python -c "import torch" 2>/dev/null || { echo "error: the reference needs PyTorch: pip install torch==2.13.0" >&2; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2
ours=$(python -m training.benchmark --preset seed --batch-size "$BATCH" --steps "$STEPS" | tail -n 1)
big=null
if [ -n "$OUR_BATCH" ]; then
  big=$(python -m training.benchmark --preset seed --batch-size "$OUR_BATCH" --steps "$STEPS" | tail -n 1)
fi
ref=$(python "$REF" torch --batch-sizes "$BATCH" --reps "$STEPS" | tail -n 1)
python - "$ours" "$ref" "$big" <<'PY'
import json, sys
ours, ref, big = (json.loads(a) for a in sys.argv[1:])
for line in (ours, big, ref):
    if line:
        print(json.dumps(line))
ref_per_image = ref["peak_gib"] / ref["batch"]
summary = {
    "batch_size": ours["batch_size"], "device": ours["device"],
    "speedup_images_per_s": round(ours["images_per_s"] / ref["train_img_per_s"], 2),
    "peak_memory_ratio": round(ours["peak_gib"] / ref["peak_gib"], 3),
    "ours_gflops_per_s": ours["gflops_per_s"], "reference_gflops_per_s": ref["gflops_per_s"],
    "reference_peak_mib_per_image": round(1024 * ref_per_image, 1),
}
for run in (ours, big):
    if run:
        per_image = run["peak_gib"] / run["batch_size"]
        summary[f"ours_b{run['batch_size']}_peak_mib_per_image"] = round(1024 * per_image, 1)
        summary[f"ours_b{run['batch_size']}_memory_per_image_ratio"] = round(per_image / ref_per_image, 3)
        summary[f"ours_b{run['batch_size']}_speedup"] = round(run["images_per_s"] / ref["train_img_per_s"], 2)
print(json.dumps(summary))
PY
