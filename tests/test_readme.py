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
    assert len(scope["faces"]) == 3 and scope["metrics"].num_images == len(scope["ds"]) > 0
    assert scope["metrics"].nme < 0.2
    assert "NME" in capsys.readouterr().out
