"""Test-time recipe of a crater band: flipped views merged, plus a coarse pass for large
craters. Part of a model version (2.2.0 on): the settings are stored in the band's config
and card, and were chosen on the validation tiles only (``experiments.craters.recipe``).

Why: the 2.1.0 CTX network misses most craters larger than ~60 px (its training crops are
192 px) and its single-view heatmap peaks are noisy near the threshold. Running the same
network on the horizontally and vertically flipped tile and keeping what the views agree
on (``merge="mean"``: a crater's score is the mean over the views, 0 where a view saw
nothing) steadies the scores; a pass at ``coarse_factor`` x the band's input scale shows
the network large craters at a size it was trained on, and only its detections of at
least ``coarse_min_px`` (input pixels, mean box side) are added, so the coarse pass never
adds small, blurred false detections. Cost: ``passes`` network passes per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from epnml.ml.imagery.tiling import box_iou, intersecting_pairs, nms

FLIPS = ("h", "v", "hv")
#: lowest score a view keeps (the validation grid ran views at this floor; a lower one
#: only adds near-zero terms to the mean and quadratic merging work)
VIEW_MIN_SCORE = 0.05
Merge = Literal["mean", "max"]


@dataclass(frozen=True)
class Recipe:
    """Views and how they are merged (a band's ``recipe`` entry)."""

    #: flipped views added to the plain one: "h" left-right, "v" top-bottom, "hv" both
    flips: tuple[str, ...] = ()
    #: "mean": cluster the views' boxes (IoU >= merge_iou, one per view), mean score over
    #: ALL views, score-weighted mean box; "max": NMS over the union (highest score wins)
    merge: Merge = "mean"
    merge_iou: float = 0.5
    #: coarse pass at this factor of the band's input scale (None: no coarse pass)
    coarse_factor: float | None = None
    #: smallest crater (mean box side, input px) the coarse pass contributes
    coarse_min_px: float = 40.0

    def __post_init__(self) -> None:
        bad = [f for f in self.flips if f not in FLIPS]
        if bad or len(set(self.flips)) != len(self.flips):
            raise ValueError(f"recipe flips must be distinct ones of {', '.join(FLIPS)}, "
                             f"got {list(self.flips)}")
        if self.merge not in ("mean", "max"):
            raise ValueError(f"recipe merge must be 'mean' or 'max', got {self.merge!r}")
        if not 0.0 < self.merge_iou < 1.0:
            raise ValueError(f"recipe merge_iou must be in (0, 1), got {self.merge_iou}")
        if self.coarse_factor is not None and not 0.0 < self.coarse_factor < 1.0:
            raise ValueError(f"recipe coarse_factor must be in (0, 1), got {self.coarse_factor}")
        if self.coarse_min_px < 0:
            raise ValueError(f"recipe coarse_min_px must be >= 0, got {self.coarse_min_px}")

    @property
    def passes(self) -> float:
        """Network cost relative to one plain pass (a pass at factor f costs f^2)."""
        return 1.0 + len(self.flips) + (self.coarse_factor or 0.0) ** 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flips"] = list(self.flips)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown recipe setting(s) {', '.join(unknown)}")
        kw = dict(d)
        if "flips" in kw:
            kw["flips"] = tuple(kw["flips"])
        return cls(**kw)


def flip_image(image: np.ndarray, flip: str) -> np.ndarray:
    """The image seen in view ``flip`` ("" plain, "h", "v", "hv")."""
    out = image
    if "h" in flip:
        out = out[:, ::-1]
    if "v" in flip:
        out = out[::-1, :]
    return np.ascontiguousarray(out)


def unflip_boxes(dets: np.ndarray, flip: str, shape: tuple[int, int]) -> np.ndarray:
    """Boxes found in view ``flip`` of an image of ``shape`` (h, w), in the plain image."""
    out = np.array(dets, dtype=float, copy=True).reshape(-1, 6)
    h, w = shape
    if "h" in flip:
        out[:, [0, 2]] = w - out[:, [2, 0]]
    if "v" in flip:
        out[:, [1, 3]] = h - out[:, [3, 1]]
    return out


def merge_views(views: Sequence[np.ndarray], how: Merge = "mean", iou: float = 0.5,
                nms_iou: float = 0.5) -> np.ndarray:
    """One ``(n, 6)`` set from the views' detections (each in plain-image pixels).

    ``mean``: greedy by score, a detection gathers the best-overlapping unused detection of
    every other view (IoU >= ``iou``); the merged score is the sum of the gathered scores
    divided by the number of views (a view that saw nothing contributes 0), the box the
    score-weighted mean. ``max``: NMS over the union."""
    sets = [np.asarray(v, dtype=float).reshape(-1, 6) for v in views]
    if not sets:
        return np.zeros((0, 6))
    if how == "max" or len(sets) == 1:
        return nms(np.concatenate(sets), nms_iou) if len(sets) > 1 else sets[0]
    allv = np.concatenate(sets)
    view = np.concatenate([np.full(len(s), k) for k, s in enumerate(sets)])
    used = np.zeros(len(allv), bool)
    # With iou > 0 only intersecting boxes can join a detection: look at those alone
    # (ascending, so argmax breaks ties as over all candidates; the same result, tested).
    if iou > 0:
        first, second = intersecting_pairs(allv[:, :4])
        box, other = np.concatenate([first, second]), np.concatenate([second, first])
        by = np.lexsort((other, box))
        near = other[by]
        bounds = np.searchsorted(box[by], np.arange(len(allv) + 1), side="left")
    out = []
    for i in np.argsort(-allv[:, 5], kind="stable"):
        if used[i]:
            continue
        members = [i]
        used[i] = True
        pool = near[bounds[i]:bounds[i + 1]] if iou > 0 else np.arange(len(allv))
        for k in range(len(sets)):
            if k == view[i]:
                continue
            cand = pool[(view[pool] == k) & ~used[pool]]
            if not cand.size:
                continue
            ov = box_iou(allv[i:i + 1, :4], allv[cand, :4])[0]
            j = int(np.argmax(ov))
            if ov[j] >= iou:
                members.append(int(cand[j]))
                used[cand[j]] = True
        m = allv[members]
        w = m[:, 5] / m[:, 5].sum()
        out.append([*(w @ m[:, :4]), m[0, 4], m[:, 5].sum() / len(sets)])
    return np.asarray(out, float).reshape(-1, 6)


def large(dets: np.ndarray, min_px: float) -> np.ndarray:
    """Detections whose mean box side is at least ``min_px``."""
    d = np.asarray(dets, float).reshape(-1, 6)
    side = ((d[:, 2] - d[:, 0]) + (d[:, 3] - d[:, 1])) / 2
    return d[side >= min_px]


def combine(fine: np.ndarray, coarse: np.ndarray | None, min_px: float,
            nms_iou: float = 0.5) -> np.ndarray:
    """The merged fine views plus the coarse pass's large craters (NMS: a crater both see
    keeps the higher score)."""
    if coarse is None:
        return fine
    add = large(coarse, min_px)
    if not len(add):
        return fine
    return nms(np.concatenate([np.asarray(fine, float).reshape(-1, 6), add]), nms_iou)


Runner = Callable[[np.ndarray, float], np.ndarray]


def run_views(image: np.ndarray, run: Runner, scale: float, recipe: Recipe
              ) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The fine views' detections (plain first, then ``recipe.flips``, in plain-image
    pixels) and the coarse pass's (None without one). ``run(image, scale)`` is the band's
    tiled detection at one input scale."""
    image = np.asarray(image, dtype=np.float32)
    views = [run(image, scale)]
    for f in recipe.flips:
        views.append(unflip_boxes(run(flip_image(image, f), scale), f, image.shape[:2]))
    coarse = run(image, scale * recipe.coarse_factor) if recipe.coarse_factor else None
    return views, coarse


def apply(views: Sequence[np.ndarray], coarse: np.ndarray | None, recipe: Recipe,
          nms_iou: float = 0.5) -> np.ndarray:
    """The recipe's detections from already computed views."""
    fine = merge_views(views, recipe.merge, recipe.merge_iou, nms_iou)
    return combine(fine, coarse, recipe.coarse_min_px, nms_iou)
