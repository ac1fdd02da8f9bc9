#!/usr/bin/env bash
# Rebuild kdmark's model zoo (kdmark/zoo/) from the data in ../shared, one step at a time; each step skips itself
# when its output exists, so the script resumes after a stop (`resume=true` is not needed between steps).
# Times on a 2-core AVX2 CPU, one step at a time (BENCHMARKS.md, "The model zoo"):
#   0. the ImageNet teacher, 30 epochs on the 1094 labelled faces (~45 min; committed as
#      models/300w-mbv2-heatmap-in1k, so this step normally skips);
#   1. pseudo-labels: dlib + MediaPipe on two thirds of ../shared/data/unlabelled (~16 min a third);
#   2. kdmark-68-teacher: step 0 fine-tuned on labelled + pseudo-labelled faces (recipes/zoo/kdmark-68-teacher.yaml);
#   3. kdmark-68-s: the teacher pruned by half (scope=all), distilled from it at 96 px (recipes/zoo/kdmark-68-s.yaml);
#   4. kdmark-68-m: the teacher pruned by 30%, distilled from it at 128 px (recipes/zoo/kdmark-68-m.yaml);
#   5. python scripts/zoo_package.py: exports, measures and copies the models into kdmark/zoo with their cards.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs/zoo
W=../shared/weights/mobilenet_v2-b0353104.pth
step() {  # step NAME CHECKPOINT COMMAND...: skip when CHECKPOINT exists; time the rest into runs/zoo/NAME.{log,time}
  local name=$1 done=$2; shift 2
  [[ -f "$done" ]] && { echo "$name: done ($done)"; return 0; }
  echo "$name: running (log: runs/zoo/$name.log)"
  /usr/bin/time -f "%e s wall" -o "runs/zoo/$name.time" "$@" > "runs/zoo/$name.log" 2>&1
}
step in1k models/300w-mbv2-heatmap-in1k/best.ckpt \
  kdmark train recipes/300w_mbv2_heatmap.yaml model.pretrained=$W epochs=30 memory_format=channels_last \
  data.num_workers=0 progress=false out_dir=runs/zoo/in1k
for shard in 0/3 1/3; do
  step "labels${shard%/3}" "runs/zoo/labels/.done${shard%/3}" bash -c "kdmark data label ../shared/data/unlabelled \
    --out runs/zoo/labels --teachers dlib,mediapipe --shard $shard --quiet && touch runs/zoo/labels/.done${shard%/3}"
done
# stopped after 3 of its 4 cosine epochs (1053 steps) for time: the shipped teacher is that checkpoint
step teacher runs/zoo/teacher/best.ckpt kdmark train recipes/zoo/kdmark-68-teacher.yaml max_steps=1053
for size in s:0.5 m:0.3; do
  name=${size%:*} ratio=${size#*:}
  step "${name}_pruned" "runs/zoo/${name}_pruned/pruned.ckpt" kdmark prune runs/zoo/teacher/best.ckpt scope=all \
    ratio=$ratio importance=l2 schedule=global finetune_epochs=0 out_dir=runs/zoo/${name}_pruned \
    train.data.extra=[] train.progress=false
  step "$name" "runs/zoo/$name/best.ckpt" kdmark distill recipes/zoo/kdmark-68-$name.yaml
done
python scripts/zoo_package.py
