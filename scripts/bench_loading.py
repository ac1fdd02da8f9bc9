"""Is loading the bottleneck? Training steps per second with the real pipeline (crop cache, affine + photometric
augmentation, heatmap targets, DataLoader) against the very same loop on batches already in memory, in one process.

    python scripts/bench_loading.py ../shared/data/300w [--steps 20] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from kdmark.config import TrainConfig, load_config, to_dict
from kdmark.engine.setup import build_data
from kdmark.engine.tasks import build_task
from kdmark.models.landmark_net import build_model, codec_for


def steps_per_s(task, opt, batches, steps: int) -> float:
    it = iter(batches)
    t0 = time.perf_counter()
    for _ in range(steps):
        batch = next(it)
        loss = task(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--recipe", default="recipes/300w_mbv2_heatmap.yaml")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    cfg = load_config(TrainConfig, args.recipe, [f"data.root={args.root}"])
    data = build_data(cfg, codec_for(to_dict(cfg.model), cfg.data.input_size))
    t0 = time.perf_counter()
    data.train.fill_cache()
    print(f"cache: {len(data.train)} faces decoded and cropped once in {time.perf_counter() - t0:.1f}s")
    model = build_model(to_dict(cfg.model), data.scheme.num_points, cfg.data.input_size, data.scheme.name).train()
    task = build_task(cfg, model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b = cfg.batch_size

    def loader(workers: int):
        while True:
            yield from DataLoader(data.train, batch_size=b, shuffle=True, num_workers=workers, drop_last=True,
                                  persistent_workers=False)

    fixed = [next(loader(0)) for _ in range(3)]
    steps_per_s(task, opt, iter(fixed * 2), 2)  # warm-up
    reference = steps_per_s(task, opt, iter(fixed * (args.steps // 3 + 1)), args.steps)
    print(f"batch {b}, {cfg.data.input_size} px, {torch.get_num_threads()} torch threads")
    print(f"in-memory batches (no loading):     {reference:.3f} steps/s  = 1.00")
    for w in args.workers:
        real = steps_per_s(task, opt, loader(w), args.steps)
        print(f"real augmentation, {w} worker(s):     {real:.3f} steps/s  = {real / reference:.2f} of in-memory")
    t0 = time.perf_counter()
    for i in range(b * 5):
        data.train[i % len(data.train)]
    per_face = (time.perf_counter() - t0) / (b * 5) * 1e3
    print(f"one augmented face with targets: {per_face:.2f} ms in the main process")


if __name__ == "__main__":
    main()
