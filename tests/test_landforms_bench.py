"""The whole-stage image benchmarks of the landform detectors and the crater tile-overlap
trial (issue #14, speed): the network tiles they count are those the stages run. Nothing
here is timed: speed is for ``epnml bench landforms``."""

from __future__ import annotations

import numpy as np
import pytest

from epnml.ml.imagery.tiling import tile_starts
from epnml.ml.pits.inference import OVERLAP, TILE


def _tiles(h: int, w: int, scale: float, overlap: int = OVERLAP) -> int:
    """Network tiles ``detect_array`` cuts an h x w image into at ``scale``."""
    hh, ww = round(h * scale), round(w * scale)
    side = min(TILE, 32 * int(np.ceil(max(hh, ww) / 32)))
    overlap = min(overlap, side // 2)
    return len(tile_starts(hh, side, overlap)) * len(tile_starts(ww, side, overlap))


def test_whole_image_bench_counts_every_network_tile_of_the_recipe() -> None:
    """``run_craters_image`` counts the tiles the fused network really ran: 2.3.0's CTX
    recipe = plain + h-flip views at x1.5 and one coarse view at x0.75, each tiled with
    overlap (not timed here: speed is for the bench)."""
    from epnml.experiments.landforms.bench import run_craters_image
    from epnml.ml.craters.inference import load_model

    use = load_model("2.3.0").choose(5.5)
    assert use.recipe is not None and use.recipe.flips == ("h",)
    image = np.random.default_rng(2).normal(100, 20, (600, 700)).astype(np.float32)
    out = run_craters_image(repeats=1, threads=1, version="2.3.0", image=image)
    want = 2 * _tiles(600, 700, 1.5) + _tiles(600, 700, 1.5 * use.recipe.coarse_factor)
    assert out["network_tiles_per_image"] == want == 2 * 9 + 2
    assert out["input_tiles_512"] == round(600 * 700 / 512 ** 2, 2)
    assert out["model"] == "craters 2.3.0 band ctx" and out["image"].startswith("given image")
    with pytest.raises(ValueError, match="no band 'moon'"):
        run_craters_image(repeats=1, version="2.3.0", band="moon", image=image)

    # the overlap trial: fewer fine tiles, the coarse pass unchanged
    out = run_craters_image(repeats=1, threads=1, version="2.3.0", image=image, fine_overlap=0)
    want = 2 * _tiles(600, 700, 1.5, 0) + _tiles(600, 700, 1.5 * use.recipe.coarse_factor)
    assert out["network_tiles_per_image"] == want == 2 * 6 + 2


def test_overlap_trial_refuses_overlaps_outside_the_tile() -> None:
    from epnml.experiments.craters.overlap import run

    with pytest.raises(ValueError, match="overlap must be in 0..255"):
        run("2.3.0", [64, 256], repeats=1)


@pytest.mark.parametrize("side", [1100, 2000])
def test_whole_image_bench_of_pits_counts_its_network_tiles(side: int) -> None:
    from epnml.experiments.landforms.bench import run_pits_image
    from epnml.ml.pits.inference import load_model

    out = run_pits_image(repeats=1, threads=1, side=side)
    scale = load_model(None).input_scale
    assert out["network_tiles_per_image"] == _tiles(side, side, scale) == (1 if side < 1400 else 4)
    assert out["image"].startswith("SIMULATED")
    assert out["input_tiles_512"] == round(side ** 2 / 512 ** 2, 2)
