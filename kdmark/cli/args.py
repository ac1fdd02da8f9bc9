"""Argument types and helpers the verbs share. Torch-free, like all of ``kdmark.cli`` at import time."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["positive", "whole", "non_negative", "finite", "fraction", "add_data_source", "settings_help",
           "recipe_and_overrides"]


def whole(text: str, least: int = 0) -> int:
    """argparse type: an integer of at least ``least`` (0 here)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def positive(text: str) -> int:
    """argparse type: an integer of at least 1 (``--batch-size 0`` is one line, not a traceback later)."""
    return whole(text, 1)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def non_negative(text: str) -> float:
    """argparse type: a finite number of at least 0."""
    value = _number(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def finite(text: str) -> float:
    """argparse type: any finite number (``nan`` and ``inf`` are one line, not a silent empty result)."""
    value = _number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in (0, 1], e.g. an NME threshold such as 0.08."""
    value = finite(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (e.g. 0.08), not {text}")
    return value


def add_data_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset folder or annotation file (format detected)")
    p.add_argument("--format", default="auto", help="force a format instead of detecting it")
    p.add_argument("--split", default=None, help="one split, e.g. train, common, challenging, test")


def recipe_and_overrides(recipe: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """``kdmark train data.root=X``: a first argument with ``=`` that is not a file is an override, not a recipe."""
    if recipe is not None and "=" in recipe and not Path(recipe).is_file():
        return None, [recipe, *overrides]
    return recipe, list(overrides)


def settings_help(verb_name: str) -> str:
    """Every key=value setting of the verb's config with its default, for --help (read from the typed schema)."""
    import dataclasses
    import textwrap

    from kdmark.config import DistillConfig, TrainConfig

    def flat(cls, prefix=""):
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if dataclasses.is_dataclass(default):
                yield from flat(type(default), f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}={default!r}".replace("'", "")

    items = list(flat(DistillConfig if verb_name == "distill" else TrainConfig))
    body = textwrap.fill("  ".join(items), width=118, initial_indent="  ", subsequent_indent="  ",
                         break_on_hyphens=False)
    return f"settings (key=value, defaults shown; a recipe YAML sets the same keys):\n{body}"
