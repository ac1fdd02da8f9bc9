"""Reading a torch weights file safely (``weights_only``: a pickle that asks for code is refused, never run), and
why a file would not read, in a few words. Shared by checkpoints and by backbones' ``pretrained=PATH``."""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path

import torch

__all__ = ["load_weights_only", "why_unreadable"]


def load_weights_only(path: str | Path):
    """``torch.load(path, weights_only=True)`` on the CPU, with torch's warnings about the file kept in (a foreign
    pickle's protocol, say): the caller turns a failure into one line (:func:`why_unreadable`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def why_unreadable(path: Path, err: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in a few words: a pickle that asks for code (a hostile or
    foreign file; refused, never run), a truncated archive, or the error's type."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    if found:
        return (f"it asks to load {found.group(1)}, which is code, not weights; refused, as kdmark never runs code "
                "from a file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "empty (0 bytes)"
    zipped = head == b"PK\x03\x04"  # a zip archive, as torch.save writes
    if zipped and zipfile.is_zipfile(path):  # whole (its central directory reads) but not what torch.save writes
        first = re.split(r"\.\s", (str(err).strip().splitlines() or [""])[0])[0][:100]  # its first sentence
        return f"a zip archive, but not a whole torch.save checkpoint: {type(err).__name__}: {first}"
    if zipped or "central directory" in str(err) or "EOF" in str(err) or isinstance(err, EOFError):
        return "truncated (an interrupted copy or download?)"
    if head[:1] == b"\x80":  # a pickle's protocol opcode: a bare Python pickle, as pickle.dump writes
        return f"a Python pickle, not a torch.save checkpoint ({type(err).__name__})"
    return type(err).__name__
