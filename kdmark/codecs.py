"""Codecs: the one object that turns points into training targets and network outputs back into points.

Frames: ``points`` are (K, 2) or (B, K, 2) pixel coordinates of the network input (0-based pixel centres).
A regression target is ``(x + 0.5) / size`` in [0, 1]. A heatmap pixel u of stride s covers input pixels
``[u*s, (u+1)*s)``, so ``u = (x + 0.5) / s - 0.5`` and back ``x = (u + 0.5) * s - 0.5``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["RegressionCodec", "HeatmapCodec", "OffsetCodec", "JointCodec", "create_codec"]


class RegressionCodec:
    """Points <-> coordinates in [0, 1] of an ``input_size`` square (Appl. Sci. sigmoid regression)."""

    kind = "regression"

    def __init__(self, input_size: int):
        self.input_size = input_size

    def encode(self, points: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        coords = (np.asarray(points, np.float32) + 0.5) / self.input_size
        return {"coords": coords, "weights": np.asarray(visible, np.float32)}

    def decode(self, output: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, 2) points in input pixels, (B, K) scores (regression has no confidence: all ones)."""
        coords = output["coords"]
        return coords * self.input_size - 0.5, torch.ones(coords.shape[:2], device=coords.device)

    def card(self) -> dict:
        return {"kind": self.kind, "input_size": self.input_size}


class HeatmapCodec:
    """Points <-> one Gaussian heatmap per landmark (peak 1), decoded with sub-pixel Taylor refinement.

    Decoding takes the argmax, then one Newton step on the log-heatmap (exact for a Gaussian; DARK, Zhang et al.
    CVPR 2020) where the local Hessian is negative definite, else the classic quarter-pixel shift towards the
    higher neighbour (SimpleBaseline). The score of a point is its heatmap peak.
    """

    kind = "heatmap"

    def __init__(self, input_size: int, stride: int = 4, sigma: float = 1.5):
        if input_size % stride:
            raise ValueError(f"input_size {input_size} is not a multiple of the heatmap stride {stride}")
        self.input_size, self.stride, self.sigma = input_size, stride, sigma
        self.size = input_size // stride

    def encode(self, points: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        vis = np.asarray(visible, np.float32)
        return {"heatmaps": self.render(points, np.full(len(vis), np.nan), vis), "weights": vis}

    def decode(self, output: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        uv, scores = decode_heatmaps(output["heatmaps"])
        return (uv + 0.5) * self.stride - 0.5, scores

    def render(self, points: np.ndarray, sigma: np.ndarray, peak: np.ndarray) -> np.ndarray:
        """(K, H, W) heatmaps with one Gaussian per point of its own spread ``sigma`` (input pixels; NaN: the
        codec's) and height ``peak``: a teacher's heatmaps summarised by its points, spreads and peaks (see
        ``decode_heatmaps(spread=True)``), rendered again after the crop moved."""
        uv = (np.asarray(points, np.float32) + 0.5) / self.stride - 0.5
        s = np.asarray(sigma, np.float32) / self.stride
        s = np.where(np.isfinite(s), np.clip(s, 0.5 * self.sigma, 3.0 * self.sigma), self.sigma)[:, None]
        grid = np.arange(self.size, dtype=np.float32)
        gx = np.exp(-((grid[None, :] - uv[:, :1]) ** 2) / (2 * s**2))  # (K, W)
        gy = np.exp(-((grid[None, :] - uv[:, 1:]) ** 2) / (2 * s**2))  # (K, H)
        return (gy[:, :, None] * gx[:, None, :]) * np.asarray(peak, np.float32)[:, None, None]

    def card(self) -> dict:
        return {"kind": self.kind, "input_size": self.input_size, "stride": self.stride, "sigma": self.sigma}


def decode_heatmaps(heatmaps: torch.Tensor, spread: bool = False) -> tuple[torch.Tensor, ...]:
    """(B, K, H, W) heatmaps -> (B, K, 2) sub-pixel (u, v) in heatmap pixels and (B, K) peak values; with
    ``spread`` also (B, K) the Gaussian width of each peak in heatmap pixels, ``sqrt(-2 / (d2x + d2y))`` of the
    log-heatmap, NaN where the peak is not concave, and (B, K) the height of the fitted Gaussian at its sub-pixel
    centre (the grid peak times ``exp(g . offset / 2)``): both exact for a Gaussian."""
    k, h, w = heatmaps.shape[1:]  # the batch size stays symbolic (-1) so ONNX export keeps a dynamic batch axis
    flat = heatmaps.reshape(-1, k, h * w)
    scores, idx = flat.max(dim=-1)
    u, v = (idx % w).float(), torch.div(idx, w, rounding_mode="floor").float()
    logh = torch.log(heatmaps.float().clamp_min(1e-10))
    padded = F.pad(logh, (1, 1, 1, 1), mode="replicate")

    def at(du: int, dv: int) -> torch.Tensor:
        iu = (u.long() + 1 + du).clamp(0, w + 1)
        iv = (v.long() + 1 + dv).clamp(0, h + 1)
        return padded.reshape(-1, k, (h + 2) * (w + 2)).gather(-1, (iv * (w + 2) + iu).unsqueeze(-1)).squeeze(-1)

    c = at(0, 0)
    dx, dy = (at(1, 0) - at(-1, 0)) / 2, (at(0, 1) - at(0, -1)) / 2
    dxx, dyy = at(1, 0) - 2 * c + at(-1, 0), at(0, 1) - 2 * c + at(0, -1)
    dxy = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / 4
    det = dxx * dyy - dxy * dxy
    newton = (det > 1e-12) & (dxx < 0)
    safe = torch.where(newton, det, torch.ones_like(det))
    off_u = torch.where(newton, -(dyy * dx - dxy * dy) / safe, 0.25 * torch.sign(dx))
    off_v = torch.where(newton, -(dxx * dy - dxy * dx) / safe, 0.25 * torch.sign(dy))
    uv = torch.stack([u + off_u.clamp(-1, 1), v + off_v.clamp(-1, 1)], dim=-1)
    if spread:
        curvature = dxx + dyy
        width = torch.where(curvature < 0, torch.sqrt(-2.0 / curvature.clamp(max=-1e-12)), float("nan"))
        height = scores * torch.exp(0.5 * (dx * off_u + dy * off_v)).where(newton, torch.ones_like(scores))
        return uv, scores, width, height
    return uv, scores


class OffsetCodec(HeatmapCodec):
    """Points <-> Gaussian heatmaps plus offset maps (PIPNet): ``offsets`` (2K, H, W) hold, at the cells within
    ``radius`` cells of a point's nearest cell, the point's (u, v) minus the cell's (x maps first, then y), and
    ``offset_weights`` (K, H, W) mark those cells (times the point's visibility). Decoding takes the argmax cell of
    each heatmap and adds the offsets read there: exact at any grid, where the Taylor step of :class:`HeatmapCodec`
    is exact only for a Gaussian peak."""

    kind = "offset"

    def __init__(self, input_size: int, stride: int = 8, sigma: float = 1.0, radius: int = 1):
        super().__init__(input_size, stride, sigma)
        self.radius = radius

    def encode(self, points: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        target = super().encode(points, visible)
        uv = (np.asarray(points, np.float32) + 0.5) / self.stride - 0.5  # (K, 2) in cells
        grid = np.arange(self.size, dtype=np.float32)
        du = uv[:, 0, None] - grid[None, :]  # (K, W): the point's u minus each column's
        dv = uv[:, 1, None] - grid[None, :]  # (K, H)
        k = len(uv)
        offsets = np.concatenate([np.broadcast_to(du[:, None, :], (k, self.size, self.size)),
                                  np.broadcast_to(dv[:, :, None], (k, self.size, self.size))]).astype(np.float32)
        near = ((np.abs(np.round(uv[:, 0, None]) - grid[None, :]) <= self.radius)[:, None, :]
                & (np.abs(np.round(uv[:, 1, None]) - grid[None, :]) <= self.radius)[:, :, None])
        weights = near.astype(np.float32) * target["weights"][:, None, None]
        offsets = np.where(np.concatenate([near, near]), offsets, 0.0).astype(np.float32)  # no NaN far away
        return target | {"offsets": offsets, "offset_weights": weights}

    def decode(self, output: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, offsets = output["heatmaps"], output["offsets"]
        k, h, w = heatmaps.shape[1:]
        scores, idx = heatmaps.reshape(-1, k, h * w).max(dim=-1)
        flat = offsets.reshape(-1, 2 * k, h * w)
        off_u = flat[:, :k].gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        off_v = flat[:, k:].gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        u = (idx % w).float() + off_u.float()
        v = torch.div(idx, w, rounding_mode="floor").float() + off_v.float()
        return (torch.stack([u, v], dim=-1) + 0.5) * self.stride - 0.5, scores

    def card(self) -> dict:
        return super().card() | {"kind": self.kind, "radius": self.radius}


class JointCodec:
    """Regression and heatmap targets for one joint head; ``eval_output`` chooses which output gives points."""

    kind = "joint"

    def __init__(self, input_size: int, stride: int = 4, sigma: float = 1.5, eval_output: str = "heatmap"):
        self.regression = RegressionCodec(input_size)
        self.heatmap = HeatmapCodec(input_size, stride, sigma)
        self.input_size, self.eval_output = input_size, eval_output

    def encode(self, points: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        return self.regression.encode(points, visible) | self.heatmap.encode(points, visible)

    def decode(self, output: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.eval_output == "regression":
            points, _ = self.regression.decode(output)
            _, scores = decode_heatmaps(output["heatmaps"])
            return points, scores
        return self.heatmap.decode(output)

    def card(self) -> dict:
        return self.heatmap.card() | {"kind": self.kind, "eval_output": self.eval_output}


def create_codec(spec: dict) -> RegressionCodec | HeatmapCodec | JointCodec:
    """Rebuild a codec from its ``card()`` (stored in every checkpoint)."""
    kind = spec["kind"]
    if kind == "regression":
        return RegressionCodec(spec["input_size"])
    if kind == "heatmap":
        return HeatmapCodec(spec["input_size"], spec["stride"], spec["sigma"])
    if kind == "offset":
        return OffsetCodec(spec["input_size"], spec["stride"], spec["sigma"], spec["radius"])
    if kind == "joint":
        return JointCodec(spec["input_size"], spec["stride"], spec["sigma"], spec["eval_output"])
    raise ValueError(f"unknown codec kind {kind!r}")

