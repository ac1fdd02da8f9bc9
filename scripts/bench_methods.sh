#!/usr/bin/env bash
# Real-data distillation, one pair of runs per seed method, sized for a 2-core CPU: the MobileNetV2 x1.0 models of
# scripts/bench_heads.sh are the teachers (plus a Tolerant teacher trained here for KD-Loss), a MobileNetV2 x0.5
# student is trained with and without the method's distillation (same recipe, epochs, augmentation and seed) on the
# fixed 10% held-out split of the 300-W faces. Run scripts/bench_heads.sh first. Each run writes runs/methods/NAME
# (metrics.csv: val NME / FR / AUC per epoch) and NAME.time; scripts/summarise_runs.py prints the table.
#   METHODS="applsci mobilefan kdloss" bash scripts/bench_methods.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs/methods
EPOCHS=${EPOCHS:-20}
common=(model.backbone=mobilenetv2_050 epochs="$EPOCHS" data.num_workers=0 progress=false)

run() {  # run NAME VERB ARGS...: skip a finished run, time the rest
  local name=$1; shift
  [[ -f "runs/methods/$name/best.ckpt" ]] && return 0
  /usr/bin/time -f "%e s wall" -o "runs/methods/$name.time" \
    kdmark "$@" out_dir="runs/methods/$name" > "runs/methods/$name.log" 2>&1
}

for method in ${METHODS:-hong_lin hong_lin_awing applsci mobilefan kdloss}; do
  case $method in
    hong_lin)  # heatmap KD, weight 100 (their code), ramped in over 3 epochs
      run hong_lin_student train recipes/300w_mbv2_heatmap.yaml "${common[@]}"
      run hong_lin_kd distill recipes/300w_mbv2_heatmap.yaml "${common[@]}" \
        "teachers=[runs/bench_heatmap/best.ckpt]" kd.w_heatmap=100 kd.warmup_epochs=3 ;;
    hong_lin_awing)  # the same teacher's heatmaps taught with the supervised loss (Adaptive Wing, weight 1)
      run hong_lin_awing distill recipes/300w_mbv2_heatmap.yaml "${common[@]}" \
        "teachers=[runs/bench_heatmap/best.ckpt]" kd.w_heatmap=1.0 kd.heatmap_kind=awing ;;
    applsci)  # joint heads, LOSS + loss3 (pooled backbone features through a 1x1 adapter, MSE)
      run applsci_student train recipes/300w_mbv2_joint.yaml "${common[@]}"
      run applsci_kd distill recipes/300w_mbv2_joint.yaml "${common[@]}" \
        "teachers=[runs/bench_joint/best.ckpt]" kd.w_pooled_feature=1.0 ;;
    mobilefan)  # deconvolution heads, feature-aligned + feature-similarity distillation (0.01 / 0.01)
      run mobilefan_student train recipes/300w_mbv2_deconv.yaml "${common[@]}"
      run mobilefan_kd distill recipes/300w_mbv2_deconv.yaml "${common[@]}" \
        "teachers=[runs/bench_deconv/best.ckpt]" kd.w_feature_aligned=0.01 kd.w_feature_similarity=0.01 ;;
    kdloss)  # Tough = the regression model on ground truth; Tolerant = the same recipe on ASM soft landmarks (p 90%)
      run kdloss_tolerant train recipes/300w_mbv2_regression.yaml epochs=40 data.num_workers=0 progress=false \
        asm_variance=0.9
      run kdloss_student train recipes/300w_mbv2_regression.yaml "${common[@]}" loss.coords=mse
      run kdloss_kd distill recipes/300w_mbv2_regression.yaml "${common[@]}" loss.coords=mse \
        "teachers=[runs/bench_regression/best.ckpt,runs/methods/kdloss_tolerant/best.ckpt]" \
        kd.w_kd_loss=1.0 kd.kd_loss_preset=code kd.w_sup=0.0 ;;
    *) echo "unknown method $method" >&2; exit 2 ;;
  esac
done
