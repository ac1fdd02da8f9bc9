#!/usr/bin/env bash
# Issue-7 experiment: few labelled faces plus many unlabelled ones that only the teacher labels (BENCHMARKS.md,
# "Generator 2", few labelled faces). Run after `kdmark run` (uses runs/default/data). The first N training faces
# keep their labels, the others are distilled on (`unlabelled=`); teacher and student train on the N faces for
# EPOCHS epochs, chosen so that every model takes about the default job's 600 optimiser steps (batches of 32, the
# last partial batch dropped). About 8 minutes on 2 CPU cores; one run at a time.
#   bash scripts/experiments/bench_synth_semi.sh 100 192 && bash scripts/experiments/bench_synth_semi.sh 50 600
#   python scripts/summarise_runs.py runs/x9/n*/{teacher,student,kd}
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100}
EPOCHS=${2:-192}
X=runs/x9/n$N
D=$PWD/runs/default/data
if [ ! -d $X/data/test ]; then  # the split as file links (kdmark's folder reader does not follow linked folders)
  mkdir -p $X/data/train $X/data/unlabelled $X/data/test
  i=0
  for f in $(ls $D/train/*.pts | sort); do
    if [ $i -lt $N ]; then to=$X/data/train; else to=$X/data/unlabelled; fi
    ln -sf "$f" "${f%.pts}.png" $to/
    i=$((i + 1))
  done
  ln -sf $D/test/* $X/data/test/
fi
source scripts/experiments/synth_bench_common.sh
B="recipes/300w_mbv2_heatmap.yaml data.root=$X/data $COMMON"
# teacher and student on the N labelled faces (N = 100: 192 epochs of 3 steps ~ 12 epochs of 1600 faces)
kdmark train $B epochs=$EPOCHS val_every=$((EPOCHS / 12)) out_dir=$X/teacher
kdmark train $B epochs=$EPOCHS val_every=$((EPOCHS / 12)) model.backbone=mobilenetv2_050 out_dir=$X/student
# the student distilled on the N labelled + 1600 - N unlabelled faces, 12 epochs
kdmark distill $B epochs=12 model.backbone=mobilenetv2_050 teachers=[$X/teacher/best.ckpt] $AW \
  unlabelled=$X/data unlabelled_split=unlabelled out_dir=$X/kd
