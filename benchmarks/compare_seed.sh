#!/usr/bin/env bash
# The seed preset (this project) beside the original's model (shared/bench/seed_reference.py,
# PyTorch eager as the original runs), same batch size, same machine, one run.
# Usage: bash benchmarks/compare_seed.sh [BATCH] [STEPS]   (BATCH default 16, STEPS default 3)
# Needs PyTorch for the reference: pip install torch==2.13.0 (a CPU build lies on disk here).
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${1:-16}
STEPS=${2:-3}
REF=${GLOM_SEED_REFERENCE:-../shared/bench/seed_reference.py}
[ -f "$REF" ] || { echo "error: reference $REF not found (set GLOM_SEED_REFERENCE)" >&2; exit 2; }
python -c "import torch" 2>/dev/null || { echo "error: the reference needs PyTorch: pip install torch==2.13.0" >&2; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2
ours=$(python -m training.benchmark --preset seed --batch-size "$BATCH" --steps "$STEPS" | tail -n 1)
ref=$(python "$REF" torch --batch-sizes "$BATCH" --reps "$STEPS" | tail -n 1)
python - "$ours" "$ref" <<'PY'
import json, sys
ours, ref = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps(ours))
print(json.dumps(ref))
speed = ours["images_per_s"] / ref["train_img_per_s"]
memory = ours["peak_gib"] / ref["peak_gib"]
print(json.dumps({
    "batch_size": ours["batch_size"], "device": ours["device"],
    "speedup_images_per_s": round(speed, 2),
    "peak_memory_ratio": round(memory, 3),
    "ours_gflops_per_s": ours["gflops_per_s"], "reference_gflops_per_s": ref["gflops_per_s"],
}))
PY
