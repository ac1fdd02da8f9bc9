"""Package the zoo: copy each trained model into kdmark/zoo/, export its ONNX file, measure it against dlib in one
process (held-out 300-W faces, dlib's detector boxes for both; and ground-truth boxes), and write ``models.json``
and each model card. The last step of scripts/build_zoo.sh; re-running it re-measures.

    python scripts/zoo_package.py [--runs 200] [--only kdmark-68-s]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdmark.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from kdmark.data import read_dataset  # noqa: E402
from kdmark.data.crops import sample_crops  # noqa: E402
from kdmark.data.dataset import split_by_photo  # noqa: E402
from kdmark.deploy.bench import bench  # noqa: E402
from kdmark.deploy.export import export_onnx, quantize_int8  # noqa: E402
from kdmark.io import atomic_write_text  # noqa: E402
from kdmark.jobs.evaluate import evaluate  # noqa: E402
from kdmark.zoo import DEFAULT, sha256_of  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "300w"
ZOO = ROOT / "kdmark" / "zoo"
PSEUDO_V2 = ("the 15,433 unlabelled photos of the shared data (every face BlazeFace finds), pseudo-labelled by "
             "dlib's 68-point model, MediaPipe's Face Mesh mapped to 68 points and kdmark-68-teacher, fused per "
             "landmark (`fusion: hand`) with each point weighted by the teachers' agreement (kdmark.data.pseudo)")
MODELS = {  # name: where its trained weights are, whether it ships ONNX files, recipe, summary, training data
    "kdmark-68-s": {
        "source": "runs/campaign/s4/best.ckpt", "onnx": True,
        "recipe": "recipes/zoo/kdmark-68-s-v4.yaml",
        "summary": "small student: the campaign teacher pruned by half, an offset head (stride-8 heatmap + "
                   "offsets), 120 px",
        "data": PSEUDO_V2,
        "note": "Zoo campaign stretch 10 (BENCHMARKS.md, \"The zoo campaign\"): kdmark-68-s v2 (22 epochs, a "
                "stride-4 heatmap head at 96 px, flat at 3.886%) regrown with a PIPNet-style offset head at 120 px "
                "(the same MACs) and distilled 16 more epochs from teacher v3, run once per face (`kd.cached`)."},
    "kdmark-68-m": {
        "source": "runs/campaign/m/best.ckpt", "onnx": True, "recipe": "recipes/zoo/kdmark-68-m-v2.yaml",
        "summary": "medium student: the campaign teacher pruned by 30%, distilled, 128 px", "data": PSEUDO_V2,
        "note": "Zoo campaign stretches 4 and 5 (BENCHMARKS.md, \"The zoo campaign\"): all 20 cosine epochs, 351,360 "
                "images, the teacher run once per face (`kd.cached=true`); flat at 3.575% over its last 6 epochs."},
    "kdmark-68-teacher": {
        "source": "models/campaign/kdmark-68-teacher-v3.state.ckpt", "onnx": False,
        "recipe": "recipes/zoo/kdmark-68-teacher-v3.yaml",
        "summary": "the teacher: ImageNet MobileNetV2, labelled + pseudo-labelled faces, 192 px", "data": PSEUDO_V2,
        "note": "Zoo campaign stretches 1 and 6-8 (BENCHMARKS.md, \"The zoo campaign\"): 14 epochs at 128 px from the "
                "first kdmark-68-teacher (245,952 images, 3.468%), then 10 at 192 px (175,680 images, 3.338%); "
                "the end of its cosine. It sees a student's crop resized to 192 px when it distils one."},
}


def machine() -> str:
    """The CPU the latencies were measured on, in a few words."""
    import platform

    from kdmark.runtime import int8_is_fast

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {'with' if int8_is_fast() else 'without'} 8-bit dot-product instructions"


def calibration_crops(card: dict, n: int = 64) -> np.ndarray:
    """Crops of ``n`` training faces (never the held-out ones) around their landmark boxes, for INT8."""
    train, _ = split_by_photo(read_dataset(DATA, split="train"), 0.1)
    picked = train[:: max(1, len(train) // n)][:n]
    return sample_crops(picked, card, [s.landmark_box() for s in picked])[0].astype(np.float32)


def package(name: str, runs: int) -> dict:
    spec = MODELS[name]
    model, payload = load_checkpoint(ROOT / spec["source"])
    config = payload.get("config", {})
    half = copy.deepcopy(model).half()  # weights stored in float16 (half the size); loading casts them back
    ckpt = save_checkpoint(ZOO / f"{name}.ckpt", half, config,  # weights, card and config only: no train state
                           {k: v for k, v in payload.get("metrics", {}).items() if "val" in k or "epoch" in k})
    model, _ = load_checkpoint(ckpt)  # what ships: everything below measures and exports these weights
    report = bench(ckpt, data=DATA, split="train", heldout=0.1, vs=("dlib",), runs=runs, max_faces=500)
    gt = evaluate(ckpt, DATA, split="train", heldout=0.1, out_dir=ROOT / "runs" / "zoo" / f"eval-{name}",
                  progress=False).metrics
    entry = {"checkpoint": ckpt.name, "onnx": None, "onnx_int8": None, "summary": spec["summary"],
             "recipe": spec["recipe"], "data": spec["data"], "note": spec["note"],
             "scheme": model.card["scheme"], "input_size": model.card["input_size"], "params": report.params,
             "macs": report.macs, "nme": gt.nme, "fr": gt.fr, "auc": gt.auc,
             "vs_dlib": {"faces": report.accuracy["torch"]["faces"],
                         "nme": {k: v["nme"] for k, v in report.accuracy.items()},
                         "latency_ms_1t": {k.removesuffix(" 1t"): v["p50"] for k, v in report.latency.items()
                                           if k.endswith(" 1t")},
                         "latency_ms_2t": {k.removesuffix(" 2t"): v["p50"] for k, v in report.latency.items()
                                           if k.endswith(" 2t")}},
             "sizes": report.sizes}
    lat = entry["vs_dlib"]["latency_ms_1t"]
    files = [ckpt]
    entry["size_bytes"], entry["latency_ms"] = ckpt.stat().st_size, lat["torch-eager"]
    if spec["onnx"]:  # both files ship; Predictor runs the INT8 one where this CPU makes it faster (runtime.py)
        fp32 = export_onnx(ckpt, ZOO / f"{name}.onnx").path
        int8 = quantize_int8(fp32, ZOO / f"{name}.int8.onnx", calibration_crops(model.card))
        files += [fp32, int8]
        entry["onnx"], entry["onnx_int8"] = fp32.name, int8.name
        entry["size_bytes"], entry["latency_ms"] = fp32.stat().st_size, lat["onnx-fp32"]
        entry["size_bytes_int8"], entry["latency_ms_int8"] = int8.stat().st_size, lat["onnx-int8"]
    entry["sha256"] = {p.name: sha256_of(p) for p in files}
    entry["machine"] = machine()
    write_card(name, entry, payload)
    print(f"{name}: NME {gt.nme:.3%} (GT boxes), vs dlib " + ", ".join(
        f"{k} {v:.3%}" for k, v in entry["vs_dlib"]["nme"].items()) + "; 1t ms " + ", ".join(
        f"{k} {v:.2f}" for k, v in lat.items()))
    (ROOT / "runs" / "zoo" / f"{name}.bench.txt").write_text("\n".join(report.lines()) + "\n")
    return entry


TERMS = ("**Licence terms: non-commercial research only.** The weights were trained on the 300-W faces "
         "(iBUG's terms: research, non-commercial) and on photos labelled by dlib's 68-point model (trained on "
         "iBUG 300-W, same terms) and MediaPipe's Face Mesh (Apache-2.0); the backbone started from torchvision's "
         "ImageNet MobileNetV2 weights (ImageNet's research terms). kdmark's code is Apache-2.0; these weights "
         "inherit the most restrictive of their sources' terms.")


def verdict(e: dict) -> str:
    """The plain reading of the table: where the model stands against dlib on accuracy and speed."""
    vs, lat1, lat2 = e["vs_dlib"]["nme"], e["vs_dlib"]["latency_ms_1t"], e["vs_dlib"]["latency_ms_2t"]
    ours, dlib = vs.get("onnx-fp32", vs["torch"]), vs["dlib-68"]
    acc = (f"more accurate than dlib here ({ours:.2%} vs {dlib:.2%})" if ours < dlib else
           f"**less accurate than dlib on these faces** ({ours:.2%} vs {dlib:.2%} NME; dlib trained on them)")
    if not e.get("onnx"):
        return f"Reading: {acc}; a teacher, run on PyTorch ({lat1['torch-eager']:.2f} ms a face on one thread). "
    fast = min(("onnx-fp32", "onnx-int8"), key=lambda k: lat1[k])
    speed = (f"{lat1['onnx-fp32']:.2f} ms a face on one thread in FP32 and {lat1['onnx-int8']:.2f} ms in INT8 "
             f"({lat2[fast]:.2f} ms on two threads), against dlib's {lat1['dlib-68']:.2f} ms (single-threaded)")
    return f"Reading: {acc}; {speed}."


def write_card(name: str, e: dict, payload: dict) -> None:
    vs = e["vs_dlib"]
    lat1, lat2 = vs["latency_ms_1t"], vs["latency_ms_2t"]
    def ms(table: dict, k: str) -> str:
        v = table.get("torch-eager" if k == "torch" else k, table.get(k))
        return f"{v:.2f}" if v is not None else "-"

    rows = "\n".join(f"| {k} | {vs['nme'][k]:.3%} | {ms(lat1, k)} | {ms(lat2, k)} |" for k in vs["nme"])
    files = "\n".join(f"- `{f}`: {(ZOO / f).stat().st_size / 1e6:.2f} MB, sha256 `{h}`" for f, h in e["sha256"].items())
    cfg = payload.get("config", {})
    stride = cfg.get("model", {}).get("heatmap_stride")
    head = cfg.get("model", {}).get("head", "heatmap")
    pruned = " pruned (channel spec in the checkpoint)" if payload.get("channel_spec") else ""
    if e.get("onnx_int8"):
        runs = (f"`kdmark predict` and `kdmark.Predictor` run `{e['onnx_int8']}` ({e['size_bytes_int8'] / 1e6:.2f} "
                f"MB) on CPUs with 8-bit dot-product instructions (x86 VNNI or AMX, Arm dot product: "
                f"`kdmark.runtime.int8_is_fast()`), where it is the faster file, and `{e['onnx']}` "
                f"({e['size_bytes'] / 1e6:.2f} MB) elsewhere; `--precision fp32|int8` chooses. "
                f"`kdmark export {name} --web DIR` gives the page the INT8 file (the smaller download).")
    else:
        runs = f"`kdmark predict --model {name}` runs `{e['checkpoint']}` on PyTorch ({e['size_bytes'] / 1e6:.2f} MB)."
    text = f"""# {name}

{e['summary'][0].upper() + e['summary'][1:]}. A 68-point (iBUG / 300-W) facial-landmark model; use it by name
anywhere kdmark takes a model: `kdmark predict{'' if name == DEFAULT else f' --model {name}'} photo.jpg`,
`kdmark.Predictor("{name}")`, `teachers=[{name}]`, `init_from={name}`, `kdmark bench {name}`.

{TERMS}

- Architecture: timm `{cfg.get('model', {}).get('backbone')}` backbone{pruned} with kdmark's {head} head
  (stride {stride}); {e['input_size']} x {e['input_size']} RGB crops of the landmark box enlarged by
  {cfg.get('data', {}).get('margin', 0.15):.0%} per side; {e['params'] / 1e6:.3f} M parameters, {e['macs'] / 1e6:.1f} M
  MACs. Weights stored in float16 (loaded as float32).
- Files:
{files}
- Recipe: `{e['recipe']}`. {e.get('note', '')}
- Training data: the 1094 training faces of kdmark's fixed split of the shared 300-W faces (AFW, HELEN, LFPW
  training images) and {e.get('data', 'unlabelled real photos pseudo-labelled by dlib + MediaPipe')}.

## Measured (this package's numbers; `kdmark bench {name} --data 300w --split train --heldout 0.1 --vs dlib`)

NME (inter-ocular) on the 119 faces kdmark's split holds out of the 300-W training images, with ground-truth
landmark boxes: **{e['nme']:.3%}** (FR@0.08 {e['fr']:.2%}, AUC@0.08 {e['auc']:.4f}).

Against dlib's 68-point shape predictor on the {vs['faces']} held-out faces dlib's HOG detector finds, both given the
same detector box (dlib was trained on these faces: a hard bar); latency is batch 1, one process, p50 ms, on the
machine that packaged it ({e.get('machine', 'not recorded')}):

| model | NME | ms 1 thread | ms 2 threads |
|---|---|---|---|
{rows}

{runs}

{verdict(e)}
"""
    atomic_write_text(ZOO / f"{name}.md", text)


README_START, README_END = "<!-- zoo table: made from kdmark/zoo/models.json", "<!-- end of zoo table -->"


def write_readme_table() -> None:
    """Replace the README's zoo table (between its two markers) with ``kdmark.zoo.markdown_table()``."""
    from kdmark import zoo

    zoo._index.cache_clear()
    readme = ROOT / "README.md"
    text = readme.read_text()
    start = text.index(README_START)
    start = text.index("\n", start) + 1
    end = text.index(README_END, start)
    atomic_write_text(readme, text[:start] + "\n".join(zoo.markdown_table()) + "\n" + text[end:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--only", default=None)
    ap.add_argument("--cards-only", action="store_true", help="rewrite the cards from models.json, measure nothing")
    ap.add_argument("--readme", action="store_true", help="rewrite the README's zoo table from models.json, "
                                                          "measure nothing")
    args = ap.parse_args()
    if args.readme:
        write_readme_table()
        return 0
    index_path = ZOO / "models.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    if args.cards_only:
        for name, entry in index.items():
            write_card(name, entry, load_checkpoint(ZOO / entry["checkpoint"])[1])
        return 0
    for name in MODELS:
        if (args.only and name != args.only) or not (ROOT / MODELS[name]["source"]).is_file():
            continue
        for old in ZOO.glob(f"{name}.*onnx"):
            old.unlink()
        index[name] = package(name, args.runs)
        ordered = {k: index[k] for k in MODELS if k in index}
        atomic_write_text(index_path, json.dumps(ordered, indent=1) + "\n")
    shutil.rmtree(ROOT / "runs" / "zoo" / "tmp", ignore_errors=True)
    write_readme_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
