// kdmark in a web page: BlazeFace finds faces, a kdmark ONNX model places the landmarks, both on onnxruntime-web
// (wasm, loaded from ./ort/ beside this file: nothing is fetched from anywhere else). Every step mirrors kdmark's
// Python code so that the page's landmarks equal `kdmark predict`'s:
//   warp()            kdmark.data.transforms.warp_image (cv2.warpAffine: bilinear, zero border, rounded to uint8)
//   detect()          kdmark.deploy.detectors.blazeface (letterbox, anchors, decode, weighted NMS, tiles)
//   landmarkBox()     kdmark.deploy.detectors.landmark_box
//   cropMatrix()      kdmark.data.transforms.crop_matrix (Predictor._crop)
//   OneEuro, Tracker  kdmark.deploy.predict.OneEuroFilter and predict_video (re-detect every N frames, track by the
//                     raw landmarks' box, smooth each track)
import * as ort from "./ort/ort.wasm.min.js";

const here = (name) => new URL(name, import.meta.url).href;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- image resampling (cv2.warpAffine's bilinear)
function invertAffine([a, b, c, d, e, f]) {
  const det = a * e - b * d;
  const ia = e / det, ib = -b / det, id = -d / det, ie = a / det;
  return [ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f)];
}

// Resample RGBA `src` (w x h) through the 2x3 affine `m` (image -> output pixels) into a size x size planar
// float tensor: value = round(bilinear) * scale + offset, as uint8 warp then astype(float32) does in Python.
// OpenCV 5's warpAffine computes source coordinates and the interpolation in float32 (no 1/32-pixel snapping, as
// OpenCV 4 did); Math.fround does the same here, so the crops equal Python's to the last bit but for rare ties.
function warp(src, w, h, m, size, scale, offset, out, at = 0) {
  const f32 = Math.fround;
  const [a, b, c, d, e, f] = invertAffine(m).map(f32);
  const plane = size * size, row = 4 * w;
  const get = (xx, yy, ch) => (xx < 0 || xx >= w || yy < 0 || yy >= h ? 0 : src[yy * row + xx * 4 + ch]);
  for (let y = 0; y < size; y++) {
    const by = f32(b * y), ey = f32(e * y);
    for (let x = 0; x < size; x++) {
      const sx = f32(f32(f32(a * x) + by) + c), sy = f32(f32(f32(d * x) + ey) + f);
      const x0 = Math.floor(sx), y0 = Math.floor(sy), fx = f32(sx - x0), fy = f32(sy - y0);
      const inside = x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h, i = y0 * row + x0 * 4;
      let o = at + y * size + x;
      for (let ch = 0; ch < 3; ch++, o += plane) {
        let p00, p01, p10, p11;
        if (inside) {
          p00 = src[i + ch]; p01 = src[i + 4 + ch]; p10 = src[i + row + ch]; p11 = src[i + row + 4 + ch];
        } else {
          p00 = get(x0, y0, ch); p01 = get(x0 + 1, y0, ch); p10 = get(x0, y0 + 1, ch); p11 = get(x0 + 1, y0 + 1, ch);
        }
        const v1 = f32(p00 + f32(fx * (p01 - p00))), v2 = f32(p10 + f32(fx * (p11 - p10)));
        out[o] = Math.round(f32(v1 + f32(fy * f32(v2 - v1)))) * scale + offset;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- BlazeFace (kdmark/deploy/detectors/blazeface.py)
const DET = 128;
const ANCHORS = new Map();  // input side -> anchor centres in [0, 1] (blazeface.anchors)
function anchors(size) {
  if (!ANCHORS.has(size)) {
    const out = [];
    for (const [stride, perCell] of [[8, 2], [16, 6]]) {
      const n = size / stride;
      for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) for (let k = 0; k < perCell; k++) out.push([(x + 0.5) / n, (y + 0.5) / n]);
    }
    ANCHORS.set(size, out);
  }
  return ANCHORS.get(size);
}

// blazeface.input_size: small photos' whole-photo pass runs at small_input px, the smallest at tiny_input px.
function detInput(w, h, c) {
  const side = Math.max(w, h);
  return side <= c.tiny_max_side ? c.tiny_input : side <= c.small_max_side ? c.small_input : DET;
}

function letterboxMatrix(w, h, size = DET) {
  const s = size / Math.max(w, h);
  return [s, 0, (size - s * w) / 2, 0, s, (size - s * h) / 2];
}

function iou(a, b) {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy, union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

function decode(reg, logits, threshold, size) {
  const found = [], grid = anchors(size);
  for (let i = 0; i < grid.length; i++) {
    const score = 1 / (1 + Math.exp(-Math.min(100, Math.max(-100, logits[i]))));
    if (score < threshold) continue;
    const r = reg.subarray(i * 16, i * 16 + 16), ax = grid[i][0] * size, ay = grid[i][1] * size;
    const cx = r[0] + ax, cy = r[1] + ay;
    found.push({ box: [cx - r[2] / 2, cy - r[3] / 2, cx + r[2] / 2, cy + r[3] / 2], score });
  }
  return found;
}

function weightedNms(dets, thr) {
  const order = dets.map((d, i) => i).sort((i, j) => dets[j].score - dets[i].score || i - j);
  let remaining = order.map((i) => dets[i]);
  const out = [];
  while (remaining.length) {
    const top = remaining[0], group = [], rest = [];
    for (const d of remaining) (iou(top.box, d.box) > thr ? group : rest).push(d);
    const wsum = group.reduce((s, d) => s + d.score, 0);
    const box = [0, 1, 2, 3].map((k) => group.reduce((s, d) => s + d.box[k] * d.score, 0) / wsum);
    out.push({ box, score: top.score });
    remaining = rest;
  }
  return out;
}

function starts(length, side, overlap) {
  if (side >= length) return [(length - side) / 2];
  const n = Math.ceil((length - side) / (side * (1 - overlap))) + 1;
  return Array.from({ length: n }, (_, i) => (i * (length - side)) / (n - 1));
}

function levels(w, h, count, overlap) {
  const out = [];
  for (let k = 1; k <= count; k++) {
    const side = Math.max(w, h) / (k + 1) / (1 - overlap);
    for (const y0 of starts(h, side, overlap)) for (const x0 of starts(w, side, overlap)) out.push([x0, y0, side]);
  }
  return out;
}

// blazeface.tile_grid: no tiles on small photos; 2:1 windows, half over each other, on panoramas.
function tileGrid(w, h, count, c) {
  const long = Math.max(w, h), short = Math.min(w, h);
  if (long <= c.tile_min_side || count <= 0) return [];
  if (long <= c.tile_max_aspect * short) return levels(w, h, count, c.tile_overlap);
  const out = [];
  for (const start of starts(long, 2 * short, 0.5)) {
    const squares = [[0, -short / 2, 2 * short]].concat(levels(2 * short, short, count, c.tile_overlap));
    for (const [a, b, side] of squares) out.push(w >= h ? [start + a, b, side] : [b, start + a, side]);
  }
  return out;
}

// blazeface.inside_tile: clear of the tile's borders that lie inside the photo.
function insideTile(box, x0, y0, side, w, h, edgeFrac) {
  const edge = side * edgeFrac, eps = 1e-6;
  return (box[0] > x0 + edge || x0 <= eps) && (box[1] > y0 + edge || y0 <= eps)
    && (box[2] < x0 + side - edge || x0 + side >= w - eps) && (box[3] < y0 + side - edge || y0 + side >= h - eps);
}

class Detector {
  constructor(session, cfg) {
    this.session = session;
    this.cfg = cfg;
    this.inputs = new Map();  // input side -> its buffer
  }

  async pass(img, m, size = DET) {
    if (!this.inputs.has(size)) this.inputs.set(size, new Float32Array(3 * size * size));
    const input = this.inputs.get(size);
    warp(img.data, img.width, img.height, m, size, 1 / 127.5, -1, input);
    const feeds = { [this.session.inputNames[0]]: new ort.Tensor("float32", input, [1, 3, size, size]) };
    const out = await this.session.run(feeds);
    const s = m[0], tx = m[2], ty = m[5];
    return decode(out.regressors.data, out.classificators.data, Math.min(this.cfg.threshold, 0.5), size).map((d) => ({
      box: [(d.box[0] - tx) / s, (d.box[1] - ty) / s, (d.box[2] - tx) / s, (d.box[3] - ty) / s], score: d.score,
    }));
  }

  // Faces as {box: landmark box, raw: detector box, score}, best first (FaceDetector.__call__ in Python).
  async detect(img, tiles) {
    const c = this.cfg;
    const size = detInput(img.width, img.height, c);
    let found = await this.pass(img, letterboxMatrix(img.width, img.height, size), size);
    for (const [x0, y0, side] of tileGrid(img.width, img.height, tiles, c)) {
      const s = DET / side;
      const inTile = (await this.pass(img, [s, 0, -s * x0, 0, s, -s * y0])).filter((d) =>
        insideTile(d.box, x0, y0, side, img.width, img.height, c.tile_edge));
      found = found.concat(inTile);
    }
    return weightedNms(found, c.nms_iou)
      .map((d) => ({ raw: d.box, score: d.score, box: landmarkBox(d.box, c.to_landmark_box) }))
      .filter((d) => d.score >= c.threshold && d.box[2] - d.box[0] >= c.min_face)
      .sort((a, b) => b.score - a.score);
  }
}

function landmarkBox(raw, [dx, dy, s]) {
  const side = Math.max(raw[2] - raw[0], raw[3] - raw[1]);
  const cx = (raw[0] + raw[2]) / 2 + dx * side, cy = (raw[1] + raw[3]) / 2 + dy * side, half = (s * side) / 2;
  return [cx - half, cy - half, cx + half, cy + half];
}

// ---------------------------------------------------------------- landmarks (kdmark.deploy.predict.Predictor)
function cropMatrix(cx, cy, side, size) {
  const s = size / side, c = (size - 1) / 2;
  return [s, 0, c - s * cx, 0, s, c - s * cy];
}

class Landmarker {
  constructor(session, cfg) {
    this.session = session;
    this.cfg = cfg;
  }

  // [{landmarks: [[x, y], ...] image pixels, scores}] for each landmark box.
  async predict(img, boxes) {
    if (!boxes.length) return [];
    const { input_size: size, margin, num_points: k } = this.cfg;
    const plane = 3 * size * size, batch = new Float32Array(boxes.length * plane), mats = [];
    boxes.forEach(([x0, y0, x1, y1], i) => {
      const side = Math.max(x1 - x0, y1 - y0, 1) * (1 + 2 * margin);
      const m = cropMatrix((x0 + x1) / 2, (y0 + y1) / 2, side, size);
      warp(img.data, img.width, img.height, m, size, 1 / 255, 0, batch, i * plane);
      mats.push(m);
    });
    const out = await this.session.run({ image: new ort.Tensor("float32", batch, [boxes.length, 3, size, size]) },
      ["points", "scores"]);
    const pts = out.points.data, sc = out.scores.data;
    return boxes.map((box, i) => {
      const s = mats[i][0], tx = mats[i][2], ty = mats[i][5], landmarks = [];
      for (let j = 0; j < k; j++) landmarks.push([(pts[(i * k + j) * 2] - tx) / s, (pts[(i * k + j) * 2 + 1] - ty) / s]);
      return { box, landmarks, scores: Array.from(sc.subarray(i * k, (i + 1) * k)) };
    });
  }
}

// ---------------------------------------------------------------- video: tracking and One-Euro smoothing
class OneEuro {
  constructor(fps, minCutoff, beta, dCutoff = 1) {
    Object.assign(this, { dt: 1 / fps, minCutoff, beta, dCutoff, x: null, dx: null });
  }

  alpha(cutoff) {
    return 1 / (1 + 1 / (2 * Math.PI * cutoff) / this.dt);
  }

  filter(x) {
    if (this.x === null) {
      this.x = x.slice();
      this.dx = x.map(() => 0);
      return x.slice();
    }
    const ad = this.alpha(this.dCutoff);
    this.dx = x.map((v, i) => this.dx[i] + ad * ((v - this.x[i]) / this.dt - this.dx[i]));
    this.x = x.map((v, i) => this.x[i] + this.alpha(this.minCutoff + this.beta * Math.abs(this.dx[i])) * (v - this.x[i]));
    return this.x.slice();
  }
}

class Tracker {
  constructor(app, fps) {
    Object.assign(this, { app, fps, tracks: [], index: 0, nextId: 0 });
  }

  match(detected) {
    const used = new Set(), matched = [];
    for (const t of this.tracks) {
      let best = -1, bestIou = 0.3;
      detected.forEach((d, i) => {
        const v = used.has(i) ? 0 : iou(t.box, d.box);
        if (v > bestIou) [best, bestIou] = [i, v];
      });
      if (best >= 0) {
        used.add(best);
        matched.push({ box: detected[best].box, filter: t.filter, score: detected[best].score, id: t.id });
      }
    }
    const [minCutoff, beta] = this.app.cfg.one_euro;
    const fresh = detected.filter((_, i) => !used.has(i))
      .map((d) => ({ box: d.box, score: d.score, filter: new OneEuro(this.fps, minCutoff, beta), id: this.nextId++ }));
    this.tracks = matched.concat(fresh);
  }

  async step(img, smooth = true) {
    const app = this.app;
    const t0 = performance.now();
    if (this.index % app.cfg.redetect_every === 0 || !this.tracks.length) this.match(await app.detector.detect(img, app.cfg.detector.tiles));
    const t1 = performance.now();
    const faces = await app.landmarker.predict(img, this.tracks.map((t) => t.box));
    faces.forEach((f, i) => {
      const t = this.tracks[i], xs = f.landmarks.map((p) => p[0]), ys = f.landmarks.map((p) => p[1]);
      t.box = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
      f.raw_landmarks = f.landmarks;
      f.detector_score = t.score;
      f.track_id = t.id;
      if (smooth) {
        const flat = t.filter.filter(f.landmarks.flat());
        f.landmarks = f.landmarks.map((_, j) => [flat[2 * j], flat[2 * j + 1]]);
      }
    });
    this.index++;
    return { faces, ms: { detector: t1 - t0, landmarks: performance.now() - t1, total: performance.now() - t0 } };
  }
}

// ---------------------------------------------------------------- the page
// What kdmark.draw draws in Python: a blue box, green dots where the model is sure of a point (score >= 0.3), red
// where it is not; dots scale with each face. The canvas takes the source's own pixel size (a <video>'s is
// videoWidth x videoHeight: its width attribute is 0), and a small photo is shown at least DISPLAY_MIN px wide.
const DISPLAY_MIN = 480, SURE = 0.3;
function sourceSize(source) {
  return [source.videoWidth || source.naturalWidth || source.width, source.videoHeight || source.naturalHeight || source.height];
}

function draw(canvas, source, faces) {
  const ctx = canvas.getContext("2d");
  const [w, h] = sourceSize(source);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  canvas.style.width = `${Math.max(w, DISPLAY_MIN)}px`;
  ctx.drawImage(source, 0, 0, w, h);
  for (const f of faces) {
    const side = Math.max(f.box[2] - f.box[0], f.box[3] - f.box[1], 1);
    const r = Math.max(1.2, side / 90);
    ctx.strokeStyle = "rgb(0, 200, 255)";
    ctx.lineWidth = Math.max(1, Math.round(side / 150));
    ctx.strokeRect(f.box[0] + 0.5, f.box[1] + 0.5, f.box[2] - f.box[0], f.box[3] - f.box[1]);
    f.landmarks.forEach(([x, y], j) => {  // kdmark's points are 0-based pixel centres: pixel i spans [i, i + 1)
      ctx.fillStyle = !f.scores || f.scores[j] >= SURE ? "rgb(0, 200, 0)" : "rgb(230, 0, 0)";
      ctx.beginPath();
      ctx.arc(x + 0.5, y + 0.5, r, 0, 2 * Math.PI);
      ctx.fill();
    });
  }
}

// The results as `kdmark predict --json` writes them: {name: [faces]} for a photo, {name: [{frame, faces}]} for
// the camera (the frames seen since it started, up to the last KEEP_FRAMES).
const KEEP_FRAMES = 1000;
function asJSON(face) {
  const r = (v, d) => Math.round(v * 10 ** d) / 10 ** d;
  const out = { box: face.box.map((v) => r(v, 2)), landmarks: face.landmarks.map(([x, y]) => [r(x, 3), r(y, 3)]),
    scores: face.scores.map((v) => r(v, 4)) };
  if (face.detector_score != null) out.detector_score = r(face.detector_score, 4);
  if (face.track_id != null) out.track_id = face.track_id;
  return out;
}

function download(name, obj) {
  const url = URL.createObjectURL(new Blob([JSON.stringify(obj, null, 1)], { type: "application/json" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function pixels(source) {
  const c = document.createElement("canvas");
  [c.width, c.height] = sourceSize(source);
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0);
  return ctx.getImageData(0, 0, c.width, c.height);
}

function imageDataURL(img) {
  const c = document.createElement("canvas");
  c.width = img.width;
  c.height = img.height;
  c.getContext("2d").putImageData(img, 0, 0);
  return c.toDataURL("image/png");
}

function show(result, label) {
  const ms = result.ms;
  $("status").textContent = `${label}: ${result.faces.length} face(s), ${ms.total.toFixed(1)} ms ` +
    `(detector ${ms.detector.toFixed(1)} ms, landmarks ${ms.landmarks.toFixed(1)} ms)`;
}

const app = {
  state: "loading", cfg: null, detector: null, landmarker: null, photo: null, video: null, lastFrame: null,
  threads: 1,

  async load() {
    this.cfg = await (await fetch(here("config.json"))).json();
    ort.env.wasm.wasmPaths = { mjs: here("ort/ort-wasm-simd-threaded.js"), wasm: here("ort/ort-wasm-simd-threaded.wasm") };
    const auto = self.crossOriginIsolated ? Math.min(2, navigator.hardwareConcurrency || 1) : 1;
    this.threads = ort.env.wasm.numThreads = params.has("threads") ? Number(params.get("threads")) : auto;
    const opts = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const [det, lm] = await Promise.all([
      ort.InferenceSession.create(here(this.cfg.detector.file), opts),
      ort.InferenceSession.create(here(this.cfg.model.file), opts)]);
    this.detector = new Detector(det, this.cfg.detector);
    this.landmarker = new Landmarker(lm, this.cfg.model);
    const blank = { data: new Uint8ClampedArray(4 * DET * DET), width: DET, height: DET };
    await this.detector.pass(blank, letterboxMatrix(DET, DET));  // warm up: the first run of a session is slow,
    await this.landmarker.predict(blank, [[32, 32, 96, 96]]);     // and the times shown are per photo or frame
    $("model").textContent = `${this.cfg.model.name} (${this.cfg.model.num_points} points, ${this.cfg.model.input_size} px), ` +
      `BlazeFace, onnxruntime-web ${this.cfg.ort_web_version}${this.cfg.ort_web_verified === false ? " (unverified build)" : ""} wasm, ` +
      `${this.threads} thread(s)`;
    this.state = "ready";
  },

  // Landmarks for one photo (ImageData): what `kdmark predict` writes for it.
  async predictPhoto(img) {
    const t0 = performance.now();
    const found = await this.detector.detect(img, this.cfg.detector.tiles);
    const t1 = performance.now();
    const faces = await this.landmarker.predict(img, found.map((d) => d.box));
    faces.forEach((f, i) => { f.detector_score = found[i].score; });
    return { faces, ms: { detector: t1 - t0, landmarks: performance.now() - t1, total: performance.now() - t0 } };
  },

  async openPhoto(file) {
    this.stopCamera();
    this.state = "photo-busy";
    const bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", imageOrientation: "from-image" });
    const img = pixels(bitmap);
    const result = await this.predictPhoto(img);
    this.photo = { name: file.name, width: img.width, height: img.height, ...result };
    this.lastFrame = img;
    draw($("view"), bitmap, result.faces);
    show(result, file.name);
    $("download").disabled = false;
    this.state = "photo-done";
  },

  async startCamera() {
    this.stopCamera();
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    const video = $("video");
    video.srcObject = stream;
    await video.play();
    const fps = stream.getVideoTracks()[0].getSettings().frameRate || 30;
    const tracker = new Tracker(this, fps);
    const run = { frames: 0, fps, faces: [], ms: null, stream, first: null, msHistory: [], running: true, log: [] };
    this.video = run;
    this.photo = null;
    $("camera").textContent = "Stop the camera";
    $("download").disabled = false;
    const loop = async () => {
      if (!run.running) return;
      const img = pixels(video);
      const result = await tracker.step(img, !params.has("nosmooth"));
      if (!run.running) return;
      this.lastFrame = img;
      if (run.frames === 0) run.first = { png: imageDataURL(img), faces: result.faces };
      run.log.push({ frame: run.frames, faces: result.faces.map(asJSON) });
      if (run.log.length > KEEP_FRAMES) run.log.shift();
      Object.assign(run, { frames: run.frames + 1, faces: result.faces, ms: result.ms });
      run.msHistory.push(result.ms.total);
      draw($("view"), video, result.faces);
      show(result, `camera frame ${run.frames}`);
      this.state = "video";
      video.requestVideoFrameCallback(loop);
    };
    video.requestVideoFrameCallback(loop);
  },

  stopCamera() {
    if (!this.video || !this.video.running) return;
    this.video.running = false;
    this.video.stream.getTracks().forEach((t) => t.stop());
    $("camera").textContent = "Start the camera";
    if (this.state === "video") {
      this.state = "video-stopped";
      $("status").textContent = `camera stopped after ${this.video.frames} frame(s)`;
    }
  },

  // What the download button saves: the photo's faces or the camera's frames, as `kdmark predict --json` writes.
  results() {
    if (this.photo) return { [this.photo.name]: this.photo.faces.map(asJSON) };
    if (this.video) return { camera: this.video.log };
    return {};
  },

  lastFramePNG() {
    return this.lastFrame ? imageDataURL(this.lastFrame) : null;
  },

  // Milliseconds per photo for detector + landmarks on the last frame, median of `runs` (for benchmarks).
  async time(runs = 20, tiles = 0) {
    const img = this.lastFrame, times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const found = await this.detector.detect(img, tiles);
      await this.landmarker.predict(img, found.map((d) => d.box));
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)];
  },
};

app.ort = ort; // for benchmarks and tests (kdmark.ort.env, kdmark.ort.Tensor)
window.kdmark = app;
$("file").addEventListener("change", (e) => e.target.files[0] && app.openPhoto(e.target.files[0]));
$("camera").addEventListener("click", () => {
  if (app.video && app.video.running) return app.stopCamera();
  return app.startCamera().catch((err) => { $("status").textContent = `camera: ${err.message}`; });
});
$("download").addEventListener("click", () => {
  const name = app.photo ? `${app.photo.name.replace(/\.[^.]*$/, "")}.json` : "camera.json";
  download(name, app.results());
});
if (location.protocol === "file:") {
  app.state = "error";  // opened from disk: index.html says how to serve it (browsers block file:// fetches)
  app.error = "opened as a file";
} else {
  app.load().then(() => { $("status").textContent = "ready: pick a photo or start the camera"; })
    .catch((err) => { app.state = "error"; app.error = String(err); $("status").textContent = `error: ${err}`; });
}
