"""Serve an exported web page on 127.0.0.1, and drive it in headless Chromium (tests and benchmarks).

    python -m kdmark.deploy.web.serve site/ [--port 8000] [--isolate]

``--isolate`` sends the two headers that make the page cross-origin isolated, so onnxruntime-web may use two
threads; any static server works without them (one thread).

The server listens on 127.0.0.1 only, answers only requests whose ``Host`` is this machine (a web page elsewhere
cannot reach it by DNS rebinding), serves files inside the folder only (a symlink out of it is not followed) and
lists no folders.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import shutil
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from kdmark.errors import ExportError

__all__ = ["serve", "chromium_path", "launch_chromium", "write_y4m"]

ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    isolate = False
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                      ".js": "text/javascript", ".onnx": "application/octet-stream"}

    def end_headers(self):
        if self.isolate:
            for k, v in ISOLATION.items():
                self.send_header(k, v)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):  # quiet: tests and benchmarks read the page, not the access log
        pass

    def send_head(self):
        port = self.server.server_port
        host = (self.headers.get("Host") or "").lower()
        if host not in {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}:
            self.send_error(403, "this server answers only requests made to 127.0.0.1 or localhost")
            return None
        path = Path(self.translate_path(self.path))
        root = Path(self.directory).resolve()
        try:
            inside = os.path.commonpath([root, path.resolve()]) == str(root)
        except (OSError, ValueError):
            inside = False
        if not inside:  # a symlink (or anything else) leading out of the folder
            self.send_error(404, "File not found")
            return None
        return super().send_head()

    def list_directory(self, path):
        self.send_error(404, "File not found")  # no folder listings: only the page's own files are served
        return None


@contextmanager
def serve(folder: str | Path, port: int = 0, isolate: bool = False):
    """Yield the base URL (``http://127.0.0.1:PORT/``) of a server for ``folder``, stopped on exit."""
    if not Path(folder).is_dir():
        raise ExportError(f"{folder}: no such folder to serve (make one with `kdmark export MODEL --web {folder}`)")
    handler = type("Handler", (_Handler,), {"isolate": isolate})
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                 functools.partial(handler, directory=str(folder)))
    except OSError as err:
        raise ExportError(f"127.0.0.1:{port}: cannot listen there ({err.strerror or err}); choose another --port "
                          "(0: any free one)") from None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def chromium_path() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def launch_chromium(playwright, fake_video: str | Path | None = None):
    """Headless system Chromium through Playwright; ``fake_video`` (a .y4m) becomes the webcam."""
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if fake_video is not None:
        args.append(f"--use-file-for-fake-video-capture={fake_video}")
    return playwright.chromium.launch(executable_path=chromium_path(), args=args, headless=True)


def write_y4m(path: str | Path, frames) -> Path:
    """Write RGB uint8 frames (each (H, W, 3), H and W even) as a 4:2:0 YUV4MPEG2 video (full-range BT.601),
    the format Chromium's fake camera reads."""
    import numpy as np

    frames = [np.asarray(f, np.float64) for f in frames]
    h, w = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for f in frames:
            r, g, b = f[..., 0], f[..., 1], f[..., 2]
            y = 0.299 * r + 0.587 * g + 0.114 * b
            u = (b - y) * 0.564 + 128
            v = (r - y) * 0.713 + 128
            sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
            out.write(b"FRAME\n")
            for plane in (y, sub(u), sub(v)):
                out.write(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())
    return Path(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kdmark.deploy.web.serve", description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--isolate", action="store_true", help="send COOP/COEP headers (two wasm threads)")
    args = ap.parse_args(argv)
    try:
        with serve(args.folder, args.port, args.isolate) as url:
            print(f"serving {args.folder} at {url} (Ctrl-C stops)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    except ExportError as err:
        print(f"kdmark: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
