"""Atomic file output, torch-free: every checkpoint, label, table and report kdmark writes goes through here, so a
crash or a kill never leaves a half-written file where a good one was."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "save_figure", "remove_stale_temporaries",
           "sha256_of", "refuse_overwriting_inputs"]


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(outputs: dict[str, str | Path | None], inputs: list[str | Path],
                              input_folders: list[str | Path] = ()) -> None:
    """Raise ``kdmark.errors.OutputError`` (one line) when an output (``{"--json": path, ...}``) is one of
    ``inputs`` (the same file, by any name or link), or lies inside one of ``input_folders`` (which are read
    recursively: what is written there would be read back as an input next time). Call it before any work."""
    for flag, out in outputs.items():
        if out is None or str(out) == "-":
            continue
        out = Path(out)
        resolved = Path(os.path.realpath(out))
        for src in inputs:
            src = Path(src)
            if _same(out, src) or resolved == Path(os.path.realpath(src)):
                raise _refused(f"{out}: {flag} would overwrite the input {src}; choose another output")
        for folder in input_folders:
            folder = Path(os.path.realpath(folder))
            if resolved == folder or folder in resolved.parents:
                raise _refused(f"{out}: {flag} is inside the input folder {folder}: what is written there would "
                                  "be read as input next time; choose a folder outside it")

_SLOW_SAVE = float(os.environ.get("KDMARK_TEST_SLOW_SAVE", "0") or 0)


def _refused(message: str) -> OSError:
    from kdmark.errors import OutputError  # errors imports the data layer, which writes through this module

    return OutputError(message)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, writer: Callable[[BinaryIO], object]) -> Path:
    """Call ``writer(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    Only regular files are ever replaced: a symlink is written through to its target (the link stays), and a FIFO,
    character device or socket (``--json /dev/stdout``, a named pipe) is streamed to directly. A file that is
    replaced keeps its permissions; a read-only file, or one with other hard links (which a rename would cut off),
    is refused with ``kdmark.errors.OutputError`` before anything is written."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a folder, not a file to write")
        with open(path, "wb") as f:  # a pipe or a device: no temporary file, no rename
            writer(f)
        return path
    mode = None
    if path.is_file():
        st = path.stat()
        if not st.st_mode & 0o222 or not os.access(path, os.W_OK):  # no write bit: read-only, even to root
            raise _refused(f"{path}: is read-only; kdmark does not replace it (make it writable or write "
                              "elsewhere)")
        if st.st_nlink > 1:
            raise _refused(f"{path}: has {st.st_nlink} hard links; replacing it would cut them off (write "
                              "elsewhere, or remove it first)")
        mode = st.st_mode & 0o7777
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        if _SLOW_SAVE:  # tests: widen the window between writing and renaming, to kill a process inside it
            time.sleep(_SLOW_SAVE)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | Path, obj: object, indent: int | None = 2) -> Path:
    """``obj`` as JSON (reports, labels, run markers), written atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent))


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically (its format from the suffix, e.g. ``.png``) and close it."""
    import matplotlib.pyplot as plt

    fmt = Path(path).suffix.lstrip(".") or "png"
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs))
    finally:
        plt.close(fig)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder`` (``.NAME.PID.tmp`` whose process is gone)."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # its writer is still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, owned by someone else
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file, read in 1 MB blocks (what model cards and checkpoint provenance record)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
