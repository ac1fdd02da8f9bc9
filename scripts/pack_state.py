"""Pack a run's state file (RUN/last.ckpt) small enough to commit or carry to another machine, then continue the
run there with ``resume_from=PACKED`` (kdmark.engine.loop.pack_state says what is rounded).

    python scripts/pack_state.py runs/campaign/teacher/last.ckpt models/campaign/teacher.state.ckpt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kdmark.engine.loop import pack_state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    args = ap.parse_args()
    out = pack_state(args.src, args.dst)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, from {Path(args.src).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
