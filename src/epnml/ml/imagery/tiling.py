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


def intersecting_pairs(boxes: np.ndarray, block: int = 1_000_000
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)``, ``i < j``, of the ``x_min, y_min, x_max, y_max`` boxes whose
    areas intersect (positive overlap in x and y), sorted by ``i`` then ``j``.

    Why: NMS and view merging only ever act on intersecting boxes (IoU and coverage are 0
    otherwise), and a CTX image has thousands of candidates: comparing every pair, or
    every box in a Python loop, was a large share of the stage's time. A sweep along the
    longer axis (start order; a box's partners start before it ends) finds the candidate
    pairs in ``block``-sized vectorised chunks, so memory stays bounded on long strips."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(b)
    none = np.zeros(0, dtype=np.intp)
    if n < 2:
        return none, none
    span = b[:, 2:].max(axis=0) - b[:, :2].min(axis=0)
    axis = 0 if span[0] >= span[1] else 1
    order = np.argsort(b[:, axis], kind="stable")
    starts = b[order, axis]
    end = np.searchsorted(starts, b[order, axis + 2], side="left")
    counts = np.maximum(end - np.arange(1, n + 1), 0)
    cumulative = np.cumsum(counts)
    first, second = [], []
    position = 0
    while position < n:
        # the positions whose pairs fit in one block (at least one position per block)
        done = int(cumulative[position - 1]) if position else 0
        stop = int(np.searchsorted(cumulative, done + block, side="right"))
        stop = min(max(stop, position + 1), n)
        c = counts[position:stop]
        total = int(c.sum())
        if total:
            at = np.repeat(np.arange(position, stop), c)
            partner = at + 1 + np.arange(total) - np.repeat(np.cumsum(c) - c, c)
            i, j = order[at], order[partner]
            ix = np.minimum(b[i, 2], b[j, 2]) - np.maximum(b[i, 0], b[j, 0])
            iy = np.minimum(b[i, 3], b[j, 3]) - np.maximum(b[i, 1], b[j, 1])
            hit = (ix > 0) & (iy > 0)
            first.append(np.minimum(i[hit], j[hit]))
            second.append(np.maximum(i[hit], j[hit]))
        position = stop
    if not first:
        return none, none
    i, j = np.concatenate(first), np.concatenate(second)
    by = np.lexsort((j, i))
    return i[by], j[by]


def _pair_overlap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection area of boxes ``a[k]`` and ``b[k]``, row by row (the same
    float operations as :func:`box_iou`, so the values are equal to the bit)."""
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + \
        (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou, inter


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
        # Which earlier (higher-scored) box would drop which later one, for every pair at
        # once; with non-negative thresholds only intersecting pairs can qualify. Then the
        # greedy pass: a box survives unless a box kept before it drops it.
        if iou_threshold >= 0 and containment >= 0:
            first, second = intersecting_pairs(boxes)
        else:
            first, second = np.triu_indices(len(idx), 1)
        iou, inter = _pair_overlap(boxes[first], boxes[second])
        covered = inter / np.where(area[second] > 0, area[second], 1.0)
        drops = (iou > iou_threshold) | ((covered > containment) &
                                         (area[second] > min_area_ratio * area[first]))
        first, second = first[drops], second[drops]
        bounds = np.searchsorted(first, np.arange(len(idx) + 1), side="left")
        alive = np.ones(len(idx), dtype=bool)
        for i in range(len(idx)):
            if alive[i]:
                keep.append(int(idx[i]))
                alive[second[bounds[i]:bounds[i + 1]]] = False
    out = dets[sorted(keep)]
    return out[np.argsort(-out[:, 5], kind="stable")]
