#!/usr/bin/env bash
# Score each run's best checkpoint on the fixed 10% held-out split of the 300-W faces at the FR/AUC threshold 0.1
# (writes RUN/eval-heldout/), then print the table of scripts/summarise_runs.py.
#   bash scripts/eval_heldout.sh runs/methods/*/
set -euo pipefail
cd "$(dirname "$0")/.."
for run in "$@"; do
  run=${run%/}
  [[ -f "$run/best.ckpt" ]] || continue
  kdmark eval "$run/best.ckpt" --data "${DATA:-../shared/data/300w}" --split train --heldout 0.1 --threshold 0.1 --out "$run/eval-heldout" \
    > /dev/null
done
python scripts/summarise_runs.py "$@"
