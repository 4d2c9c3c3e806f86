#!/usr/bin/env bash
# GPU check of the shipped sentiment recipe: `precision: auto` must pick bf16 on a CUDA device,
# and the same recipe must train and evaluate there unchanged. Writes JSON figures to $OUT
# (default bench/results/gpu).
#
#   MODEL_DIR  a local copy of the MiniLM folder (default .gpu/minilm)
#   DATA_FILE  a local copy of movieReviewSnippets_GroundTruth.csv.gz (default .gpu/...)
#   TUNEKIT    how to call tunekit (default: python3 -m tunekit)
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
MODEL_DIR=${MODEL_DIR:-.gpu/minilm}
DATA_FILE=${DATA_FILE:-.gpu/movieReviewSnippets_GroundTruth.csv.gz}
TUNEKIT=${TUNEKIT:-python3 -m tunekit}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT"
ASSETS=(--set "model.name=$MODEL_DIR" --set "data.train=$DATA_FILE")

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, datasets; print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__, 'bf16', torch.cuda.is_bf16_supported())" | tee -a "$OUT/gpu.txt"

run() {  # name, extra args...
  local name=$1; shift
  local start=$(date +%s.%N)
  $TUNEKIT finetune recipes/sentiment.yaml "${ASSETS[@]}" --set "output_dir=/tmp/tk-runs/$name" --json "$@" \
    > "$OUT/$name.json" 2> "$OUT/$name.log"
  local rc=$?
  echo "$name: exit $rc, wall $(python3 -c "import time; print(round(time.time() - $start, 1))") s" | tee -a "$OUT/summary.txt"
  python3 - "$OUT/$name.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as exc:
    print("  no result:", exc); raise SystemExit
print(f"  steps {d['train']['global_step']}  train_s {d['timings']['train_s']:.1f}  "
      f"samples/s {d['train']['train_samples_per_second']:.1f}  test accuracy {d['eval']['accuracy']:.4f}  "
      f"f1_macro {d['eval']['f1_macro']:.4f}  n {d['eval']['n']}")
PY
  grep -h "precision" "$OUT/$name.log" | head -1 | tee -a "$OUT/summary.txt"
}

# 1. the shipped recipe exactly as a user runs it (precision auto)
run default
# 2. all ~8,000 training rows, 3 epochs, batch 32: what a GPU buys
run full --set data.max_train_rows=null --set train.epochs=3 --set train.batch_size=32
# 3. the CI gate on the GPU-trained run
$TUNEKIT eval /tmp/tk-runs/full --min accuracy=0.85 --json > "$OUT/gate.json" 2>> "$OUT/full.log"
echo "gate accuracy>=0.85 on full: exit $?" | tee -a "$OUT/summary.txt"
