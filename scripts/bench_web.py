"""Milliseconds per frame of the exported web page in headless Chromium (onnxruntime-web, wasm, 1 and 2 threads)
beside onnxruntime-python on the same frame: BlazeFace plus the landmark model, in one process.

    python scripts/bench_web.py [MODEL] --photo ../shared/data/photos/afw_1130084326.jpg [--runs 30]

The frame is a 640 x 480 cut of the photo (a webcam-sized frame with its faces). Two threads in the browser need a
cross-origin-isolated page, so that run is served with COOP/COEP headers (kdmark.deploy.web.serve --isolate). A
screenshot of the page with the landmarks drawn is written to runs/web/page.png.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from kdmark.deploy.detectors import BlazeFaceDetector
from kdmark.deploy.predict import Predictor
from kdmark.deploy.web import export_web
from kdmark.deploy.web.serve import launch_chromium, serve


def python_ms(model: str, frame: np.ndarray, threads: int, tiles: int, runs: int) -> tuple[float, int]:
    p = Predictor(model, threads=threads, detector=BlazeFaceDetector(tiles=tiles, threads=threads))
    faces = p.predict(frame)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p.predict(frame)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3), len(faces)


def browser_ms(site: Path, png: Path, threads: int, tiles: int, runs: int, shot: Path | None) -> tuple[float, int]:
    from playwright.sync_api import sync_playwright

    with serve(site, isolate=threads > 1) as url, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page()
        page.goto(f"{url}index.html?threads={threads}")
        page.wait_for_function("window.kdmark && ['ready', 'error'].includes(kdmark.state)", timeout=60_000)
        assert page.evaluate("kdmark.threads") == threads, "the page did not get the threads asked for"
        page.set_input_files("#file", str(png))
        page.wait_for_function("kdmark.state === 'photo-done'", timeout=60_000)
        faces = len(page.evaluate("kdmark.photo.faces"))
        ms = page.evaluate(f"kdmark.time({runs}, {tiles})")
        if shot is not None:
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
        browser.close()
    return float(ms), faces


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="kdmark-68-s")
    ap.add_argument("--photo", default="../shared/data/photos/afw_1130084326.jpg")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    img = Image.open(args.photo).convert("RGB").resize((1024, 768), Image.BILINEAR)
    frame = np.asarray(img)[60:540, 120:760].copy()  # 640 x 480, two of its faces
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "frame.png"
        Image.fromarray(frame).save(png)
        site = export_web(args.model, Path(tmp) / "site")
        print(f"{args.model}, a 640 x 480 frame; median of {args.runs} runs, detector + landmarks for every face")
        print(f"{'runtime':<34} {'tiles':>5} {'faces':>5} {'ms/frame':>9}")
        for tiles in (0, 1):
            for threads in (1, 2):
                ms, n = python_ms(args.model, frame, threads, tiles, args.runs)
                name = f"onnxruntime-python, {threads} thread(s)"
                print(f"{name:<34} {tiles:5d} {n:5d} {ms:9.2f}", flush=True)
                shot = Path("runs/web/page.png") if (tiles, threads) == (1, 1) else None
                ms, n = browser_ms(site, png, threads, tiles, args.runs, shot)
                name = f"Chromium wasm, {threads} thread(s)"
                print(f"{name:<34} {tiles:5d} {n:5d} {ms:9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
