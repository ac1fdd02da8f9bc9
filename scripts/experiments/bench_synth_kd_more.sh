#!/usr/bin/env bash
# More issue-7 experiments on the default synthetic faces (BENCHMARKS.md, "More attempts"): run after `kdmark run`
# (uses runs/default/data and runs/default/teacher). About an hour on 2 CPU cores; one run at a time.
#   bash scripts/experiments/bench_synth_kd_more.sh   then   python scripts/summarise_runs.py runs/x7/{student_s1,pf,hm_pf,hm_lin,hm_cos,teacher24,t24_aw,semi_teacher,semi_student,semi_kd} runs/x7/small/*/
set -euo pipefail
cd "$(dirname "$0")/../.."
X=runs/x7
mkdir -p $X
source scripts/experiments/synth_bench_common.sh
T=runs/default/teacher/best.ckpt
# run-to-run spread: the baseline student with another seed
kdmark train $S seed=1 out_dir=$X/student_s1
# Appl. Sci. pooled-feature distillation, with and without the AWing heatmap term
kdmark distill $S teachers=[$T] kd.w_pooled_feature=1.0 out_dir=$X/pf
kdmark distill $S teachers=[$T] $AW kd.w_pooled_feature=1.0 out_dir=$X/hm_pf
# heatmap distillation faded out by the last epoch
kdmark distill $S teachers=[$T] $AW kd.decay=linear out_dir=$X/hm_lin
kdmark distill $S teachers=[$T] $AW kd.decay=cosine out_dir=$X/hm_cos
# a teacher trained twice as long
kdmark train $B epochs=24 out_dir=$X/teacher24
kdmark distill $S teachers=[$X/teacher24/best.ckpt] $AW out_dir=$X/t24_aw
# 400 training faces, 48 epochs (the same number of steps)
python - <<'PY'
from pathlib import Path
from kdmark.data.synth import write_synthetic
if not Path("runs/x7/data_small/synth.json").is_file():
    write_synthetic("runs/x7/data_small", seed=0, n=800, test_fraction=0.5)
PY
SM="recipes/300w_mbv2_heatmap.yaml data.root=$X/data_small $COMMON epochs=48"
kdmark train $SM out_dir=$X/small/teacher
kdmark train $SM model.backbone=mobilenetv2_050 out_dir=$X/small/student
kdmark distill $SM model.backbone=mobilenetv2_050 teachers=[$X/small/teacher/best.ckpt] $AW out_dir=$X/small/student_kd
# 200 labelled faces (the first 200 of the default training split), the other 1400 unlabelled; equal steps
D=runs/default/data
if [ ! -d $X/data_semi/test ]; then
  mkdir -p $X/data_semi/train $X/data_semi/unlabelled
  for i in $(seq -f "%05g" 0 1599); do
    dest=$X/data_semi/unlabelled; [ $((10#$i)) -lt 200 ] && dest=$X/data_semi/train
    cp $D/train/synth_$i.png $D/train/synth_$i.pts $dest/
  done
  cp -r $D/test $X/data_semi/
fi
M="recipes/300w_mbv2_heatmap.yaml data.root=$X/data_semi $COMMON"
kdmark train $M epochs=96 val_every=8 out_dir=$X/semi_teacher
kdmark train $M epochs=96 val_every=8 model.backbone=mobilenetv2_050 out_dir=$X/semi_student
kdmark distill $M epochs=12 model.backbone=mobilenetv2_050 teachers=[$X/semi_teacher/best.ckpt] $AW \
  unlabelled=$X/data_semi unlabelled_split=unlabelled out_dir=$X/semi_kd
