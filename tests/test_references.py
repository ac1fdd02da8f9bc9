"""The README, BENCHMARKS.md and the docstrings and comments of the package, scripts and tests name only things that
exist: every dotted name that starts with the package's name resolves to a module or an attribute, and every
repository path (``scripts/...``, ``recipes/...``, ``pipelines/...``, ``docs/...``, ``kdmark/...``, ``tests/...``)
is there."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "kdmark").rglob("*.py")),
         *sorted((ROOT / "kdmark").rglob("*.js")), *sorted((ROOT / "scripts").glob("*.py")),
         *sorted((ROOT / "scripts").glob("*.sh")), *sorted((ROOT / "tests").glob("*.py"))]
# ``kdmark`` is the web page's own JS object in these
PAGE_JS = {"tests/test_web.py", "kdmark/deploy/web/kdmark.js", "scripts/bench_web.py"}
DOTTED = re.compile(r"(?<![\w./-])kdmark(?:\.[A-Za-z_]\w*)+")
PATHS = re.compile(r"(?<![\w./-])((?:scripts|recipes|pipelines|docs|kdmark|tests)/[\w./-]*[\w/])")


def _resolves(dotted: str) -> bool:
    if dotted.endswith(".__main__"):  # importing it runs the command line: find it without running it
        return importlib.util.find_spec(dotted) is not None
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def _names(pattern: re.Pattern, skip: set[str] = frozenset()) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in TEXTS:
        if path.relative_to(ROOT).as_posix() in skip:
            continue
        for m in pattern.finditer(path.read_text()):
            found.setdefault(m.group(m.lastindex or 0), []).append(path.relative_to(ROOT).as_posix())
    return found


def test_dotted_kdmark_names_resolve():
    names = _names(DOTTED, PAGE_JS)
    assert len(names) > 20  # the scan found what it is meant to check
    missing = {n: sorted(set(where)) for n, where in names.items()
               if not _resolves(n.rstrip(".")) and not n.endswith((".py", ".js", ".html", ".yaml"))}
    assert not missing, missing


def test_repository_paths_exist():
    names = _names(PATHS)
    assert len(names) > 20
    missing = {}
    for name, where in names.items():
        path = name.rstrip(".")
        if any(ch in path for ch in "*{<") or "NAME" in path or "PATH" in path or path == "kdmark/plain":
            continue  # globs, placeholders, a ratio's name
        target = ROOT / path
        if not target.exists() and not any(f.name.startswith(target.name) for f in target.parent.glob("*")):
            # (a shell script's prefix such as recipes/300w_mbv2_$HEAD is fine when files start with it)
            missing[name] = sorted(set(where))
    assert not missing, missing


def test_every_kdmark_import_resolves():
    """Every ``from kdmark... import name`` in the package, scripts and tests, including the lazy ones inside
    functions that only run on some paths, names a module that exists and an attribute it has."""
    import ast

    files = [*sorted((ROOT / "kdmark").rglob("*.py")), *sorted((ROOT / "scripts").rglob("*.py")),
             *sorted((ROOT / "tests").glob("*.py"))]
    missing = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "kdmark":
                try:
                    module = importlib.import_module(node.module)
                except ImportError as err:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.module} ({err})")
                    continue
                for alias in node.names:
                    if not hasattr(module, alias.name):
                        try:
                            importlib.import_module(f"{node.module}.{alias.name}")
                        except ImportError:
                            missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "kdmark":
                        try:
                            importlib.import_module(alias.name)
                        except ImportError:
                            missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name}")
    assert not missing, missing
