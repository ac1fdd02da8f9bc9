#!/usr/bin/env bash
# Build kdmark's wheel, install it (no editable link to this tree) into a fresh virtualenv that borrows the
# dependencies installed where `python` runs (a virtualenv or not), and run `kdmark` from a folder outside the source
# tree: --version, run --help, models, predict with the default zoo model, and a one-stage pipeline that uses a
# shipped recipe.
#   bash scripts/check_wheel.sh [PHOTO]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
photo="${1:-$repo/../shared/data/photos/afw_1130084326.jpg}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m pip wheel --no-deps --no-build-isolation -q -w "$work/dist" "$repo"
# Borrow the active environment's packages (a virtualenv's own, not its base interpreter's, which is what
# --system-site-packages would give from inside a virtualenv): a .pth naming its site folders. Folders named in a
# .pth are not scanned for further .pth files, so an editable kdmark there stays out.
python -m venv "$work/venv"
own_site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
python -c 'import site, sysconfig; print("\n".join(dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()[k] for k in ("purelib", "platlib")])))' \
  > "$own_site/_kdmark_borrowed.pth"
"$work/venv/bin/pip" install -q --no-deps "$work"/dist/kdmark-*.whl
cd "$work"
export PYTHONNOUSERSITE=1
# the wheel, not this tree, must be what runs (an editable install of the tree may sit in the borrowed packages)
"$work/venv/bin/python" - <<'PY'
import importlib.util, sys
spec = importlib.util.find_spec("kdmark")
assert "/venv/" in spec.origin, f"kdmark imported from {spec.origin}, not the wheel"
PY
k="$work/venv/bin/kdmark"
"$k" --version
# the default pipeline `kdmark run` starts from is package data of the wheel
"$work/venv/bin/python" -c "from kdmark.config import packaged; p = packaged('pipelines', 'default.yaml'); \
assert p.is_file() and '/venv/' in str(p), p"
"$k" run --help > /dev/null
"$k" models
[[ -f "$photo" ]] && "$k" predict "$photo" --json out.json
cat > tiny.yaml <<'YAML'
name: tiny
out_dir: tiny_run
set: {data.root: data, data.train_split: train, data.val_split: test, data.input_size: 64, data.num_workers: 0,
      epochs: 1, max_steps: 2, batch_size: 8, progress: false, model.backbone: mobilenetv2_050,
      model.head_channels: 16}
stages:
  - {name: student, verb: train, recipe: recipes/300w_mbv2_heatmap.yaml}
YAML
"$k" data synth data --n 40 --size 64 > /dev/null
"$k" run tiny.yaml
test -f tiny_run/student/best.ckpt
echo "wheel OK: $(ls "$work"/dist)"
