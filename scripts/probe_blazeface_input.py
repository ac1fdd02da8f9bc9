"""Probe for issue 29 item 2 (small photos): BlazeFace run at a smaller input than its 128 px. Its graph is fully
convolutional and its Reshapes take -1, so with the input's height and width made symbolic it runs at any multiple
of 16, with anchors on 8- and 16-px grids of that size. Compares faces found and milliseconds per photo (one process,
one thread, the whole detector: letterbox, network, decode, weighted NMS) at 128 and ``--small`` px.

    PYTHONPATH=. python scripts/probe_blazeface_input.py [--photos "../shared/data/unlabelled/aflw/*.jpg"] [--small 96]
"""

from __future__ import annotations

import argparse
import glob
import sys
import time

import cv2
import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="../shared/data/unlabelled/aflw/*.jpg")
    ap.add_argument("--small", type=int, default=96)
    ap.add_argument("-n", type=int, default=100)
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort

    from kdmark.data.transforms import warp_image
    from kdmark.deploy.detectors import blazeface as bf

    model = onnx.load(str(bf.ONNX_PATH))
    for value in [*model.graph.input, *model.graph.output]:
        for k, d in enumerate(value.type.tensor_type.shape.dim):
            if k >= 1 and (value in model.graph.output or k >= 2):
                d.ClearField("dim_value")
                d.dim_param = f"{value.name}_{k}"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def anchors(size: int) -> np.ndarray:
        out = []
        for stride, per_cell in ((8, 2), (16, 6)):
            n = size // stride
            out += [((x + 0.5) / n, (y + 0.5) / n) for y in range(n) for x in range(n) for _ in range(per_cell)]
        return np.array(out) * size

    grids = {s: anchors(s) for s in (128, args.small)}

    def detect(image: np.ndarray, size: int) -> list:
        h, w = image.shape[:2]
        m = bf.letterbox_matrix(w, h, size)
        x = warp_image(image, m, size).astype(np.float32) / 127.5 - 1.0
        reg, logits = session.run(["regressors", "classificators"], {"input": x.transpose(2, 0, 1)[None].copy()})
        raw = reg.reshape(-1, 16).astype(np.float64)
        score = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -bf.SCORE_CLIP, bf.SCORE_CLIP)))
        keep = score >= 0.5
        a, raw = grids[size][keep], raw[keep]
        if not len(raw):
            return []
        c = raw[:, :2] + a
        boxes = np.concatenate([c - raw[:, 2:4] / 2, c + raw[:, 2:4] / 2], axis=1)
        found = bf.weighted_nms(boxes, score[keep], raw[:, 4:].reshape(-1, 6, 2) + a[:, None])
        s, tx, ty = m[0, 0], m[0, 2], m[1, 2]
        return [(b - [tx, ty, tx, ty]) / s for b, _, _ in found]

    counts, agree, times = {128: 0, args.small: 0}, 0, {128: [], args.small: []}
    files = sorted(glob.glob(args.photos))[: args.n]
    for f in files:
        image = cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB)
        got = {}
        for size in (128, args.small):
            start = time.perf_counter()
            got[size] = detect(image, size)
            times[size].append(time.perf_counter() - start)
            counts[size] += len(got[size])
        if got[128] and got[args.small]:
            a, b = got[128][0], got[args.small][0]
            agree += np.abs(a - b).max() / (a[2] - a[0]) < 0.1
    for size in (128, args.small):
        print(f"{size} px: {counts[size]} faces in {len(files)} photos, {np.median(times[size]) * 1e3:.2f} ms a photo")
    print(f"top faces within 10% of their size of each other: {agree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
