#!/usr/bin/env bash
# Render a kdmark report in headless Chromium: prints "images loaded/total" and writes a screenshot beside it.
#   scripts/check_report.sh runs/default/report.html
set -euo pipefail
report="$(realpath "$1")"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome)"
profile="$(mktemp -d)"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync "--user-data-dir=$profile" --virtual-time-budget=5000)
"$browser" "${flags[@]}" --dump-dom "file://$report" 2>/dev/null | grep -o 'data-images="[0-9]*/[0-9]*"'
"$browser" "${flags[@]}" --window-size=1200,3000 --screenshot="${report%.html}.png" "file://$report" 2>/dev/null
rm -rf "$profile"
