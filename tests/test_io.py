"""kdmark.io.atomic_write replaces regular files only: symlinks are written through, FIFOs and character devices
are streamed to (issue 20: `--json /dev/null` once replaced the device node with a regular file)."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from kdmark.io import atomic_write_text


def test_regular_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and not list(tmp_path.glob(".*.tmp"))


def test_symlink_is_written_through_and_kept(tmp_path):
    target, link = tmp_path / "t.json", tmp_path / "l.json"
    target.write_text("old")
    link.symlink_to(target.name)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "d.json"
    dangling.symlink_to("missing.json")
    atomic_write_text(dangling, "x")
    assert dangling.is_symlink() and (tmp_path / "missing.json").read_text() == "x"


def test_fifo_is_streamed_to(tmp_path):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    atomic_write_text(fifo, "through the pipe")
    reader.join(10)
    assert got == ["through the pipe"] and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_character_device_is_not_replaced(tmp_path):
    dev = tmp_path / "null"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    except PermissionError:
        pytest.skip("making a device node needs root")
    atomic_write_text(dev, "discarded")
    assert stat.S_ISCHR(dev.lstat().st_mode)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        atomic_write_text(tmp_path, "x")
