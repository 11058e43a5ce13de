"""Large images -> overlapping fixed-size tiles -> detections back in image pixels.

Why overlap: a landform cut by a tile border is seen whole in the neighbouring tile
when the overlap exceeds its size; the duplicate (or truncated) copies are then
removed by class-aware NMS, which also drops a box mostly contained in a
higher-scoring box of the same class (the truncated copy at a border).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: detection array columns: x_min, y_min, x_max, y_max (px), class (0-based), score.
DET_COLUMNS = ("x_min", "y_min", "x_max", "y_max", "class", "score")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` overlapping by at
    least ``overlap``; the last tile ends at the image edge (no tile starts past it)."""
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need tile > 0 and 0 <= overlap < tile, got {tile}, {overlap}")
    if length <= tile:
        return [0]
    step = tile - overlap
    n = int(np.ceil((length - tile) / step)) + 1
    # spread the tiles evenly so every overlap is >= the requested one
    return [int(round(i * (length - tile) / (n - 1))) for i in range(n)]


def iter_tiles(image: np.ndarray, tile: int = 512, overlap: int = 128, fill: float = 0.0
               ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(y0, x0, tile_array)``; edge tiles of small images are padded with ``fill``."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    h, w = image.shape
    for y0 in tile_starts(h, tile, overlap):
        for x0 in tile_starts(w, tile, overlap):
            part = image[y0:y0 + tile, x0:x0 + tile]
            if part.shape != (tile, tile):
                padded = np.full((tile, tile), fill, dtype=image.dtype)
                padded[:part.shape[0], :part.shape[1]] = part
                part = padded
            yield y0, x0, part


def to_image(dets: np.ndarray, x0: float, y0: float, scale: float = 1.0,
             shape: tuple[int, int] | None = None) -> np.ndarray:
    """Tile-pixel detections -> pixels of the original image.

    ``scale`` is the factor the image was resized by before tiling; boxes are clipped
    to the original ``shape`` (height, width) when given.
    """
    out = np.array(dets, dtype=np.float64).reshape(-1, len(DET_COLUMNS))
    out[:, [0, 2]] = (out[:, [0, 2]] + x0) / scale
    out[:, [1, 3]] = (out[:, [1, 3]] + y0) / scale
    if shape is not None:
        h, w = shape
        out[:, [0, 2]] = out[:, [0, 2]].clip(0.0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0.0, h)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(len(a), len(b))`` of ``x_min, y_min, x_max, y_max`` boxes."""
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) -
                 np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) -
                 np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(dets: np.ndarray, iou_threshold: float = 0.5, containment: float = 0.8,
        min_area_ratio: float = 0.25) -> np.ndarray:
    """Class-aware greedy NMS on ``(n, 6)`` detections, highest score first.

    A box is dropped when a kept box of the same class overlaps it with IoU >
    ``iou_threshold``, or covers more than ``containment`` of its area while the box is
    not tiny next to it (> ``min_area_ratio`` of the kept area): a truncated copy at a
    tile border, not a small crater inside a large one.
    """
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, len(DET_COLUMNS))
    if len(dets) == 0:
        return dets
    order = np.argsort(-dets[:, 5], kind="stable")
    dets = dets[order]
    keep: list[int] = []
    for cls in np.unique(dets[:, 4]):
        idx = np.flatnonzero(dets[:, 4] == cls)
        boxes = dets[idx, :4]
        area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * \
            np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
        alive = np.ones(len(idx), dtype=bool)
        # Only boxes that intersect box i can be suppressed by it (IoU and coverage are 0
        # otherwise): look at those whose x_min lies in [x_min_i - widest - 1, x_max_i),
        # found by bisection in x order, instead of every remaining box (O(n^2) on the
        # thousands of candidates of a CTX image). Same result, tested.
        by_x = np.argsort(boxes[:, 0], kind="stable")
        x0_sorted = boxes[by_x, 0]
        widest = float(np.clip(boxes[:, 2] - boxes[:, 0], 0, None).max()) + 1.0
        spatial = iou_threshold >= 0 and containment >= 0
        for i in range(len(idx)):
            if not alive[i]:
                continue
            keep.append(int(idx[i]))
            if spatial:
                lo = int(np.searchsorted(x0_sorted, boxes[i, 0] - widest, side="left"))
                hi = int(np.searchsorted(x0_sorted, boxes[i, 2], side="left"))
                near = by_x[lo:hi]
                rest = np.sort(near[(near > i) & alive[near]])
            else:
                rest = np.flatnonzero(alive[i + 1:]) + i + 1
            if not rest.size:
                continue
            iou = box_iou(boxes[i], boxes[rest])[0]
            ix = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) -
                         np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
            iy = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) -
                         np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
            covered = ix * iy / np.where(area[rest] > 0, area[rest], 1.0)
            truncated = (covered > containment) & (area[rest] > min_area_ratio * area[i])
            alive[rest[(iou > iou_threshold) | truncated]] = False
    out = dets[sorted(keep)]
    return out[np.argsort(-out[:, 5], kind="stable")]
