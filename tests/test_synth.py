"""Built-in synthetic faces: deterministic, read back by the 300-W readers with the right landmarks and tags, and
quick to make; the default `kdmark run` on them ends in a report."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from kdmark.data import read_dataset
from kdmark.data.synth import render_face, template_68, write_synthetic
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
    from kdmark.run import run_pipeline

    write_synthetic(tmp_path / "data", n=60, seed=0, size=128)
    run_pipeline(None, [f"out_dir={tmp_path / 'run'}", f"data.root={tmp_path / 'data'}", "epochs=1",
                        "data.input_size=64", "model.head_channels=16", "batch_size=8", "progress=false"])
    run = tmp_path / "run"
    for name in ("report.html", "report.md", "export/model.onnx", "eval/summary.json"):
        assert (run / name).is_file(), name
    page = (run / "report.html").read_text()
    assert "data:image/png;base64," in page and "student_kd" in page and "pruned" in page
    md = (run / "report.md").read_text()
    assert "| model | NME (%)" in md and "Distillation: the distilled student is" in md
    assert (run / "report_files" / "ced.png").is_file() and (run / "report_files" / "subsets.png").is_file()
