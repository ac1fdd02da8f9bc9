"""How a teacher scores when it sees a student's crops resized to its own input size (what ``engine.tasks.Teacher``
does in distillation), on kdmark's held-out split of the 300-W training faces.

    PYTHONPATH=. python scripts/teacher_at_sizes.py models/campaign/kdmark-68-teacher-v3.state.ckpt --sizes 96,128,192
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teacher")
    ap.add_argument("--data", default="../shared/data/300w")
    ap.add_argument("--sizes", default="96,128,192")
    args = ap.parse_args(argv)

    from kdmark.data import read_dataset
    from kdmark.data.dataset import LandmarkDataset, split_by_photo
    from kdmark.data.transforms import apply_affine
    from kdmark.engine.tasks import Teacher
    from kdmark.metrics import compute_metrics
    from kdmark.schemes import get_scheme

    samples = split_by_photo(read_dataset(args.data, split="train"), 0.1)[1]
    scheme = get_scheme("300w")
    for size in (int(v) for v in args.sizes.split(",")):
        teacher = Teacher(args.teacher, size)
        crops = LandmarkDataset(samples, scheme, teacher.model.codec, size, None, 0.15, False, cache=False)
        preds = []
        with torch.no_grad():
            for i in range(len(crops)):
                item = crops[i]
                points = teacher(item["image"][None])["points"][0].numpy()
                preds.append(apply_affine(points, item["to_image"].numpy()))
        metrics, _ = compute_metrics(preds, [s.points for s in samples], scheme)
        print(f"{size}-px crops -> the teacher's {teacher.size} px: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
