"""Atomic file output, torch-free: every checkpoint, label, table and report kdmark writes goes through here, so a
crash or a kill never leaves a half-written file where a good one was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "save_figure", "remove_stale_temporaries",
           "sha256_of", "refuse_overwriting_inputs", "lock_folder", "unlock_folder",
           "write_together"]


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

_LOCKS: dict[str, object] = {}  # lock file -> its open, flock-ed handle (released when the process ends)


def lock_folder(folder: str | Path, name: str = ".lock", busy: str = "is busy",
                instead: str = "choose another folder", error: type[Exception] | None = None) -> Path:
    """Hold an exclusive lock on ``folder/name`` for the life of this process (or until ``unlock_folder``), so
    that a second kdmark process cannot write the same outputs at the same time; when it is taken, raises
    ``error`` (default ``OutputError``) naming the folder, the owner's pid, ``busy`` (what the other process is
    doing) and ``instead`` (what to do). Idempotent."""
    import fcntl

    path = Path(folder) / name
    key = str(path.resolve())
    if key in _LOCKS:
        return path
    f = open(path, "a+")  # noqa: SIM115 - held open while the lock is held
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        owner = f.read().strip() or "another process"
        f.close()
        message = f"{folder}: another kdmark process ({owner}) {busy}; wait for it or {instead}"
        raise (error(message) if error else _refused(message)) from None
    f.truncate(0)
    f.write(f"pid {os.getpid()}")
    f.flush()
    _LOCKS[key] = f
    return path


def unlock_folder(folder: str | Path, name: str = ".lock") -> None:
    """Release a lock this process took with ``lock_folder`` and remove its file (a killed process releases its
    lock by exiting; the file stays, unlocked)."""
    path = Path(folder) / name
    f = _LOCKS.pop(str(path.resolve()), None)
    if f is not None:
        path.unlink(missing_ok=True)
        f.close()


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


def _replaceable(path: Path) -> int | None:
    """The permission bits a replacement of ``path`` keeps (None: no file there yet); refuses a read-only file, or
    one with other hard links (which a rename would cut off)."""
    if not path.is_file():
        return None
    st = path.stat()
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):  # no write bit: read-only, even to root
        raise _refused(f"{path}: is read-only; kdmark does not replace it (make it writable or write elsewhere)")
    if st.st_nlink > 1:
        raise _refused(f"{path}: has {st.st_nlink} hard links; replacing it would cut them off (write "
                       "elsewhere, or remove it first)")
    return st.st_mode & 0o7777


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
    mode = _replaceable(path)
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


def write_together(folder: str | Path, write: Callable[[Path], tuple[list[Path], dict]], marker: str) -> list[Path]:
    """One run's outputs appear in ``folder`` together or not at all. ``write(stage)`` writes every output but the
    marker into the empty folder ``stage`` and returns (those files, the marker's JSON object); the marker
    (e.g. ``metrics.json``) is written with ``"files"``, the names of the set, added. The old marker goes first and
    the new one comes last, so a marker always lists a complete set of one run: a kill leaves either the earlier
    set, or the new files without a marker (an incomplete run, which the next one replaces). Files the earlier
    marker listed that this run does not write are removed; nothing else in ``folder`` is touched. A replaced file
    keeps its mode; read-only and hard-linked targets are refused before anything moves. Staging folders of killed
    runs are removed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stage = folder / f".{marker}.{os.getpid()}.tmp"
    stage.mkdir()
    try:
        files, obj = write(stage)
        names = [Path(f).name for f in files]
        if marker in names or any(Path(f).parent != stage for f in files):
            raise ValueError(f"write_together: outputs must be written into {stage}, and not as {marker}")
        atomic_write_json(stage / marker, {**obj, "files": names + [marker]})
        remove_stale_temporaries(folder, names + [marker])  # killed runs' halves and staging folders
        modes = {n: _replaceable(folder / n) for n in names + [marker]}
        earlier = _listed(folder / marker)
        (folder / marker).unlink(missing_ok=True)  # from here on no marker vouches for a mixed set
        for n in earlier - set(names) - {marker}:
            if (folder / n).is_file():
                (folder / n).unlink()
        if _SLOW_SAVE:  # tests: widen the window, to kill a process inside it
            time.sleep(_SLOW_SAVE)
        for n in names + [marker]:
            if modes[n] is not None:
                os.chmod(stage / n, modes[n])
            os.replace(stage / n, folder / n)
        _fsync_dir(folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [folder / n for n in names + [marker]]


def _listed(marker: Path) -> set[str]:
    """The plain file names an earlier marker lists (never a path: a damaged marker cannot point outside)."""
    try:
        names = json.loads(marker.read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {n for n in names if isinstance(n, str) and n and Path(n).name == n and n not in (".", "..")}


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


def remove_stale_temporaries(folder: str | Path, names: Iterable[str] | None = None) -> list[Path]:
    """Delete the temporary files (and staging folders, ``write_together``) a killed writer left in ``folder``
    (``.NAME.PID.tmp`` whose process is gone). ``names``: only those of these outputs (a folder that is not
    kdmark's own, e.g. the one an export writes into); None: every one (a locked run folder)."""
    removed = []
    wanted = None if names is None else set(names)
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            stem, pid_text, _ = tmp.name[1:].rsplit(".", 2)
            pid = int(pid_text)
        except ValueError:
            continue
        if wanted is not None and stem not in wanted:
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
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
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
