#!/usr/bin/env bash
# Train a MobileNetV2 student with each head on the real 300-W faces (fixed 10% validation split by photo),
# one after the other on this machine. Logs and run folders go to runs/; BENCHMARKS.md quotes them.
set -euo pipefail
cd "$(dirname "$0")/.."
for head in ${HEADS:-heatmap regression deconv joint}; do
  /usr/bin/time -f "%e s wall" -o "runs/bench_${head}.time" \
    kdmark train "recipes/300w_mbv2_${head}.yaml" data.num_workers=1 progress=false \
    out_dir="runs/bench_${head}" "$@" > "runs/bench_${head}.log" 2>&1
done
