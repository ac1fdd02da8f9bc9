"""The ``kdmark`` command. Each verb lives in one module here (``data``, ``training``, ``scoring``, ``deploy``) that
registers its sub-parser and calls one API function; nothing heavy is imported until a verb runs, so
``kdmark --help`` and ``--version`` import neither torch nor timm.

Bad input never produces a traceback here: every error kdmark raises about data, models or configs is one line
on stderr naming the file and the problem, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys

from kdmark import __version__
from kdmark.cli import data, deploy, scoring, training
from kdmark.errors import USER_ERRORS

__all__ = ["main", "build_parser", "parse"]

VERB_GROUPS = (data, training, scoring, deploy)  # each module's register(verbs) adds its verbs


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-parser per verb, registered by the verb's own module."""
    parser = argparse.ArgumentParser(prog="kdmark", description="Small, fast facial-landmark detectors by "
                                     "knowledge distillation.")
    parser.add_argument("--version", action="version", version=f"kdmark {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for group in VERB_GROUPS:
        group.register(verbs)
    return parser


def _one_line(err: BaseException) -> str:
    """The message of ``err`` on one line; for a re-raised worker error, the original error's own message."""
    text = str(err).strip()
    if "\n" not in text:
        return text
    last = [ln for ln in text.splitlines() if ln.strip()][-1].strip()
    return last.split("Error: ", 1)[1] if "Error: " in last else last


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line; ``key=value`` settings may follow the options (``--augment recipe.yaml
    augment.rotation=45``, ``eval M --data D threshold=0.1``) and land in ``args.overrides``."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process (tests call this) and return the exit status."""
    args = parse(argv)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"kdmark: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a DataLoader worker re-raises our errors as RuntimeError with a traceback inside
        names = [cls.__name__ for cls in USER_ERRORS]
        if not any(f"{name}:" in str(err) for name in names):
            raise
        print(f"kdmark: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdmark: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # ``kdmark models | head``: the reader left; say nothing, as Unix tools do
        import contextlib
        import os

        with contextlib.suppress(OSError, ValueError, AttributeError):  # stdout may not be a file (a test's capture)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit does not raise again
        return 141
    except OSError as err:  # disk full, read-only folder, a file where a folder should be: one line, no traceback
        import errno

        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EEXIST,
                             errno.ENOTDIR, errno.EISDIR):
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"kdmark: error: {where}{err.strerror or err} (earlier outputs are untouched)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
