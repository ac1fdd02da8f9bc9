"""``kdmark export MODEL --web OUT/``: a static web page that runs BlazeFace and a kdmark model in the browser.

The folder holds ``index.html``, ``kdmark.js`` (the same steps as kdmark's Python code), ``config.json``, the two ONNX
files and onnxruntime-web's wasm build (``ort/``), copied from the npm package, so the page works offline from any
static web server::

    kdmark export kdmark-68-s --web site/
    python -m kdmark.deploy.web.serve site    # then open http://127.0.0.1:8000

onnxruntime-web comes from ``ort_web`` (an ``onnxruntime-web-X.tgz`` from ``npm pack``, or an unpacked package
folder such as ``node_modules/onnxruntime-web``), or else from kdmark's cache (``$KDMARK_CACHE``, default
``~/.cache/kdmark``), which is filled once from the npm registry and checked against the registry's sha512.
With a server that sends ``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy:
require-corp`` the page runs onnxruntime on two threads; otherwise on one (``?threads=N`` forces a count).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from kdmark import zoo
from kdmark.errors import ExportError

__all__ = ["export_web", "ort_web_package", "ORT_WEB_VERSION"]

ORT_WEB_VERSION = "1.23.2"
ORT_WEB_INTEGRITY = "sha512-T09JUtMn+CZLk3mFwqiH0lgQf+4S7+oYHHtk6uhaYAAJI95bTcKi5bOOZYwORXfS/RLZCjDDEXGWIuOCAFlEjg=="
ORT_WEB_URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ORT_WEB_VERSION}.tgz"
# package file -> name in OUT/ort/ (.js rather than .mjs: every static server sends .js as JavaScript)
ORT_FILES = {"dist/ort.wasm.min.mjs": "ort.wasm.min.js", "dist/ort-wasm-simd-threaded.mjs": "ort-wasm-simd-threaded.js",
             "dist/ort-wasm-simd-threaded.wasm": "ort-wasm-simd-threaded.wasm", "package.json": "package.json"}
PAGE_FILES = ("index.html", "kdmark.js")
MARKER = "kdmark_web_export"  # a key of config.json: a folder holding it may be replaced by a new export


def _cache() -> Path:
    return Path(os.environ.get("KDMARK_CACHE", Path.home() / ".cache" / "kdmark"))


def _integrity_ok(data: bytes) -> bool:
    algo, _, want = ORT_WEB_INTEGRITY.partition("-")
    return base64.b64encode(hashlib.new(algo, data).digest()).decode() == want


def ort_web_package(source: str | Path | None = None) -> dict[str, bytes]:
    """The onnxruntime-web files the page needs (ORT_FILES keys -> bytes), from ``source`` (a .tgz or an unpacked
    package folder) or the cache, downloading the pinned version from the npm registry into the cache if needed."""
    return _ort_web(source)[0]


def _ort_web(source: str | Path | None) -> tuple[dict[str, bytes], str, bool]:
    """The files, the version their package.json names, and whether they are the registry's pinned package (its
    sha512 checked: always for the cache and the download; for a given .tgz when its bytes match; never for a
    folder)."""
    verified = False
    if source is not None and Path(source).is_dir():
        root = Path(source) / "package" if (Path(source) / "package").is_dir() else Path(source)
        missing = [f for f in ORT_FILES if not (root / f).is_file()]
        if missing:
            raise ExportError(f"{source}: not an onnxruntime-web package folder (no {missing[0]})")
        files = {f: (root / f).read_bytes() for f in ORT_FILES}
    else:
        if source is not None:
            path = Path(source)
            if not path.is_file():
                raise ExportError(f"{source}: no such onnxruntime-web package (a .tgz from npm pack, or its folder)")
            data = path.read_bytes()
            verified = _integrity_ok(data)
        else:
            path = _cache() / f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"
            data = path.read_bytes() if path.is_file() else b""
            if not _integrity_ok(data):
                data = _download(path)
            verified = True
        files = _read_tgz(data, path)
    try:
        package = json.loads(files["package.json"])
        name, version = package["name"], str(package["version"])
    except (ValueError, KeyError, TypeError):
        raise ExportError(f"{source}: not an onnxruntime-web package (its package.json names no package and "
                          "version)") from None
    if name != "onnxruntime-web":
        raise ExportError(f"{source}: is the npm package {name!r}, not onnxruntime-web")
    return files, version, verified


def _download(path: Path) -> bytes:
    import urllib.request

    try:
        with urllib.request.urlopen(ORT_WEB_URL, timeout=120) as r:
            data = r.read()
    except OSError as err:
        raise ExportError(f"onnxruntime-web {ORT_WEB_VERSION} is not in {path.parent} and could not be downloaded "
                          f"({err}); get it with `npm pack onnxruntime-web@{ORT_WEB_VERSION}` and pass --ort-web "
                          "FILE.tgz") from None
    if not _integrity_ok(data):
        raise ExportError(f"{ORT_WEB_URL}: the download does not match the registry's sha512; not used")
    from kdmark.io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(data))
    return data


def _read_tgz(data: bytes, name: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            out = {}
            for f in ORT_FILES:
                member = tar.extractfile(f"package/{f}")
                if member is None:
                    raise KeyError(f)
                out[f] = member.read()
            return out
    except (tarfile.TarError, KeyError, EOFError, OSError) as err:
        raise ExportError(f"{name}: not an onnxruntime-web package ({err})") from None


def export_web(model, out: str | Path, ort_web: str | Path | None = None, tiles: int = 1,
               precision: str = "auto") -> Path:
    """Write the web page for ``model`` (a zoo name, .onnx or .ckpt) into the folder ``out`` and return it. ``out``
    is written whole or not at all; an earlier kdmark export there is replaced, any other non-empty folder is
    refused. A zoo model that ships an INT8 file gives the page that file (``precision="auto"``: the page's
    download is what matters most in a browser; "fp32" keeps the FP32 file)."""
    from kdmark.deploy.detectors import TO_LANDMARK_BOX
    from kdmark.deploy.detectors import blazeface as bf
    from kdmark.deploy.predict import VIDEO_ONE_EURO
    from kdmark.model import load_model, model_kind, onnx_file

    out = Path(out)
    earlier = _earlier_export(out)
    ort_files, ort_version, ort_verified = _ort_web(ort_web)
    if not ort_verified:
        import sys

        print(f"kdmark: note: {ort_web} is not the registry's onnxruntime-web {ORT_WEB_VERSION} package (sha512 "
              f"{'differs' if Path(ort_web).is_file() else 'not checkable for a folder'}; its package.json says "
              f"{ort_version}); the page's config.json records it as unverified", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    stage.chmod(0o755)  # mkdtemp makes it private; a web server must read it
    try:
        with tempfile.TemporaryDirectory(prefix="kdmark-") as tmp:  # a checkpoint is exported here first
            if precision == "auto":
                precision = "int8" if model_kind(model) == "zoo" and zoo.get(model).int8 is not None else "fp32"
            shutil.copyfile(onnx_file(model, tmp, precision), stage / "landmarks.onnx")
        card = load_model(stage / "landmarks.onnx").card  # the file the page runs, its card checked
        name = str(model) if model_kind(model) == "zoo" else Path(model).stem
        shutil.copyfile(bf.ONNX_PATH, stage / "blazeface.onnx")
        here = Path(__file__).parent
        for f in PAGE_FILES:
            shutil.copyfile(here / f, stage / f)
        (stage / "ort").mkdir()
        for src, dst in ORT_FILES.items():
            (stage / "ort" / dst).write_bytes(ort_files[src])
        detectors = Path(bf.__file__).parent
        notice = (detectors / "NOTICE").read_text() + (
            f"\nort/: onnxruntime-web {ort_version} (npm), Copyright Microsoft Corporation, MIT licence "
            "(ort/package.json names it; the package itself is on npm).\n"
            "landmarks.onnx: see its model card (the kdmark_card metadata in the file).\n")
        (stage / "NOTICE").write_text(notice)
        shutil.copyfile(detectors / "LICENSE.mediapipe", stage / "LICENSE.mediapipe")
        config = {
            MARKER: 1,
            "model": {"file": "landmarks.onnx", "name": name, "input_size": card.input_size,
                      "margin": card.margin, "num_points": card.num_points, "scheme": card.scheme,
                      "precision": card.precision},
            "detector": {"file": "blazeface.onnx", "threshold": 0.5, "min_face": 0.0, "tiles": tiles,
                         "tile_overlap": bf.TILE_OVERLAP, "tile_edge": bf.TILE_EDGE, "tile_min_side": bf.TILE_MIN_SIDE,
                         "small_input": bf.SMALL_INPUT, "small_max_side": bf.SMALL_MAX_SIDE,
                         "tiny_input": bf.TINY_INPUT, "tiny_max_side": bf.TINY_MAX_SIDE,
                         "tile_max_aspect": bf.TILE_MAX_ASPECT, "nms_iou": bf.NMS_IOU,
                         "to_landmark_box": list(TO_LANDMARK_BOX["blazeface"])},
            "one_euro": list(VIDEO_ONE_EURO), "redetect_every": 15, "ort_web_version": ort_version,
            "ort_web_verified": ort_verified,  # the registry's sha512 of the pinned package matched
            "ort_web_sha256": {dst: hashlib.sha256(ort_files[src]).hexdigest() for src, dst in ORT_FILES.items()},
        }
        config["files"] = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()) + [
            "config.json"]  # the manifest: all a later export may remove
        (stage / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if earlier is not None:
            _remove_export(out, earlier)
        stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def _earlier_export(out: Path) -> list[str] | None:
    """The files of an earlier export at ``out`` (its manifest), None when ``out`` is new or empty; refuses (one
    line) a folder that holds anything an export did not write: a foreign folder, a user's file beside an export,
    an export without a manifest, a symlink."""
    if out.is_symlink():
        raise ExportError(f"{out}: is a symlink; give the folder itself (kdmark writes a new folder and renames it)")
    if not out.exists():
        return None
    if not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder; choose an empty or new folder")
    present = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir() or p.is_symlink())
    if not present:
        return None
    try:
        config = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        config = None
    files = config.get("files") if isinstance(config, dict) and config.get(MARKER) == 1 else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ExportError(f"{out}: exists and is not an earlier kdmark web export (no manifest in its config.json); "
                          "choose an empty or new folder")
    foreign = [f for f in present if f not in set(files)]
    if foreign:
        raise ExportError(f"{out}: holds files an export did not write ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}); move them, or choose another folder")
    return present  # every file there is in the manifest (a manifest naming files elsewhere names nothing here)


def _remove_export(out: Path, files: list[str]) -> None:
    """Remove the files an earlier export's manifest lists, then the folders they leave empty (nothing else)."""
    for f in files:
        (out / f).unlink(missing_ok=True)
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        d.rmdir()
    out.rmdir()
