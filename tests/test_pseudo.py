"""Pseudo-labels read as they are (``kdmark.data.pseudo``): several teachers' files, fused per landmark, every point
weighted by the teachers' agreement; bad files give one line naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdmark.config import TrainConfig, load_config
from kdmark.data.pseudo import (
    HAND_WEIGHTS,
    fit_weights,
    fuse,
    interocular,
    is_pseudo_folder,
    pseudo_samples,
    read_pseudo,
    teacher_weights,
)
from kdmark.errors import DatasetError


def _shape(seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(20, 80, (68, 2))
    pts[36], pts[45] = (30, 40), (70, 40)  # inter-ocular distance 40
    return pts


def test_identical_teachers_give_their_points_with_full_confidence():
    p = _shape()
    fused, conf = fuse(np.stack([p, p, p])[None], np.ones((3, 68)))
    np.testing.assert_allclose(fused[0], p)
    np.testing.assert_allclose(conf[0], 1.0)


def test_a_teacher_that_leaves_the_others_loses_its_say_on_that_point():
    p = _shape()
    off = p.copy()
    off[8] += (20, 0)  # half the inter-ocular distance away on the chin point
    # the odd teacher is the most trusted one by its weights, as dlib is on clean faces
    w = np.stack([np.full(68, 4.0), np.ones(68), np.ones(68)])
    fused, conf = fuse(np.stack([off, p, p])[None], w)
    assert np.linalg.norm(fused[0, 8] - p[8]) < 0.05 * 40  # the plain weighted mean would be 13 px off
    plain, _ = fuse(np.stack([off, p, p])[None], w, cauchy=None)
    assert np.linalg.norm(plain[0, 8] - p[8]) == pytest.approx(20 * 4 / 6)
    assert conf[0, 8] < conf[0, 7] and conf[0, 7] == pytest.approx(1.0)
    np.testing.assert_allclose(fused[0, :8], p[:8])


def test_confidence_falls_with_the_spread():
    p = _shape()
    confs = []
    for d in (0.0, 1.0, 2.4, 6.0):  # px; 2.4 px = tau (0.06) of a 40-px inter-ocular distance
        a, b = p.copy(), p.copy()
        a[30] += (d, 0)
        b[30] -= (d, 0)
        _, conf = fuse(np.stack([a, b])[None], np.ones((2, 68)))
        confs.append(conf[0, 30])
    assert confs[0] == 1.0 and all(x > y for x, y in zip(confs, confs[1:]))
    assert confs[2] == pytest.approx(np.exp(-0.5), rel=1e-6)  # equal weights, both 2.4 px from the middle


def test_fitted_weights_favour_the_precise_teacher_per_point():
    rng = np.random.default_rng(1)
    truth = np.stack([_shape(i) for i in range(50)])
    good, bad = truth + rng.normal(0, 0.5, truth.shape), truth + rng.normal(0, 2.0, truth.shape)
    bad[:, :17] = truth[:, :17] + rng.normal(0, 0.1, (50, 17, 2))  # ... except on the jaw
    w = fit_weights(np.stack([good, bad], axis=1), truth)
    assert w.shape == (2, 68)
    np.testing.assert_allclose(w.sum(0), 1.0)
    assert (w[0, 17:] > 0.8).all() and (w[1, :17] > 0.8).all()
    assert interocular(truth).min() == pytest.approx(40)


def test_hand_weights_follow_the_measured_errors():
    assert set(HAND_WEIGHTS) == {"dlib", "mediapipe", "kdmark-68-teacher"}
    w = teacher_weights(["dlib", "mediapipe", "someone-else"], "hand")
    assert (w[0] > w[1]).all()  # dlib is the more precise of the two in every region
    np.testing.assert_allclose(w[2], np.mean(list(HAND_WEIGHTS.values()), axis=0))  # unknown: the mean


def _write(folder, name, records):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _records(shared_data, n=4, shift=0.0):
    lines = (shared_data / "pseudo" / "dlib.jsonl").read_text().splitlines()[:n]
    recs = [json.loads(line) for line in lines]
    for r in recs:
        for f in r["faces"]:
            f["points"] = (np.asarray(f["points"]) + shift).tolist()
    return recs


def test_reads_the_shared_files_format(shared_data, tmp_path):
    folder = tmp_path / "pseudo"
    _write(folder, "a", _records(shared_data))
    _write(folder, "b", _records(shared_data, shift=1.0))
    assert is_pseudo_folder(folder)
    pl = read_pseudo(folder)
    assert pl.teachers == ["a", "b"] and pl.points.shape[1:] == (2, 68, 2) and pl.photos == 4
    samples, counts = pseudo_samples(folder, shared_data / "unlabelled")
    assert counts["kept"] == len(samples) == pl.points.shape[0]
    s = samples[0]
    np.testing.assert_allclose(s.points, pl.points[0].mean(0))  # two teachers, equal confidence in their middle
    assert s.weights.shape == (68,) and (s.weights <= 1).all() and s.image.is_file()
    assert "pseudo" in s.subsets


@pytest.mark.parametrize("damage, says", [
    (lambda recs: recs[:-1], "do not line up"),
    (lambda recs: [{**recs[0], "image": "other.jpg"}] + recs[1:], "do not line up at"),
    (lambda recs: [{**recs[0], "faces": [{**recs[0]["faces"][0], "points": [[1, 2]] * 5}]}] + recs[1:],
     "expected 68 finite"),
])
def test_damaged_files_give_one_line_naming_the_file(shared_data, tmp_path, damage, says):
    folder = tmp_path / "pseudo"
    _write(folder, "a", _records(shared_data))
    _write(folder, "b", damage(_records(shared_data)))
    with pytest.raises(DatasetError, match=says) as err:
        read_pseudo(folder)
    assert "\n" not in str(err.value) and "pseudo" in str(err.value)


def test_not_json_is_named_with_its_line(tmp_path):
    folder = tmp_path / "pseudo"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"image": "x.jpg", "faces": []}\nnot json\n')
    with pytest.raises(DatasetError, match=r"a\.jsonl:2: not a JSON line"):
        read_pseudo(folder)


def test_training_reads_a_pseudo_folder_as_extra_faces(shared_data, w300_root, tmp_path):
    from kdmark.config import to_dict
    from kdmark.engine.setup import build_data
    from kdmark.models.landmark_net import codec_for

    folder = tmp_path / "pseudo"
    _write(folder, "dlib", _records(shared_data, 6))
    _write(folder, "kdmark-68-teacher", _records(shared_data, 6, shift=0.5))
    extra = f"data.extra=[{{root: {folder}, images: {shared_data / 'unlabelled'}, weight: 0.5}}]"
    cfg = load_config(TrainConfig, None, [f"data.root={w300_root}", "data.max_samples=8", "data.input_size=64",
                                          extra])
    data = build_data(cfg, codec_for(to_dict(cfg.model), 64))
    pseudo = [s for s in data.train.samples if "pseudo" in s.subsets]
    assert len(pseudo) == read_pseudo(folder).points.shape[0] and len(data.train.samples) == 8 + len(pseudo)
    assert all(s.weights.max() <= 0.5 for s in pseudo)
    item = data.train[len(data.train.samples) - 1]  # a pseudo-labelled face decodes and carries its weights
    assert item["weights"].max() <= 0.5 and item["image"].shape == (3, 64, 64)
    no_images = f"data.extra=[{{root: {folder}}}]"
    cfg = load_config(TrainConfig, None, [f"data.root={w300_root}", "data.max_samples=8", no_images])
    with pytest.raises(DatasetError, match="images:"):
        build_data(cfg, codec_for(to_dict(cfg.model), 128))
