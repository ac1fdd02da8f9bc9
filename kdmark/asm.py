"""Active shape model: PCA over training shapes that turns ground truth into "soft" landmarks (Fard & Mahoor's
Tolerant teacher trains on them; docs/methods.md §1(b)).

Shapes are normalised per face (centred on the landmark box, divided by its longer side) before PCA, the way the
KD-Loss code normalises labels to the face crop; optional Procrustes alignment removes rotation as well. A shape
is projected onto the k principal modes that explain ``variance`` of the training variance, its coefficients are
clipped to +-3 sqrt(lambda), and it is reconstructed and mapped back to image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdmark.io import save_figure

__all__ = ["ActiveShapeModel", "write_soft_landmarks"]


def _normalise(shape: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    lo, hi = shape.min(axis=0), shape.max(axis=0)
    centre, scale = (lo + hi) / 2, float(max((hi - lo).max(), 1e-9))
    return (shape - centre) / scale, centre, scale


def _rotation_to(shape: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The 2x2 rotation R minimising ||shape @ R - ref|| (both centred; orthogonal Procrustes, no reflection)."""
    u, _, vt = np.linalg.svd(shape.T @ ref)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, d]) @ vt


@dataclass
class ActiveShapeModel:
    """PCA shape model. ``fit`` on (N, K, 2) shapes, then ``project`` any (M, K, 2) shapes to soft ones.

    Attributes (after fit): ``mean`` (2K,), ``components`` (k, 2K), ``eigenvalues`` (k,), ``explained`` (all
    explained-variance ratios, so callers can see what the threshold kept).
    """

    variance: float = 0.9
    procrustes: bool = False

    def _prepare(self, shapes: np.ndarray) -> tuple[np.ndarray, list]:
        flat, frames = [], []
        for s in np.asarray(shapes, np.float64):
            n, centre, scale = _normalise(s)
            rot = np.eye(2)
            if self.procrustes and hasattr(self, "reference"):
                rot = _rotation_to(n - n.mean(0), self.reference)
                n = (n - n.mean(0)) @ rot
            flat.append(n.reshape(-1))
            frames.append((centre, scale, rot, s))
        return np.stack(flat), frames

    def fit(self, shapes: np.ndarray) -> ActiveShapeModel:
        shapes = np.asarray(shapes, np.float64)
        if self.procrustes:
            first = np.stack([_normalise(s)[0] for s in shapes])
            self.reference = (first - first.mean(1, keepdims=True)).mean(0)
        x, _ = self._prepare(shapes)
        self.mean = x.mean(axis=0)
        _, sing, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        eig = sing**2 / max(len(x) - 1, 1)
        self.explained = eig / eig.sum()
        cumulative = np.cumsum(self.explained)
        if self.variance >= 1.0:
            k = int((eig > eig.max() * 1e-12).sum())
        else:
            k = int(np.searchsorted(cumulative, self.variance - 1e-12) + 1)  # smallest k reaching the threshold
        self.components, self.eigenvalues = vt[:k], eig[:k]
        return self

    @property
    def num_modes(self) -> int:
        return len(self.eigenvalues)

    def z_scores(self, shapes: np.ndarray) -> np.ndarray:
        """(M, k) mode coefficients in standard deviations; |z| > 3 is what ``project`` clips."""
        x, _ = self._prepare(shapes)
        return (x - self.mean) @ self.components.T / np.sqrt(self.eigenvalues)

    def project(self, shapes: np.ndarray) -> np.ndarray:
        """Soft landmarks: each shape reconstructed from its clipped mode coefficients, in its own pixel frame."""
        x, frames = self._prepare(shapes)
        b = (x - self.mean) @ self.components.T
        limit = 3.0 * np.sqrt(self.eigenvalues)
        b = np.clip(b, -limit, limit)
        recon = (self.mean + b @ self.components).reshape(len(x), -1, 2)
        out = []
        for r, (centre, scale, rot, orig) in zip(recon, frames):
            if self.procrustes:
                n0 = _normalise(orig)[0]
                r = r @ rot.T + n0.mean(0)
            out.append(r * scale + centre)
        return np.stack(out)

    def modes(self, count: int = 3) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(mean - 3 sqrt(l) v, mean, mean + 3 sqrt(l) v) as (K, 2) normalised shapes, for the first modes."""
        mean = self.mean.reshape(-1, 2)
        out = []
        for v, lam in list(zip(self.components, self.eigenvalues))[:count]:
            step = 3 * np.sqrt(lam) * v.reshape(-1, 2)
            out.append((mean - step, mean, mean + step))
        return out

    def plot_modes(self, path, count: int = 3) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        shown = self.modes(count)
        fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.4), squeeze=False)
        for i, (ax, (lo, mean, hi)) in enumerate(zip(axes[0], shown)):
            for shape, style, label in ((lo, "b.", "-3 sd"), (mean, "k.", "mean"), (hi, "r.", "+3 sd")):
                ax.plot(shape[:, 0], shape[:, 1], style, ms=3, label=label)
            ax.set_title(f"mode {i + 1}: {self.explained[i] * 100:.1f}% of variance", fontsize=8)
            ax.invert_yaxis()
            ax.set_aspect("equal")
            ax.axis("off")
        axes[0][0].legend(fontsize=6, loc="lower left")
        fig.suptitle(f"ASM: {self.num_modes} modes keep {self.variance * 100:.0f}% of the variance", fontsize=9)
        fig.tight_layout()
        save_figure(fig, path)


def write_soft_landmarks(ds, out: str | Path, variance: float = 0.9, procrustes: bool = False) -> dict:
    """Fit an ASM to ``ds``'s shapes, write ``out/soft_landmarks.json`` (sample key -> soft points) and
    ``out/modes.png``; returns what was done (modes kept, mean shift of the points in pixels, the files)."""
    from kdmark.io import atomic_write_json

    shapes = np.stack([s.points for s in ds])
    asm = ActiveShapeModel(variance, procrustes=procrustes).fit(shapes)
    soft = asm.project(shapes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [atomic_write_json(out / "soft_landmarks.json", {s.key: np.round(p, 4).tolist() for s, p in zip(ds, soft)})]
    asm.plot_modes(out / "modes.png")
    files.append(out / "modes.png")
    return {"faces": len(ds), "modes": asm.num_modes, "moved_px": float(np.linalg.norm(soft - shapes, axis=-1).mean()),
            "files": files}
