#!/usr/bin/env bash
# Issue-7 experiments on the second synthetic-face generator (BENCHMARKS.md, "Generator 2"): run after `kdmark run`
# (uses runs/default/data and runs/default/{teacher,student}). About 20 minutes on 2 CPU cores; one run at a time.
#   bash scripts/experiments/bench_synth_gen2.sh   then
#   python scripts/summarise_runs.py runs/x8/{small_student,teacher24,t24_aw,student_s1,kd_s1}
#   python scripts/train_vs_test_nme.py runs/default/teacher runs/default/student runs/default/student_kd
set -euo pipefail
cd "$(dirname "$0")/../.."
X=runs/x8
mkdir -p $X
source scripts/experiments/synth_bench_common.sh
# is the task data-limited? the student on the first 200 training faces, 96 epochs (the same number of steps)
D=runs/default/data
if [ ! -d $X/data_200/test ]; then
  mkdir -p $X/data_200/train
  for i in $(seq -f "%05g" 0 199); do cp $D/train/synth_$i.png $D/train/synth_$i.pts $X/data_200/train/; done
  cp -r $D/test $X/data_200/
fi
kdmark train recipes/300w_mbv2_heatmap.yaml data.root=$X/data_200 $COMMON epochs=96 val_every=8 \
  model.backbone=mobilenetv2_050 out_dir=$X/small_student
# a teacher trained twice as long, and the student distilled from it
kdmark train $B epochs=24 out_dir=$X/teacher24
kdmark distill $S teachers=[$X/teacher24/best.ckpt] $AW out_dir=$X/t24_aw
# a second seed for the pair of the default job
kdmark train $S seed=1 out_dir=$X/student_s1
kdmark distill $S seed=1 teachers=[runs/default/teacher/best.ckpt] $AW out_dir=$X/kd_s1
