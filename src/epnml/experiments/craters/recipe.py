"""Choose a crater band's test-time recipe on the VALIDATION tiles only (B, J).

    python -m epnml.experiments.craters.recipe --weights 2.1.0 --out /tmp/recipe-grid.json

The network is fixed (the ctx band of ``--weights``, a version or a scratch one-network
``.pt`` with its card, as ``train`` writes it); what is chosen is how it is run
(``epnml.ml.craters.recipe``): which flipped views, how they are merged, whether a coarse
pass adds large craters and from which size, and the score threshold. The grid is
declared here (:data:`GRID`), every view is computed once per tile and each grid point is
scored from those views, with the threshold re-chosen per point (best pooled F1 of
``evaluate.THRESHOLDS``). The best point (ties: fewer network passes) is the recipe; the
test tiles are never read here (``evaluate --final-test`` scores them once, afterwards).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from epnml.experiments.craters.evaluate import (
    MIN_SCORE,
    PIXEL_M,
    VAL_TILES,
    choose_threshold,
    load_tile,
    scores_at,
)
from epnml.ml.craters.recipe import FLIPS, Recipe, apply, run_views

#: the declared grid (28 recipes: one fine view has nothing to merge; each recipe with its
#: own validation-chosen threshold)
GRID: dict[str, list[Any]] = {
    "flips": [[], ["h"], ["h", "v"], ["h", "v", "hv"]],
    "merge": ["mean", "max"],
    #: None: no coarse pass; else the smallest crater (input px) the x0.5 pass adds
    "coarse_min_px": [None, 30.0, 40.0, 60.0],
    # keys below are fixed in this grid (listed so the card records them)
    "coarse_factor": [0.5],
    "merge_iou": [0.5],
}


def grid_recipes() -> list[Recipe]:
    out = []
    for flips, merge, cmin in itertools.product(GRID["flips"], GRID["merge"],
                                                GRID["coarse_min_px"]):
        if not flips and merge == "max":
            continue  # one fine view: nothing to merge, "mean" == "max"
        out.append(Recipe(flips=tuple(flips), merge=merge, merge_iou=GRID["merge_iou"][0],
                          coarse_factor=None if cmin is None else GRID["coarse_factor"][0],
                          coarse_min_px=40.0 if cmin is None else float(cmin)))
    return out


def run_grid(version: str | None, log: Any = None) -> dict[str, Any]:
    """Every grid recipe's pooled validation F1 at its best threshold, and the choice.
    ``version``: a committed version, or a path ending ``.pt`` (a scratch checkpoint)."""
    from epnml.ml.craters.inference import detect_band, load_spec

    model = load_spec(version)
    use = model.choose(PIXEL_M)
    tiles = [load_tile(n) for n in VAL_TILES]
    every = Recipe(flips=FLIPS, coarse_factor=GRID["coarse_factor"][0])
    t0 = time.perf_counter()
    views = []

    def run(img: np.ndarray, scale: float) -> np.ndarray:  # one plain pass at this scale
        return detect_band(img, replace(use, input_scale=scale, recipe=None),
                           min_score=MIN_SCORE)

    for t in tiles:
        views.append(run_views(t.pixels, run, use.input_scale, every))
    seconds = time.perf_counter() - t0
    order = ("",) + FLIPS
    rows = []
    for r in grid_recipes():
        idx = [order.index(f) for f in ("", *r.flips)]
        found = [apply([v[i] for i in idx], c if r.coarse_factor else None, r, use.nms_iou)
                 for v, c in views]
        thr, f1 = choose_threshold(tiles, found)
        row: dict[str, Any] = {"recipe": r.to_dict(), "passes": round(r.passes, 3),
                               "threshold": thr, "f1": f1,
                               "scores": scores_at(tiles, found, thr)}
        rows.append(row)
        if log is not None:
            print(json.dumps({k: row[k] for k in ("recipe", "threshold", "f1")}), file=log,
                  flush=True)
    best = max(rows, key=lambda row: (row["f1"], -row["passes"]))
    plain = next(row for row in rows if not row["recipe"]["flips"]
                 and row["recipe"]["coarse_factor"] is None)
    return {"weights": model.info.version, "sha256": model.info.sha256,
            "band": use.band.name if use.band else None,
            "tiles": list(VAL_TILES), "grid": GRID, "n_recipes": len(rows),
            "rule": "best pooled validation F1 (IoU >= 0.5, published consensus) with the "
                    "threshold re-chosen per recipe; ties: fewer network passes",
            "views_seconds": round(seconds, 1), "plain": plain, "chosen": best,
            "results": rows}


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    import torch

    ap = argparse.ArgumentParser(description="choose the crater recipe on validation tiles")
    ap.add_argument("--weights", default="2.1.0",
                    help="version whose ctx band is run, or a scratch .pt (one network)")
    ap.add_argument("--out", type=Path, required=True, help="JSON of the whole grid")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    result = run_grid(args.weights, sys.stderr)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("plain", "chosen", "views_seconds")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
