"""The synthetic-face distillation experiments of BENCHMARKS.md (issue 7): for each data setting, a MobileNetV2
teacher, a MobileNetV2 x0.5 student without distillation and the same student with each distillation variant
(same data, seed, augmentation and schedule), evaluated on the exact-label test faces. Writes one pipeline per
setting to runs/synth_kd/SETTING.yaml, runs it with `kdmark run` (finished stages are skipped on a re-run) and
prints each setting's table. About an hour on 2 CPU cores for all settings.
  python scripts/experiments/bench_synth_kd.py [SETTING ...]      (settings: noise02 noise02_64px small noise05)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes" / "300w_mbv2_heatmap.yaml")
STUDENT = {"model.backbone": "mobilenetv2_050"}
KD = {**STUDENT, "teachers": ["@teacher"]}
MSE100 = {**KD, "kd.w_heatmap": 100.0}
AWING = {**KD, "kd.w_heatmap": 1.0, "kd.heatmap_kind": "awing"}

# setting: (generator settings, pipeline-wide settings, teacher settings, {variant stage: its settings})
SETTINGS = {
    "noise02": ({"n": 2000, "label_noise": 0.02}, {}, {}, {
        "student_kd": MSE100,
        "student_kd_r": {**MSE100, "kd.warmup_epochs": 3},
        "student_aw": AWING,
        "student_fa": {**KD, "kd.w_feature_aligned": 1.0},
        "student_pure": {**MSE100, "kd.w_sup": 0.0},
        "student_aw_pure": {**AWING, "kd.w_sup": 0.0},
    }),
    "noise02_64px": ({"n": 2000, "label_noise": 0.02}, {"data.input_size": 64, "epochs": 20}, {"epochs": 30}, {
        "student_kd_r": {**MSE100, "kd.warmup_epochs": 3},
    }),
    "small": ({"n": 1000, "test_fraction": 0.4, "label_noise": 0.02}, {"epochs": 30}, {"epochs": 40}, {
        "student_kd_r": {**MSE100, "kd.warmup_epochs": 3},
    }),
    "noise05": ({"n": 2000, "label_noise": 0.05}, {}, {}, {
        "student_kd_r": {**MSE100, "kd.warmup_epochs": 3},
        "student_aw": AWING,
        "student_aw_pure": {**AWING, "kd.w_sup": 0.0},
    }),
}


def pipeline(name: str, data: str, common: dict, teacher: dict, variants: dict) -> dict:
    stages = [{"name": "teacher", "verb": "train", "recipe": RECIPE, "set": teacher},
              {"name": "student", "verb": "train", "recipe": RECIPE, "set": STUDENT}]
    stages += [{"name": k, "verb": "distill", "recipe": RECIPE, "set": v} for k, v in variants.items()]
    settings = {"data.root": data, "data.train_split": "train", "data.val_split": "test", "data.input_size": 96,
                "data.num_workers": 0, "epochs": 12, "batch_size": 32, **common}
    return {"name": name, "out_dir": f"runs/synth_kd/{name}", "set": settings, "stages": stages}


def main(names: list[str]) -> None:
    from kdmark.data.synth import write_synthetic

    for name in names or list(SETTINGS):
        gen, common, teacher, variants = SETTINGS[name]
        data = ROOT / "runs" / "synth_kd" / f"data_{name}"
        if not (data / "synth.json").is_file():
            write_synthetic(data, seed=0, **gen)
        path = ROOT / "runs" / "synth_kd" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(pipeline(name, str(data), common, teacher, variants), sort_keys=False))
        subprocess.run(["kdmark", "run", str(path), "progress=false"], cwd=ROOT, check=True)
        runs = [str(ROOT / "runs" / "synth_kd" / name / s) for s in ["teacher", "student", *variants]]
        print(f"\n{name}:")
        subprocess.run([sys.executable, str(ROOT / "scripts" / "summarise_runs.py"), *runs], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
