"""The package's layers (README, "Development"): no module imports one in a layer above its own, and no import
cycle exists, counting the imports inside functions too (a cycle hidden in a function is still a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kdmark"

# bottom to top; a module belongs to the first entry that is its name or a package above it
LAYERS = [
    ("library", ["kdmark.errors", "kdmark.io", "kdmark.config", "kdmark.card", "kdmark.schemes", "kdmark.codecs",
                 "kdmark.losses", "kdmark.kd_losses", "kdmark.pose", "kdmark.pruning", "kdmark.runtime",
                 "kdmark.asm", "kdmark.zoo", "kdmark.weights"]),
    ("data and models", ["kdmark.data", "kdmark.models", "kdmark.metrics", "kdmark.drawing"]),
    ("model files", ["kdmark.checkpoint", "kdmark.model", "kdmark.deploy.export", "kdmark.deploy.detectors"]),
    ("engine, deploy and teachers", ["kdmark.engine", "kdmark.deploy", "kdmark.teachers"]),
    ("jobs", ["kdmark.jobs"]),
    ("command line and public API", ["kdmark.cli", "kdmark.__main__", "kdmark"]),
]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imports(name: str, path: Path, mods, root: str = "kdmark") -> set[str]:
    """The ``root`` package's modules ``name`` imports anywhere in its file (top level and inside functions)."""

    def known(dotted: str) -> str:
        while dotted not in mods and "." in dotted:
            dotted = dotted.rsplit(".", 1)[0]
        return dotted

    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {known(a.name) for a in node.names if a.name.startswith(root)}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            if base.startswith(root):
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in mods else known(base) for a in node.names}
    return found - {name}


def _layer(name: str) -> int:
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = i, prefix.count(".")
    assert best is not None, f"{name} is in no layer: add it to LAYERS and the README's layer list"
    return best


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def test_no_module_imports_a_layer_above_its_own(graph):
    upward = [f"{m} ({LAYERS[_layer(m)][0]}) imports {d} ({LAYERS[_layer(d)][0]})"
              for m, deps in sorted(graph.items()) for d in sorted(deps) if _layer(d) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle_even_through_imports_inside_functions(graph):
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(trail[trail.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, trail + [dep])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    source = tmp_path / "a.py"
    source.write_text("import os\n\ndef f():\n    from pkg.b import thing\n    import pkg.c.d\n"
                      "    from .e import g\n")
    assert _imports("pkg.a", source, {"pkg.a", "pkg.b", "pkg.c", "pkg.e"}, root="pkg") == {"pkg.b", "pkg.c", "pkg.e"}


def test_landmarks_from_a_photo_with_the_shipped_model_never_import_torch():
    """Why kdmark.model and the deploy modules import PyTorch inside functions (issue 28: "imports at the top unless
    a test proves a start-up cost"): the README's first Python lines, the shipped ONNX model on a photo, run without
    torch, timm or lightning (about 0.3 s to the model against 2-3 s with torch imported)."""
    import subprocess
    import sys

    photo = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "afw_1130084326.jpg"
    if not photo.is_file():
        pytest.skip("needs ../shared/data/photos")
    probe = ("import sys, kdmark\n"
             f"faces = kdmark.Predictor().predict({str(photo)!r})\n"
             "model = kdmark.load_model('kdmark-68-s')\n"
             "print('FACES', len(faces), model.backend, 'HEAVY', sorted(m for m in ('torch', 'timm', 'lightning') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert "FACES 3 onnx HEAVY []" in out, out[-500:]
