"""Convert MediaPipe's BlazeFace short-range detector (.tflite, Apache-2.0) to the ONNX file kdmark vendors.

    python -m venv /tmp/t2o && /tmp/t2o/bin/pip install tflite2onnx onnxruntime ai-edge-litert
    /tmp/t2o/bin/python scripts/convert_blazeface.py ../shared/weights/mediapipe/face_detection_short_range.tflite

Writes kdmark/deploy/detectors/blazeface_short_range.onnx with its input's height and width symbolic (the graph is
fully convolutional: kdmark runs small photos at 96 px, blazeface.SMALL_INPUT) and checks it against the LiteRT
interpreter on random inputs (when ai-edge-litert is installed). ``--symbolic-only`` redoes only that last step on
the vendored file (no tflite2onnx needed). tflite2onnx runs in its own virtualenv: kdmark does not depend on it.
The full-range model (face_detection_full_range_sparse.tflite) uses TFLite's DENSIFY op, which tflite2onnx 0.4.1
cannot convert.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "kdmark" / "deploy" / "detectors" / "blazeface_short_range.onnx"


def symbolic_spatial(path: Path) -> None:
    """Make the input's height and width and the outputs' anchor count symbolic, and drop the converter's fixed
    intermediate shapes (onnxruntime infers them per run), so the file runs at any multiple of 16 px."""
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    for value, dims in [(v, (2, 3)) for v in model.graph.input] + [(v, (1,)) for v in model.graph.output]:
        for k in dims:
            d = value.type.tensor_type.shape.dim[k]
            d.ClearField("dim_value")
            d.dim_param = f"{value.name}_{'hw'[k - 2] if value in model.graph.input else 'anchors'}"
    onnx.checker.check_model(model)
    tmp = path.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)


def main(tflite: str) -> int:
    import onnxruntime as ort
    import tflite2onnx

    tflite2onnx.convert(tflite, str(OUT))
    symbolic_spatial(OUT)
    session = ort.InferenceSession(str(OUT), providers=["CPUExecutionProvider"])
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        print("ai-edge-litert not installed: output not checked against the .tflite")
    else:
        it = Interpreter(model_path=tflite)
        it.allocate_tensors()
        rng = np.random.default_rng(0)
        worst = 0.0
        for _ in range(8):
            x = rng.uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            ours = session.run(None, {session.get_inputs()[0].name: x.transpose(0, 3, 1, 2).copy()})
            for d, o in zip(it.get_output_details(), ours):
                worst = max(worst, float(np.abs(it.get_tensor(d["index"]) - o.reshape(d["shape"])).max()))
        print(f"max |ONNX - TFLite| over 8 random inputs: {worst:.2e}")
        if worst > 1e-3:
            print("conversion does not match the .tflite", file=sys.stderr)
            return 1
    print(f"{OUT} sha256 {hashlib.sha256(OUT.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    if "--symbolic-only" in sys.argv:
        symbolic_spatial(OUT)
        print(f"{OUT} sha256 {hashlib.sha256(OUT.read_bytes()).hexdigest()}")
        sys.exit(0)
    default = "../shared/weights/mediapipe/face_detection_short_range.tflite"
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else default))
