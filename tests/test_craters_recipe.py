"""Crater test-time recipe (2.2.0, issue #14): flipped views merged, a coarse pass that only
adds large craters, and the fused inference copy that must equal the unfused network."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from epnml.ml.craters.bands import BandedConfig, BandedCraterNet, band_dict
from epnml.ml.craters.inference import (
    WEIGHTS_DIR,
    available_versions,
    detect_band,
    detect_craters_array,
    load_model,
)
from epnml.ml.craters.net import CraterNet, CraterNetConfig
from epnml.ml.craters.recipe import (
    Recipe,
    apply,
    combine,
    flip_image,
    merge_views,
    run_views,
    unflip_boxes,
)
from epnml.ml.fuse import fold_batchnorm, inference_copy
from epnml.ml.imagery.detector import DetectorConfig, PitsDetector
from epnml.ml.imagery.tiling import box_iou

RECIPE_VERSION = "2.2.0"
needs_recipe_version = pytest.mark.skipif(RECIPE_VERSION not in available_versions(),
                                          reason="no committed craters 2.2.0 weights")


def _blob_runner(image: np.ndarray, scale: float) -> np.ndarray:
    """A stand-in detector: the box of the pixels above half the maximum (score 0.8)."""
    ys, xs = np.nonzero(image > image.max() / 2)
    return np.array([[xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0, 0, 0.8]])


def test_flipped_views_are_mapped_back_to_the_plain_image() -> None:
    img = np.zeros((40, 60), np.float32)
    img[5:12, 40:55] = 1.0  # off-centre, so a wrong un-flip lands elsewhere
    views, coarse = run_views(img, _blob_runner, 1.5, Recipe(flips=("h", "v", "hv")))
    assert coarse is None and len(views) == 4
    for v in views:
        np.testing.assert_allclose(v[0, :4], [40, 5, 55, 12])
    assert flip_image(img, "hv")[34, 19] == 1.0  # (y 5, x 40) seen from both sides
    np.testing.assert_allclose(unflip_boxes(np.array([[0, 0, 10, 4, 0, 1.0]]), "h", (40, 60)),
                               [[50, 0, 60, 4, 0, 1.0]])


def test_mean_merge_scores_what_the_views_agree_on() -> None:
    a = np.array([[10, 10, 20, 20, 0, 0.9], [50, 50, 60, 60, 0, 0.3]])
    b = np.array([[11, 10, 21, 20, 0, 0.6]])  # the first crater, shifted 1 px
    c = np.zeros((0, 6))  # this view saw nothing
    out = merge_views([a, b, c], "mean", 0.5)
    out = out[np.argsort(-out[:, 5])]
    np.testing.assert_allclose(out[:, 5], [(0.9 + 0.6) / 3, 0.3 / 3])
    np.testing.assert_allclose(out[0, :4], [10.4, 10, 20.4, 20])  # score-weighted box
    maxed = merge_views([a, b, c], "max", 0.5)  # NMS: the best view's box and score
    assert sorted(maxed[:, 5].tolist()) == [0.3, 0.9]
    # one detection per view per cluster: two boxes of the same view stay apart
    same = merge_views([np.array([[10, 10, 20, 20, 0, 0.9], [10, 10, 20, 20, 0, 0.5]]),
                        np.zeros((0, 6))], "mean", 0.5)
    assert len(same) == 2


def test_coarse_pass_only_contributes_large_craters() -> None:
    fine = np.array([[0, 0, 10, 10, 0, 0.5]])
    coarse = np.array([[100, 100, 108, 108, 0, 0.9],   # 8 px: not added
                       [200, 200, 260, 250, 0, 0.7],   # 55 px: added
                       [0, 0, 11, 10, 0, 0.95]])       # small, over a fine one: not added
    out = combine(fine, coarse, 40.0)
    assert sorted(map(tuple, out[:, [0, 5]].tolist())) == [(0.0, 0.5), (200.0, 0.7)]
    big_fine = np.array([[200, 200, 259, 250, 0, 0.4]])  # both see it: one box, best score
    out = combine(big_fine, coarse, 40.0)
    assert len(out) == 1 and out[0, 5] == 0.7
    r = Recipe(flips=("h", "v"), coarse_factor=0.5, coarse_min_px=40.0)
    assert r.passes == 3.25
    assert len(apply([fine], coarse, r)) == 2
    assert len(apply([fine], coarse, replace(r, coarse_factor=None))) == 2  # views as given


@pytest.mark.parametrize("bad, message", [
    ({"flips": ["x"]}, "recipe flips must be distinct"),
    ({"merge": "median"}, "recipe merge must be"),
    ({"coarse_factor": 2.0}, "recipe coarse_factor must be in (0, 1)"),
    ({"speed": 1}, "unknown recipe setting(s) speed"),
])
def test_bad_recipe_is_refused(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Recipe.from_dict(bad)


def _randomise_bn(module: nn.Module) -> None:
    g = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)  # type: ignore[union-attr]
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)  # type: ignore[union-attr]
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


@pytest.mark.parametrize("make", [lambda: CraterNet(CraterNetConfig()),
                                  lambda: PitsDetector(DetectorConfig(n_classes=1))])
def test_fused_equals_unfused(make: object) -> None:
    torch.manual_seed(0)
    net = make()  # type: ignore[operator]
    _randomise_bn(net)
    net.eval()
    fast = inference_copy(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # original untouched
    x = torch.randn(2, 1, 96, 128)
    with torch.inference_mode():
        a, b = net(x), fast(x)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-4)
    assert fold_batchnorm(fast) == 0  # nothing left to fold


@pytest.mark.skipif("2.1.0" not in available_versions(), reason="no craters 2.1.0 weights")
def test_fused_inference_path_gives_the_same_detections() -> None:
    """The committed ctx network on a real-looking synthetic tile: the inference path
    (fused, channels-last, one tile per call) finds what the plain network finds."""
    model = load_model("2.1.0")
    use = model.choose(5.5)
    rng = np.random.default_rng(1)
    img = rng.normal(0, 1, (300, 360)).astype(np.float32)
    yy, xx = np.mgrid[:300, :360]
    for cy, cx, r in ((80, 90, 12), (200, 250, 20), (150, 60, 7)):
        d = np.hypot(yy - cy, xx - cx) / r
        img += np.where(d < 1, -3 * (1 - d ** 2), 0) + np.where((d > 0.8) & (d < 1.2), 2, 0)
    plain = detect_craters_array(img, use.module, scale=use.input_scale, min_score=0.05)
    fast = detect_band(img, replace(use, recipe=None), min_score=0.05)
    assert len(plain) > 0
    assert len(fast) == len(plain)
    np.testing.assert_allclose(fast[np.argsort(-fast[:, 5])], plain[np.argsort(-plain[:, 5])],
                               atol=1e-3)


def test_recipe_is_stored_with_the_band() -> None:
    recipe = Recipe(flips=("h", "v"), coarse_factor=0.5).to_dict()
    net = BandedCraterNet(BandedConfig(bands=(
        band_dict("ctx", 1.0, 100.0, CraterNetConfig().to_dict(),
                  {"input_scale": 1.5, "threshold": 0.3, "recipe": recipe}, "t"),)))
    from epnml.ml.craters.bands import choose

    use = choose(net, {}, 5.5, "x")
    assert use.recipe == Recipe.from_dict(recipe)
    with pytest.raises(ValueError, match="recipe merge must be"):
        band_dict("ctx", 1.0, 100.0, CraterNetConfig().to_dict(),
                  {"input_scale": 1.5, "threshold": 0.3, "recipe": {"merge": "x"}}, "t")


@needs_recipe_version
def test_committed_2_2_0_is_2_1_0_networks_with_the_recipe() -> None:
    new, old = load_model(RECIPE_VERSION), load_model("2.1.0")
    a, b = new.module.state_dict(), old.module.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ctx = new.choose(5.5)
    assert ctx.recipe is not None and ctx.recipe.coarse_factor == 0.5
    assert old.choose(5.5).recipe is None
    mosaic_new, mosaic_old = new.choose(20_840.0), old.choose(20_840.0)
    assert mosaic_new.recipe is None
    assert (mosaic_new.threshold, mosaic_new.input_scale) == (mosaic_old.threshold,
                                                              mosaic_old.input_scale)
    card = json.loads((WEIGHTS_DIR / f"craters-{RECIPE_VERSION}.json").read_text())
    choice = card["bands"]["ctx"]["recipe_choice"]
    assert choice["tiles"] == ["MC11E-B", "MC11E-J"]  # chosen on validation tiles only
    assert card["inference"]["bands"]["ctx"]["recipe"] == ctx.recipe.to_dict()
    assert card["inference"]["bands"]["ctx"]["threshold"] == ctx.threshold \
        == choice["chosen"]["threshold"]


@needs_recipe_version
def test_continuation_from_a_banded_version_takes_its_ctx_network() -> None:
    from epnml.experiments.craters.train import initial_network

    net, text = initial_network(RECIPE_VERSION)
    ctx = load_model(RECIPE_VERSION).module.nets["ctx"]
    a, b = net.state_dict(), ctx.state_dict()
    assert isinstance(net, CraterNet) and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "nets.ctx" in text
    with pytest.raises(ValueError, match="not a 2.x"):
        initial_network("1.0.0")  # the pits-style network of the mosaics


@pytest.mark.parametrize("crop", ["100", "48"])
def test_training_crop_must_fit_the_network(crop: str, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    from epnml.experiments.craters.train import main

    with pytest.raises(SystemExit):
        main(["--version", "x", "--crop", crop])
    assert f"--crop {crop}: give a multiple of 16" in capsys.readouterr().err


@needs_recipe_version
def test_composed_ctx_network_runs_the_recipe_of_its_own_grid(tmp_path: Path) -> None:
    from epnml.experiments.craters.banded import compose

    src = load_model("2.0.0")  # a one-network 2.x checkpoint stands in for a new ctx run
    recipe = Recipe(flips=("h",), coarse_factor=0.5, coarse_min_px=30.0).to_dict()
    grid = {"sha256": src.info.sha256, "chosen": {"recipe": recipe, "threshold": 0.35}}
    card = compose("9.9.9", "2.0.0", "1.0.0", tmp_path, ctx_grid=grid)
    new = load_model(None, tmp_path / "craters-9.9.9.pt")
    use = new.choose(5.5)
    assert use.recipe == Recipe.from_dict(recipe) and use.threshold == 0.35
    assert card["bands"]["ctx"]["recipe_choice"] == grid and card["metrics"]["ctx"] is None
    assert new.choose(20_840.0).recipe is None
    with pytest.raises(ValueError, match="recipe grid was run on weights"):
        compose("9.9.8", "2.0.0", "1.0.0", tmp_path, ctx_grid={**grid, "sha256": "0" * 64})


@pytest.mark.skipif("2.3.0" not in available_versions(), reason="no committed craters 2.3.0")
def test_a_refit_keeps_the_recipe_of_the_version_it_continues(tmp_path: Path) -> None:
    """``--recipe-of``: the ctx band runs 2.3.0's recipe and threshold, recorded as kept
    (not re-chosen); with a grid as well, or from a version without one, it is refused."""
    from epnml.experiments.craters.banded import compose

    card = compose("9.9.7", "2.0.0", "1.0.0", tmp_path, recipe_of="2.3.0")
    use = load_model(None, tmp_path / "craters-9.9.7.pt").choose(5.5)
    want = load_model("2.3.0").choose(5.5)
    assert use.recipe == want.recipe and use.threshold == want.threshold
    assert card["bands"]["ctx"]["recipe_choice"]["from"] == "2.3.0"
    assert card["metrics"]["ctx"] is None and "--recipe-of 2.3.0" in card["command"]
    with pytest.raises(ValueError, match="not both"):
        compose("9.9.6", "2.0.0", "1.0.0", tmp_path, ctx_grid={}, recipe_of="2.3.0")
    with pytest.raises(ValueError, match="no ctx band with a recipe"):
        compose("9.9.6", "2.0.0", "1.0.0", tmp_path, recipe_of="2.1.0")


@pytest.mark.skipif("2.3.0" not in available_versions(), reason="no committed craters 2.3.0")
def test_committed_2_3_0_is_a_new_ctx_network_with_its_own_recipe() -> None:
    new, old = load_model("2.3.0"), load_model(RECIPE_VERSION)
    a = new.module.nets["ctx"].state_dict()
    b = old.module.nets["ctx"].state_dict()
    assert a.keys() == b.keys() and not all(torch.equal(a[k], b[k]) for k in a)
    card = json.loads((WEIGHTS_DIR / "craters-2.3.0.json").read_text())
    ctx = card["bands"]["ctx"]
    choice = ctx["recipe_choice"]
    # the grid ran on the very ctx network composed here, validation tiles only
    assert choice["sha256"] == ctx["source"]["sha256"]
    assert choice["tiles"] == ["MC11E-B", "MC11E-J"]
    use = new.choose(5.5)
    assert use.recipe == Recipe.from_dict(choice["chosen"]["recipe"])
    assert use.threshold == choice["chosen"]["threshold"]
    assert ctx["source"]["training"]["crop_px"] == 256
    # the declared adoption rule: validation F1 with the recipe above 2.2.0's
    base = json.loads((WEIGHTS_DIR / f"craters-{RECIPE_VERSION}.json").read_text())
    assert card["metrics"]["ctx"]["validation"]["consensus"]["f1"] > \
        base["metrics"]["ctx"]["validation"]["consensus"]["f1"]
    # the recipe band keeps its source's plain-pass metrics apart from its own
    assert ctx["source"]["metrics"]["validation"]["consensus"]["f1"] < \
        card["metrics"]["ctx"]["validation"]["consensus"]["f1"]


def _merge_every_candidate(views: list[np.ndarray], iou: float = 0.5) -> np.ndarray:
    """The mean merge written plainly: every unused box of every other view is a
    candidate (no spatial pre-selection)."""
    allv = np.concatenate(views)
    view = np.concatenate([np.full(len(v), k) for k, v in enumerate(views)])
    used = np.zeros(len(allv), bool)
    out = []
    for i in np.argsort(-allv[:, 5], kind="stable"):
        if used[i]:
            continue
        members, used[i] = [i], True
        for k in range(len(views)):
            cand = np.flatnonzero((view == k) & ~used)
            if k == view[i] or not cand.size:
                continue
            ov = box_iou(allv[i:i + 1, :4], allv[cand, :4])[0]
            if ov.max() >= iou:
                members.append(int(cand[np.argmax(ov)]))
                used[cand[np.argmax(ov)]] = True
        m = allv[members]
        w = m[:, 5] / m[:, 5].sum()
        out.append([*(w @ m[:, :4]), m[0, 4], m[:, 5].sum() / len(views)])
    return np.asarray(out, float).reshape(-1, 6)


@pytest.mark.parametrize("seed", range(3))
def test_mean_merge_equals_the_every_candidate_rule(seed: int) -> None:
    """Looking only at intersecting boxes changes no merged detection: crowded views of
    shifted copies with tied scores, a view that saw nothing."""
    rng = np.random.default_rng(seed)
    n = 250
    size = rng.uniform(3, 60, n)
    x0, y0 = rng.uniform(0, 800, n), rng.uniform(0, 800, n)
    base = np.column_stack([x0, y0, x0 + size, y0 + size, np.zeros(n), np.zeros(n)])
    views = []
    for _ in range(3):
        v = base + np.column_stack([rng.normal(0, 2, (n, 4)), np.zeros(n),
                                    np.round(rng.uniform(0.1, 1.0, n), 1)])
        views.append(v[rng.random(n) < 0.8])
    views.append(np.zeros((0, 6)))
    for iou in (0.5, 0.3):
        got, want = merge_views(views, "mean", iou), _merge_every_candidate(views, iou)
        assert len(want) < sum(map(len, views))
        np.testing.assert_array_equal(got, want)
