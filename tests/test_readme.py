"""The README's Python snippet runs as written (in a folder holding photo.jpg and 300w/, as it assumes)."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_snippet_runs_as_written(shared_data, tmp_path, capsys):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python in a few lines", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "photo.jpg").symlink_to(shared_data / "photos" / "afw_1130084326.jpg")
    (tmp_path / "300w").symlink_to(shared_data / "300w")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        scope: dict = {}
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the point of the test
    finally:
        os.chdir(cwd)
    assert [len(f) for f in scope["many"]] == [3, 3]
    assert len(scope["faces"]) == 3 and scope["metrics"].num_images == len(scope["ds"]) > 0
    assert sorted(f.track_id for f in scope["tracked"]) == [0, 1, 2] and scope["picture"].shape == (1536, 2048, 3)
    assert scope["faces"][0].pose is not None
    assert scope["model"].card.input_size == 120 and scope["model"].backend == "onnx"
    assert scope["metrics"].nme < 0.2
    assert "NME" in capsys.readouterr().out


def test_readme_distill_snippet_runs_as_written(tmp_path, monkeypatch):
    """The README's second snippet, as written, in a folder whose recipes/300w_mbv2_heatmap.yaml is a tiny recipe
    (64 px, two steps) and whose 300w/ is 60 synthetic faces: it distils from the shipped teacher."""
    from kdmark.data.synth import write_synthetic

    text = (ROOT / "README.md").read_text()
    section = text.split("## Python in a few lines", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    write_synthetic(tmp_path / "300w", n=60, seed=0, size=96)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "300w_mbv2_heatmap.yaml").write_text(
        "data: {input_size: 64, num_workers: 0, train_split: train, val_split: test}\n"
        "model: {backbone: mobilenetv2_050, head: heatmap, head_channels: 16}\n"
        "epochs: 1\nmax_steps: 2\nbatch_size: 8\nprogress: false\nout_dir: run\n")
    monkeypatch.chdir(tmp_path)
    scope: dict = {"kdmark": __import__("kdmark")}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the point of the test
    cfg = scope["cfg"]
    assert list(cfg.teachers) == ["kdmark-68-teacher"] and cfg.kd.w_heatmap == 1 and cfg.data.input_size == 64
    assert (tmp_path / "run" / "best.ckpt").is_file()


def test_public_api_names_are_what_the_readme_says():
    """Every name in ``kdmark.__all__`` resolves, and the verbs' functions stay functions even after every
    submodule was imported first (a module named like an API function would shadow it)."""
    import subprocess
    import sys

    probe = (
        "import importlib, pkgutil, kdmark\n"
        "for m in pkgutil.walk_packages(kdmark.__path__, 'kdmark.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "import inspect\n"
        "bad = [n for n in kdmark.__all__ if n != '__version__' and getattr(kdmark, n, None) is None]\n"
        "verbs = ['Predictor', 'train', 'distill', 'prune', 'evaluate', 'export_onnx', 'load_checkpoint',\n"
        "         'read_dataset', 'compute_metrics', 'load_config']\n"
        "bad += [n for n in verbs if inspect.ismodule(getattr(kdmark, n)) or not callable(getattr(kdmark, n))]\n"
        "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
