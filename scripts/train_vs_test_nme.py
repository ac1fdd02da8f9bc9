"""Does a model overfit? NME of each run's best checkpoint on its own training faces (not augmented) and on its
validation faces, with the data settings of the first run (data.max_samples=400 keeps it quick: 400 training and
100 validation faces).  python scripts/train_vs_test_nme.py runs/default/teacher [runs/default/student ...]"""

from __future__ import annotations

import sys

from kdmark.checkpoint import load_checkpoint
from kdmark.config import TrainConfig, load_config
from kdmark.data.dataset import LandmarkDataset
from kdmark.engine.loop import predict_dataset
from kdmark.engine.setup import build_data
from kdmark.metrics import score_samples


def main(runs: list[str]) -> None:
    cfg = load_config(TrainConfig, f"{runs[0]}/config.yaml", ["data.max_samples=400"])
    models = {r: load_checkpoint(f"{r}/best.ckpt")[0].eval() for r in runs}
    codec = next(iter(models.values())).codec
    data = build_data(cfg, codec)
    d = cfg.data
    train = LandmarkDataset(data.train.samples, data.scheme, codec, d.input_size, None, d.margin, d.use_box,
                            cache=False)
    for run, model in models.items():
        tr, _, _ = score_samples(train.samples, predict_dataset(model, train)[0], data.scheme, data.normaliser)
        te, _, _ = score_samples(data.val.samples, predict_dataset(model, data.val)[0], data.scheme, data.normaliser)
        print(f"{run}: NME {100 * tr.nme:.3f}% on {len(train)} training faces, {100 * te.nme:.3f}% on "
              f"{len(data.val)} validation faces")


if __name__ == "__main__":
    main(sys.argv[1:])
