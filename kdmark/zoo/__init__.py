"""kdmark's model zoo: trained 68-point models shipped inside the package, usable by name anywhere a checkpoint
path is (``Predictor("kdmark-68-m")``, ``kdmark predict``, ``teachers=[kdmark-68-teacher]``,
``init_from=kdmark-68-s``, ``kdmark bench kdmark-68-s``). Nothing is downloaded or rebuilt at run time: the files
are package data, found through ``importlib.resources``; ``models.json`` holds what ``kdmark models`` lists and each
``NAME.md`` is the model card (training data and the licence terms it inherits, recipe, metrics, sha256).

This module imports neither torch nor timm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from kdmark.io import sha256_of

__all__ = ["DEFAULT", "ZooModel", "models", "get", "resolve", "is_zoo_name", "sha256_of", "table", "markdown_table"]

DEFAULT = "kdmark-68-s"  # what ``kdmark predict photo.jpg`` and ``kdmark.Predictor()`` use


@dataclass(frozen=True)
class ZooModel:
    name: str
    checkpoint: Path  # the kdmark checkpoint (weights + card)
    onnx: Path | None  # the exported ONNX file, when one ships (the fast path of Predictor)
    int8: Path | None  # its statically quantised INT8 copy, when one ships (``precision="int8"``, the web page)
    card: Path  # the model card (markdown)
    info: dict  # the models.json entry: summary, sha256, measured NME / size / latency

    @property
    def summary(self) -> str:
        return self.info.get("summary", "")


def _folder() -> Path:
    return Path(str(resources.files("kdmark.zoo")))


@cache
def _index() -> dict[str, dict]:
    path = _folder() / "models.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def models() -> list[ZooModel]:
    """Every zoo model shipped with this installation, in the order of ``models.json``."""
    return [get(name) for name in _index()]


def is_zoo_name(spec) -> bool:
    return isinstance(spec, str) and spec in _index()


def get(name: str) -> ZooModel:
    """The zoo model ``name``; its files are checked against the sha256 that ``models.json`` records (once per
    process and file version), so a file replaced or damaged inside the installed package is refused, not run."""
    info = _index().get(name)
    if info is None:
        known = ", ".join(_index()) or "none shipped"
        raise KeyError(f"{name or repr(name)}: not a kdmark zoo model (known: {known})")
    folder = _folder()
    onnx = folder / info["onnx"] if info.get("onnx") else None
    int8 = folder / info["onnx_int8"] if info.get("onnx_int8") else None
    for path in (folder / info["checkpoint"], onnx, int8):
        if path is not None:
            _verify(name, path, (info.get("sha256") or {}).get(path.name))
    return ZooModel(name, folder / info["checkpoint"], onnx, int8, folder / f"{name}.md", info)


_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime) of files whose sha256 matched


def _verify(name: str, path: Path, expected: str | None) -> None:
    from kdmark.errors import CheckpointError

    try:
        st = path.stat()
    except OSError:
        raise CheckpointError(f"{path}: the file of zoo model {name} is missing from the installed package; "
                              "reinstall kdmark") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return
    if expected is None:
        raise CheckpointError(f"{path}: models.json records no sha256 for this file of zoo model {name}; "
                              "reinstall kdmark")
    if sha256_of(path) != expected:
        raise CheckpointError(f"{path}: does not match the sha256 that zoo model {name} ships with (models.json): "
                              "the file was changed or damaged after installation; reinstall kdmark")
    _VERIFIED.add(key)


def resolve(spec):
    """The checkpoint file for a zoo name; any other value (a path, a module) is returned unchanged."""
    return get(spec).checkpoint if is_zoo_name(spec) else spec


def table() -> list[str]:
    """``kdmark models``: one line per shipped model (name, NME, size, latency, summary) and what the figures mean."""
    from kdmark.runtime import pick_precision

    rows = [("name", "NME 300-W val", "size", "ms/face", "summary")]
    for m in models():
        i = m.info
        int8 = pick_precision("auto", m.int8 is not None) == "int8"  # the file predict runs on this CPU
        size, ms = (i["size_bytes_int8"], i["latency_ms_int8"]) if int8 else (i["size_bytes"], i["latency_ms"])
        rows.append((m.name + (" (default)" if m.name == DEFAULT else ""), f"{i['nme']:.3%}",
                     f"{size / 1e6:.2f} MB" + (" INT8" if int8 else ""), f"{ms:.2f}", m.summary))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4] for r in rows]
    return lines + ["NME: inter-ocular, kdmark's 119 held-out 300-W training faces; size: the file predict runs "
                    "on this CPU (INT8 where it has 8-bit dot-product instructions); ms/face: onnxruntime (PyTorch "
                    "for a model that ships no ONNX file), batch 1, 1 thread, this package's measurement (kdmark "
                    "bench NAME re-measures here). Terms: kdmark models NAME"]


def markdown_table() -> list[str]:
    """The README's zoo table, made from ``models.json`` alone (the file ``scripts/zoo_package.py`` measures), so
    the README, the cards and ``kdmark models`` cannot disagree (``tests/test_zoo.py`` checks the README holds it)."""
    def ms(t: dict, k: str) -> str:
        v = t.get(k)
        return "-" if v is None else f"{v:.2f}" if v < 10 else f"{v:.1f}"

    rows = ["| model | what it is | held-out NME | NME, dlib's boxes | file `predict` runs | ms/face, 1 / 2 threads |",
            "|---|---|---|---|---|---|"]
    shipped = models()
    for m in shipped:
        i = m.info
        vs = i.get("vs_dlib", {})
        nme, t1, t2 = vs.get("nme", {}), vs.get("latency_ms_1t", {}), vs.get("latency_ms_2t", {})
        what = f"{i['summary']}; {i['params'] / 1e6:.2f} M params, {i['macs'] / 1e6:.0f} M MACs"
        if m.int8 is not None:
            boxes = f"{nme['onnx-fp32']:.2%} (INT8 {nme['onnx-int8']:.2%})"
            runs = (f"ONNX INT8 {i['sizes']['onnx_int8'] / 1e6:.2f} MB where the CPU has 8-bit dot products, else "
                    f"FP32 {i['sizes']['onnx_fp32'] / 1e6:.2f} MB")
            speed = (f"INT8 {ms(t1, 'onnx-int8')} / {ms(t2, 'onnx-int8')}, "
                     f"FP32 {ms(t1, 'onnx-fp32')} / {ms(t2, 'onnx-fp32')}")
        else:
            boxes = f"{nme['torch']:.2%}"
            runs = f"checkpoint {i['sizes']['checkpoint'] / 1e6:.2f} MB (PyTorch)"
            speed = f"{ms(t1, 'torch-eager')} / {ms(t2, 'torch-eager')}"
        name = f"`{m.name}`" + (" (default)" if m.name == DEFAULT else "")
        rows.append(f"| {name} | {what} | {i['nme']:.2%} | {boxes} | {runs} | {speed} (on {i['machine']}) |")
    beside = [m.info for m in shipped if "dlib-68" in m.info.get("vs_dlib", {}).get("nme", {})]
    if not beside:
        return rows
    last, lat = beside[-1], sorted(i["vs_dlib"]["latency_ms_1t"]["dlib-68"] for i in beside)
    return rows + [f"| dlib's shape predictor (for comparison) | regression trees, trained on these very faces | - | "
                   f"{last['vs_dlib']['nme']['dlib-68']:.2%} | {last['sizes']['dlib_68'] / 1e6:.1f} MB | "
                   f"{lat[0]:.1f}-{lat[-1]:.1f} / - (measured beside each model) |"]
