"""Pits 2.x: the ImageNet-pretrained pyramid (craters.net.CraterNet, five heatmaps) behind
the pits loader, its float16 checkpoint, cross-validation folds, and the committed 2.0.0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from epnml.experiments.pits.train import RECIPES, Crop, observation_folds
from epnml.ml.craters.net import CraterNet, CraterNetConfig, runnable
from epnml.ml.pits.inference import (
    BATCH,
    WEIGHTS_DIR,
    detect,
    detect_array,
    load_model,
    save_checkpoint,
    stored_precision,
)
from tests.fixtures.make_pits_fixtures import PITS, terrain


def test_pretrained_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = CraterNet(CraterNetConfig(n_classes=5, fpn=8, head=8)).eval()  # no ImageNet file
    stored_precision(module)
    pt = tmp_path / "pits-0.0.2.pt"
    digest = save_checkpoint(pt, module, "0.0.2", {"input_scale": 0.35, "threshold": 0.2})
    pt.with_suffix(".json").write_text(json.dumps({"version": "0.0.2", "sha256": digest}))
    model = load_model(path=tmp_path)
    assert isinstance(model.module, CraterNet) and model.module.config.n_classes == 5
    assert model.input_scale == 0.35 and model.threshold == 0.2
    for key, value in module.state_dict().items():  # float16 on disk = the rounded weights
        assert torch.equal(model.module.state_dict()[key], value), key
    image = terrain().astype(np.float32)
    fast, batch = runnable(model.module, BATCH)
    assert batch == 1 and fast is not model.module
    plain = detect_array(image, model.module, scale=0.35, min_score=0.0)
    fused = detect_array(image, fast, scale=0.35, min_score=0.0, batch=1)
    assert plain.shape == fused.shape and np.allclose(plain, fused, atol=1e-3)
    out = detect(image, model, threshold=0.01)
    assert list(out.columns) == ["x_min", "y_min", "x_max", "y_max", "class", "score"]
    assert out["class"].between(1, 5).all()


def test_observation_folds_never_share_an_observation() -> None:
    rng = np.random.default_rng(3)
    crops = [Crop(f"c{i}", f"OBS_{i // 2}", np.zeros((8, 8), np.float32),
                  np.array([[k, 0, 0, 4, 4] for k in rng.permutation(5)[:3]], float))
             for i in range(40)]
    folds = observation_folds(crops, 3, seed=1, tries=200)
    assert len(folds) == 3 and sum(len(f) for f in folds) == 20
    assert not (set(folds[0]) & set(folds[1])) and not (set(folds[1]) & set(folds[2]))
    assert set().union(*folds) == {c.observation for c in crops}


def test_recipes_build_their_networks() -> None:
    assert set(RECIPES) == {"scratch", "lite0-s50", "lite0-s35"}
    net = RECIPES["lite0-s35"].build(pretrained=False)
    assert isinstance(net, CraterNet) and net.config.n_classes == 5
    frozen = {id(p) for m in net.frozen_modules() for p in m.parameters()}
    assert frozen and all(not p.requires_grad for p in net.parameters() if id(p) in frozen)


def test_committed_2_0_0_loads_and_predicts_on_a_synthetic_chip() -> None:
    model = load_model("2.0.0")
    assert isinstance(model.module, CraterNet)
    assert (WEIGHTS_DIR / "pits-2.0.0.pt").stat().st_size < 3_000_000
    card = json.loads((WEIGHTS_DIR / "pits-2.0.0.json").read_text())
    assert card["sha256"] == model.info.sha256 and model.input_scale == card["inference"][
        "input_scale"]
    found = detect(terrain(), model, threshold=0.05)
    assert list(found.columns) == ["x_min", "y_min", "x_max", "y_max", "class", "score"]
    assert found["class"].between(1, 5).all() and (found["score"] >= 0.05).all()
    assert ((found["x_min"] >= 0) & (found["x_max"] <= 256)).all()
    for x, y, _ in PITS:  # every drawn pit inside a box (scores 0.61-0.79 at commit time)
        inside = found[(found.x_min <= x) & (x <= found.x_max) & (found.y_min <= y)
                       & (y <= found.y_max)]
        assert len(inside) and inside["score"].max() > 0.5, (x, y)
