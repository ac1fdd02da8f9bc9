"""Command-line flags generated from a verb's typed config (``kdmark.config.EvalConfig`` and the others), so each
default, help text and check is written once, in the schema; and the config built back from the parsed flags plus
any ``key=value`` settings after them (unknown keys refused with a suggestion, as for training)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from kdmark.cli import args as checks
from kdmark.config import ConfigError, from_dict

__all__ = ["add_config_flags", "config_from_args", "SETTINGS_NOTE"]

SETTINGS_NOTE = ("every option can also be given as key=value after the others, with the option's name in "
                 "underscores (e.g. batch_size=16 tta=flip); unknown keys are refused with a suggestion")


def _hints(cls) -> dict:
    import kdmark.config as module

    return typing.get_type_hints(cls, vars(module))


def _base(tp):
    """(Python type, choices) of a field's annotation: Optional[...] unwrapped, a Literal's values as choices."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Literal:
        return str, list(typing.get_args(tp))
    if args and typing.get_origin(tp) is not tuple:
        return _base(args[0])
    if typing.get_origin(tp) is tuple:
        return str, None
    return tp, None


def add_config_flags(p: argparse.ArgumentParser, cls) -> None:
    """One argparse argument per field of ``cls``: positional where the field says so, else ``--name-with-dashes``
    (or its ``flag``); booleans become switches that flip their default; ``check`` names the argparse type of
    :mod:`kdmark.cli.args` that validates the value."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        how = dict(f.metadata)
        kind, choices = _base(hints[f.name])
        kw: dict = {"help": how.get("help", ""), "dest": f.name}
        if kind is bool:
            flag = how.get("flag") or ("--no-" if f.default else "--") + f.name.replace("_", "-")
            p.add_argument(flag, action="store_false" if f.default else "store_true", **kw)
            continue
        kw["type"] = getattr(checks, how["check"]) if "check" in how else (float if kind is float else
                                                                            int if kind is int else str)
        if choices:
            kw["choices"] = choices
        if "metavar" in how:
            kw["metavar"] = how["metavar"]
        if how.get("positional"):
            kw.pop("dest")
            if "nargs" in how:
                kw["nargs"] = how["nargs"]
            p.add_argument(f.name, **kw)
            continue
        kw["default"] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kw["required"] = bool(how.get("required"))
        p.add_argument(how.get("flag") or "--" + f.name.replace("_", "-"), **kw)
    p.set_defaults(overrides=[], config_class=cls)


def _split_settings(cls, values: list[str]) -> tuple[list[str], list[str]]:
    """A positional list's ``key=value`` items that name a field of ``cls`` (and are not files) are settings."""
    names = {f.name for f in dataclasses.fields(cls)}
    kept, settings = [], []
    for v in values:
        key = v.split("=", 1)[0]
        (settings if "=" in v and key in names and not Path(v).exists() else kept).append(v)
    return kept, settings


def config_from_args(args: argparse.Namespace, cls=None):
    """The verb's config from its parsed flags, then the ``key=value`` settings given after them (each checked as
    its flag is; an unknown key is one line with a suggestion)."""
    cls = cls or args.config_class
    hints = _hints(cls)
    data = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    overrides = list(getattr(args, "overrides", []) or [])
    for f in dataclasses.fields(cls):  # an nargs="+" positional swallows key=value items: take them back
        if f.metadata.get("nargs") and isinstance(data[f.name], list):
            data[f.name], more = _split_settings(cls, data[f.name])
            overrides += more
    for item in overrides:
        key, _, raw = item.partition("=")
        key = key.strip()
        field = next((f for f in dataclasses.fields(cls) if f.name == key), None)
        if field is None:
            from_dict(cls, {key: raw})  # raises the one line with its "did you mean"
        kind, _ = _base(hints[key])
        try:
            if kind is bool:
                if raw.lower() not in ("true", "false"):
                    raise argparse.ArgumentTypeError(f"expected true or false, got {raw!r}")
                value = raw.lower() == "true"
            elif raw.lower() in ("null", "none", "") and type(None) in typing.get_args(hints[key]):
                value = None
            elif "check" in field.metadata:
                value = getattr(checks, field.metadata["check"])(raw)
            else:
                value = float(raw) if kind is float else int(raw) if kind is int else raw
        except (argparse.ArgumentTypeError, ValueError) as err:
            raise ConfigError(f"command line: {key}={raw}: {err}") from None
        data[key] = value
    return from_dict(cls, data, where="")  # coerces lists to the schema's tuples
