"""Built-in synthetic faces: deterministic, read back by the 300-W readers with the right landmarks and tags, and
quick to make; the default `kdmark run` on them ends in a report."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from kdmark.data import read_dataset
from kdmark.data.synth import annotate, render_face, template_68, write_synthetic
from kdmark.schemes import IBUG_68


def test_template_follows_the_ibug_markup():
    p = template_68()
    assert p[0, 0] < 0 < p[16, 0] and p[8, 1] > p[30, 1] > p[27, 1]  # jaw left->right, chin below the nose
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]  # eye corners in image order
    assert p[48, 0] < p[54, 0] and p[62, 1] < p[66, 1] + 1e-9
    for i, j in enumerate(IBUG_68.flip):  # the template is left-right symmetric under the flip permutation
        np.testing.assert_allclose(p[i, :2] * [-1, 1], p[j, :2], atol=1e-9)


def test_deterministic_and_read_back_exactly(tmp_path):
    write_synthetic(tmp_path / "a", n=10, seed=3)
    write_synthetic(tmp_path / "b", n=10, seed=3)
    for f in (tmp_path / "a").rglob("*.p*"):
        assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes()
    ds = read_dataset(tmp_path / "a")
    assert ds.format == "folder" and ds.scheme.name == "300w" and len(ds) == 10
    assert ds.tag_counts()["train"] == 8 and ds.tag_counts()["test"] == 2
    face = render_face(np.random.default_rng([3, 0]), 256)
    first = next(s for s in ds if s.key == "train/synth_00000.pts")
    np.testing.assert_allclose(first.points, face.points, atol=1e-5)  # .pts 1-based on disk, exact once read
    attrs = json.loads((tmp_path / "a" / "attributes.json").read_text())
    assert set(next(iter(attrs.values()))) == {"largepose", "expression", "illumination", "makeup", "occlusion",
                                               "blur"}
    assert len(read_dataset(tmp_path / "a", split="test")) == 2


def test_label_noise_touches_training_labels_only(tmp_path):
    write_synthetic(tmp_path / "exact", n=10, seed=3)
    write_synthetic(tmp_path / "noisy", n=10, seed=3, label_noise=0.02)
    write_synthetic(tmp_path / "again", n=10, seed=3, label_noise=0.02)
    exact, noisy = read_dataset(tmp_path / "exact"), read_dataset(tmp_path / "noisy")
    by_key = {s.key: s for s in exact}
    for s in noisy:
        err = np.linalg.norm(s.points - by_key[s.key].points, axis=1)
        if s.key.startswith("test/"):
            np.testing.assert_array_equal(s.points, by_key[s.key].points)  # the test split scores the truth
        else:
            assert err.mean() > 0.5  # pixels, at 256 px faces
    for f in (tmp_path / "noisy").rglob("*.pts"):  # the noise is seeded too
        assert f.read_bytes() == (tmp_path / "again" / f.relative_to(tmp_path / "noisy")).read_bytes()
    assert json.loads((tmp_path / "noisy" / "synth.json").read_text())["label_noise"] == 0.02


@pytest.mark.parametrize("noise", ["nan", "-0.01", "inf"])
def test_bad_label_noise_is_one_clear_error_and_writes_nothing(tmp_path, noise, capsys):
    from kdmark.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth", str(tmp_path / "out"), "--n", "2", "--label-noise", noise])
    assert exit_info.value.code == 2
    assert f"argument --label-noise: must be a finite number >= 0, not {noise}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="label_noise"):
        write_synthetic(tmp_path / "api", n=2, label_noise=float(noise))
    assert not (tmp_path / "api").exists()


def test_annotation_noise_model():
    points = render_face(np.random.default_rng([0, 5]), 256).points
    np.testing.assert_array_equal(annotate(points, 0.0, np.random.default_rng(0)), points)
    iod = np.linalg.norm(points[45] - points[36])
    draws = np.stack([annotate(points, 0.02, np.random.default_rng(i)) for i in range(400)]) - points
    inner = draws[:, 27:].reshape(-1, 2)  # nose, eyes, mouth: isotropic, 0.02 IOD per axis, unbiased
    np.testing.assert_allclose(inner.std(0), 0.02 * iod, rtol=0.1)
    assert np.abs(inner.mean(0)).max() < 0.005 * iod
    jaw = draws[:, 8]  # the chin slides along the jaw (horizontally there) three times as far as it moves across
    assert jaw[:, 0].std() > 2.5 * jaw[:, 1].std()


def test_variety_and_speed(tmp_path):
    t0 = time.perf_counter()
    faces = [render_face(np.random.default_rng([0, i]), 256) for i in range(100)]
    per_face = (time.perf_counter() - t0) / 100
    assert per_face < 0.05, f"{per_face * 1e3:.1f} ms per face: 2000 faces must take seconds"
    counts = {k: sum(f.attributes[k] for f in faces) for k in faces[0].attributes}
    assert all(5 <= c <= 80 for c in counts.values()), counts  # every attribute occurs, none everywhere
    widths = [np.ptp(f.points[:, 0]) for f in faces]
    assert np.std(widths) > 5  # pose and identity vary the shape


@pytest.mark.slow
def test_default_run_on_synthetic_faces_writes_a_report(tmp_path):
    from kdmark.jobs.pipeline import run_pipeline

    write_synthetic(tmp_path / "data", n=60, seed=0, size=128)
    run_pipeline(None, [f"out_dir={tmp_path / 'run'}", f"data.root={tmp_path / 'data'}", "epochs=1",
                        "data.input_size=64", "model.head_channels=16", "batch_size=8", "progress=false"])
    run = tmp_path / "run"
    for name in ("report.html", "report.md", "export/model.onnx", "eval/summary.json"):
        assert (run / name).is_file(), name
    page = (run / "report.html").read_text()
    assert "data:image/png;base64," in page and "student_kd" in page and "pruned" in page
    md = (run / "report.md").read_text()
    assert "| model | NME (%)" in md and md.index("## What each ingredient buys") < md.index("## Every model")
    for row in ("| distillation, student from scratch | student |", "| distillation, teacher pruned to the student's "
                "size | pruned |", "| the teacher's weights (pruned teacher vs scratch, no distillation) | student |"):
        assert row in md, row
    assert "best of the compared models: " in md
    assert (run / "report_files" / "ced.png").is_file() and (run / "report_files" / "subsets.png").is_file()
    _renders_in_chromium(run / "report.html", page.count("<img "))


def _renders_in_chromium(report, images: int) -> None:
    """The page opens offline in headless Chromium with every image decoded (skipped without a Chromium)."""
    import shutil
    import subprocess
    from pathlib import Path

    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium on this machine (apt-get install chromium) to render the report with")
    script = Path(__file__).resolve().parents[1] / "scripts" / "check_report.sh"
    out = subprocess.run(["bash", str(script), str(report)], capture_output=True, text=True, timeout=120)
    assert f'data-images="{images}/{images}"' in out.stdout, out.stdout + out.stderr
    assert report.with_suffix(".png").stat().st_size > 10_000


def _white_centroid(img: np.ndarray, pts: np.ndarray) -> np.ndarray | None:
    """Centroid of the eye-white pixels inside the landmarks' bounding box (None for a closed eye)."""
    x0, y0 = np.floor(pts.min(0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 3
    patch = img[y0:y1, x0:x1].astype(int)
    white = (patch.min(axis=2) > 225) & (np.ptp(patch, axis=2) < 12)
    if white.sum() < 15:
        return None
    ys, xs = np.nonzero(white)
    return np.array([xs.mean() + x0, ys.mean() + y0])


def _expected_white_centroid(eye: np.ndarray) -> np.ndarray:
    """Area centroid of the eye hexagon spanned by the six landmarks (shoelace formula)."""
    x, y = eye[:, 0], eye[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = cross.sum() / 2
    return np.array([((x + np.roll(x, -1)) * cross).sum(), ((y + np.roll(y, -1)) * cross).sum()]) / (6 * area)


@pytest.mark.parametrize("seed", range(8))
def test_drawn_features_sit_at_the_landmarks(seed):
    """Find the drawn eyes (white sclera) and mouth (lip colour) in a clean render: they sit where the landmarks
    say, to a fraction of a pixel for the eye centres (an off-by-one or mirrored drawing would fail)."""
    face = render_face(np.random.default_rng([seed, 1]), 256, clean=True)
    img, p = face.image, face.points
    checked = 0
    for i0 in (36, 42):
        centroid = _white_centroid(img, p[i0:i0 + 6])
        if centroid is not None:
            np.testing.assert_allclose(centroid, _expected_white_centroid(p[i0:i0 + 6]), atol=0.6)
            checked += 1
    # mouth corners: the outermost lip pixels (clean renders paint the lips (200, 40, 70)) are the corners
    lip = (np.abs(img.astype(int) - [200, 40, 70]).sum(axis=2) < 60)
    lip[:, : int(p[48, 0]) - 6] = False
    lip[:, int(p[54, 0]) + 7:] = False
    ys, xs = np.nonzero(lip)
    assert abs(xs.min() - p[48:60, 0].min()) < 1.5 and abs(xs.max() - p[48:60, 0].max()) < 1.5
    checked += 1
    assert checked >= 1


@pytest.mark.parametrize("seed", range(8))
def test_brows_hang_below_their_landmarks(seed):
    """iBUG brow points mark the brow's upper edge: in a clean render the strongest skin-to-brow (darkening) step
    below each middle brow point's neighbourhood lies within a pixel of it (a brow drawn centred on its points
    would put it 1-3 px higher)."""
    face = render_face(np.random.default_rng([seed, 2]), 256, clean=True)
    grey = face.image.astype(float).mean(axis=2)
    for i in (19, 24):
        x, y = np.round(face.points[i]).astype(int)
        column = grey[y - 5:y + 6, x - 1:x + 2].mean(axis=1)  # rows y-5 .. y+5
        step = -np.diff(column)  # darkening downwards; step k lies between rows y-5+k and y-4+k
        edge = np.argmax(step) - 4.5
        assert step.max() >= 2, f"no brow edge at point {i}"
        assert abs(edge - (face.points[i, 1] - y)) <= 1.0, (i, edge, face.points[i, 1] - y)


# sha256 of 48 rendered faces (24 seeds, cluttered and clean, 128 px): pixels, points and attributes. It pins the
# generator so a refactor of render_face provably changes no pixel; a deliberate change to the faces updates it
# (and the synthetic benchmarks in BENCHMARKS.md move with it). OpenCV's antialiased drawing differs between its
# major versions, so there is one checksum per major version, each measured with NumPy 2: OpenCV 4.10, 4.12 and 4.14
# give the first, 5.0 and 5.1 the second. Older OpenCV 4 releases (4.8, 4.9: NumPy 1 only) were not measured.
RENDER_SHA256 = {4: "c9868e8a15b1480ed76b04686ad6302ce712397e8507b29c35657e98b103975f",
                 5: "0027a28e0e2a26a8fdc9bb0a1697db1d225e296b89a00c8539a5f0c00b5a5207"}


def test_rendered_faces_match_their_checksum():
    import hashlib

    import cv2

    from kdmark.data.synth import render_face

    major, minor = (int(v) for v in cv2.__version__.split(".")[:2])
    if major not in RENDER_SHA256 or (major, minor) < (4, 10):
        pytest.skip(f"no checksum measured with OpenCV {cv2.__version__} (its drawing differs by version)")
    h = hashlib.sha256()
    for seed in range(24):
        for clean in (False, True):
            face = render_face(np.random.default_rng(seed), 128, clean=clean)
            h.update(face.image.tobytes())
            h.update(np.round(face.points, 6).tobytes())
            h.update(repr(sorted(face.attributes.items())).encode())
    assert h.hexdigest() == RENDER_SHA256[major]
