#!/usr/bin/env bash
# The pruning sweep of issue 5 on real faces: the heatmap-distilled MobileNetV2 x0.5 300-W student of
# scripts/bench_methods.sh pruned by 10/30/50/70/90% of the filters of every prunable layer, scored by
# next-layer reconstruction error and by L1 magnitude, each retrained for the same budget with distillation from
# the unpruned student (LOSS + loss3). One folder per row under runs/prune_sweep/; the table is printed at the end.
#   RATIOS="0.5" IMPORTANCES="reconstruction" bash scripts/bench_prune.sh [extra prune settings]
set -euo pipefail
cd "$(dirname "$0")/.."
STUDENT=${STUDENT:-runs/methods/hong_lin_kd/best.ckpt}
mkdir -p runs/prune_sweep
for importance in ${IMPORTANCES:-reconstruction l1}; do
  for ratio in ${RATIOS:-0.1 0.3 0.5 0.7 0.9}; do
    out="runs/prune_sweep/${importance}_${ratio}"
    [[ -f "$out/prune_report.json" ]] && continue
    /usr/bin/time -f "%e s wall" -o "$out.time" \
      kdmark prune "$STUDENT" ratio="$ratio" importance="$importance" schedule=global finetune_epochs=4 \
      train.progress=false out_dir="$out" "$@" > "$out.log" 2>&1
  done
done
python scripts/summarise_prune.py runs/prune_sweep/*/prune_report.json
