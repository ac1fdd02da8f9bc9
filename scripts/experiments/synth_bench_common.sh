# Sourced by the issue-7 benchmark scripts (bench_synth_*.sh) after they cd to the repository root: the options
# every run on the synthetic faces shares, so that their runs differ from the default job's only where they say.
COMMON="data.train_split=train data.val_split=test data.input_size=96 data.num_workers=0 batch_size=32 progress=false"
B="recipes/300w_mbv2_heatmap.yaml data.root=runs/default/data $COMMON"  # + epochs: the default teacher
S="$B epochs=12 model.backbone=mobilenetv2_050"  # the default students
AW="kd.w_heatmap=1.0 kd.heatmap_kind=awing"  # the default job's distillation
