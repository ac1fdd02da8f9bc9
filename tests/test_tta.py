"""Test-time augmentation (``tta=flip``): one rule (``kdmark.schemes.with_tta``) under Predictor, predict, eval and
bench; with it a model's answer on a mirrored face is exactly the mirror of its answer on the face."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdmark.cli import main
from kdmark.schemes import SchemeError, flip_points, get_scheme, with_tta


def test_flip_averages_with_the_mirrored_answer():
    scheme = get_scheme("300w")
    rng = np.random.default_rng(0)
    fixed = rng.uniform(0, 63, (68, 2))

    def run(batch):  # a "model" that ignores the image: its mirrored answer is the fixed points, mirrored
        return np.broadcast_to(fixed, (len(batch), 68, 2)).copy(), np.ones((len(batch), 68))

    pts, scores = with_tta(run, "flip", scheme)(np.zeros((2, 3, 64, 64), np.float32))
    np.testing.assert_allclose(pts[0], (fixed + flip_points(fixed, 64, scheme)) / 2)
    assert with_tta(run, "none", scheme) is run
    with pytest.raises(SchemeError, match="tta='mirror'"):
        with_tta(run, "mirror", scheme)


def test_predictor_with_flip_is_exactly_mirror_symmetric(shared_data):
    from kdmark import Predictor
    from kdmark.data import read_dataset

    scheme = get_scheme("300w")
    s = read_dataset(shared_data / "300w" / "300W", split=None).samples[0]
    from kdmark.data.images import load_image

    img = load_image(s.image)
    w = img.shape[1]
    box = s.landmark_box()
    mbox = np.array([w - 1 - box[2], box[1], w - 1 - box[0], box[3]])
    plain = Predictor("kdmark-68-s")
    flip = Predictor("kdmark-68-s", tta="flip")
    a = flip.predict(img, [box])[0].landmarks
    b = flip_points(flip.predict(np.ascontiguousarray(img[:, ::-1]), [mbox])[0].landmarks, w, scheme)
    np.testing.assert_allclose(a, b, atol=0.05)  # mirror-equivariant by construction
    p = plain.predict(img, [box])[0].landmarks
    q = flip_points(plain.predict(np.ascontiguousarray(img[:, ::-1]), [mbox])[0].landmarks, w, scheme)
    assert np.abs(p - q).max() > 0.05  # ... which the plain model is not


def test_eval_and_bench_take_tta(tiny_checkpoint, w300_root, tmp_path, capsys):
    data = str(w300_root / "300W")
    assert main(["eval", str(tiny_checkpoint), "--data", data, "--out", str(tmp_path / "a")]) == 0
    assert main(["eval", str(tiny_checkpoint), "--data", data, "--out", str(tmp_path / "b"), "--tta", "flip"]) == 0
    a, b = (json.loads((tmp_path / x / "metrics.json").read_text()) for x in "ab")
    assert a["tta"] == "none" and b["tta"] == "flip" and a["nme"] != b["nme"]
    assert main(["bench", str(tiny_checkpoint), "--data", data, "--no-int8", "--runs", "2", "--tta", "flip",
                 "--json", str(tmp_path / "bench.json")]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert "onnx-fp32+flip" in report["accuracy"] and any("+flip" in k for k in report["latency_ms"])
    assert main(["predict", str(w300_root / "300W"), "--tta", "flip", "--json", str(tmp_path / "p.json")]) == 0
