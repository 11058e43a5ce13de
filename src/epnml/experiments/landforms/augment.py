"""Box-aware augmentation pieces shared by the detector trainers (pits, craters).

Crops are ``(size, size)`` float32 arrays with boxes ``(m, 5)``: class, x0, y0, x1, y1 in
crop pixels. Each piece draws its random numbers in the order the trainers always drew
them, so a seeded run gives the same batches as before they were shared.
"""

from __future__ import annotations

import math

import numpy as np


def keep_visible(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boxes clipped to a ``width`` x ``height`` crop, kept when at least half of their
    area (and more than nothing) lies inside."""
    clipped = boxes.copy()
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, width)
    clipped[:, [2, 4]] = clipped[:, [2, 4]].clip(0, height)
    area = (boxes[:, 3] - boxes[:, 1]) * (boxes[:, 4] - boxes[:, 2])
    vis = (clipped[:, 3] - clipped[:, 1]) * (clipped[:, 4] - clipped[:, 2])
    return clipped[(vis >= 0.5 * np.maximum(area, 1e-9)) & (vis > 0)]


def random_flips(out: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A horizontal, then a vertical flip, each with probability 1/2 (``boxes`` in place)."""
    if rng.random() < 0.5:
        out = out[:, ::-1]
        boxes[:, [1, 3]] = size - boxes[:, [3, 1]]
    if rng.random() < 0.5:
        out = out[::-1, :]
        boxes[:, [2, 4]] = size - boxes[:, [4, 2]]
    return out, boxes


def random_rot90(out: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """0-3 quarter turns counter-clockwise: (x, y) -> (y, size - x) each."""
    for _ in range(int(rng.integers(4))):
        out = np.rot90(out)
        boxes = np.stack([boxes[:, 0], boxes[:, 2], size - boxes[:, 3], boxes[:, 4],
                          size - boxes[:, 1]], axis=1) if len(boxes) else boxes
    return out, boxes


def contrast_noise(out: np.ndarray, rng: np.random.Generator,
                   contrast: tuple[float, float] = (0.7, 1.4), offset: float = 0.3,
                   noise: float = 0.08) -> np.ndarray:
    """Log-uniform contrast in ``contrast``, a uniform offset within +-``offset`` and
    Gaussian noise of a standard deviation uniform in [0, ``noise``]; contiguous float32."""
    c = math.exp(rng.uniform(math.log(contrast[0]), math.log(contrast[1])))
    noisy = out * c + rng.uniform(-offset, offset) + \
        rng.normal(0.0, rng.uniform(0.0, noise), out.shape)
    return np.ascontiguousarray(noisy, dtype=np.float32)
