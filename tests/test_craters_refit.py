"""Craters: training on another set of non-test tiles, a refit without validation tiles, and
the one-more-tile experiment's arms (issue #14). Never a test tile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epnml.experiments.craters.datasize import ARMS, pooled
from epnml.experiments.craters.evaluate import TEST_TILES, TRAIN_TILES, VAL_TILES, Tile, prf
from epnml.experiments.craters.train import main, tile_split, train
from epnml.ml.craters.net import CraterNet, CraterNetConfig


def test_tile_split_defaults_and_choices() -> None:
    assert tile_split(None, None) == (TRAIN_TILES, VAL_TILES)
    assert tile_split("MC11E-A,MC11E-B", "MC11E-J") == (("MC11E-A", "MC11E-B"), ("MC11E-J",))
    assert tile_split(",".join((*TRAIN_TILES, *VAL_TILES)), "") == (
        (*TRAIN_TILES, *VAL_TILES), ())


@pytest.mark.parametrize(("train_names", "val_names", "message"), [
    (f"MC11E-A,{TEST_TILES[0]}", None, "test tile"),
    (None, TEST_TILES[1], "test tile"),
    ("MC11E-A,MC11E-Z", None, "unknown tile"),
    ("MC11E-A,MC11E-B", "MC11E-B", "both sides"),
    ("MC11E-A,MC11E-A", None, "named twice"),
    ("", None, "at least one"),
])
def test_tile_split_refuses(train_names: str | None, val_names: str | None,
                            message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tile_split(train_names, val_names)


@pytest.mark.parametrize("args", [
    ["--val-tiles", ""],                          # a refit needs the threshold chosen before
    ["--threshold", "0.4"],                       # ... and only a refit takes one
    ["--val-tiles", "", "--threshold", "1.5"],
    ["--train-tiles", TEST_TILES[0]],
])
def test_cli_refuses_inconsistent_refit_flags(args: list[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version", "0.0.0", *args])


def _tiny_tile() -> Tile:
    rng = np.random.default_rng(0)
    pixels = rng.normal(100, 10, (96, 96)).astype(np.float32)
    boxes = np.array([[20, 20, 32, 32], [50, 60, 70, 80]], float)
    for x0, y0, x1, y1 in boxes.astype(int):
        pixels[y0:y1, x0:x1] -= 40
    return Tile("tiny", pixels, boxes, np.array([6, 3]))


def test_refit_keeps_the_last_step_and_the_given_threshold() -> None:
    torch.manual_seed(0)
    net = CraterNet(CraterNetConfig(), pretrained=False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    module, log = train([_tiny_tile()], [], 2, 0, init=net, eval_every=1, crop=64,
                        threshold=0.425)
    assert log["best_step"] == 2 and log["threshold"] == 0.425 and log["history"] == []
    assert log["val_f1_at_selection"] is None and "last step" in log["selection"]
    changed = [k for k, v in module.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed  # it trained
    with pytest.raises(ValueError, match="threshold"):
        train([_tiny_tile()], [], 1, 0, init=net, crop=64)
    with pytest.raises(ValueError, match="steps"):
        train([_tiny_tile()], [], 0, 0, init=net, crop=64, threshold=0.4)


def test_datasize_arms_hold_out_a_tile_each_and_never_a_test_tile() -> None:
    for name, (train_names, held_out) in ARMS.items():
        assert not set(train_names) & set(held_out), name
        assert not set((*train_names, *held_out)) & set(TEST_TILES), name
        assert set(held_out) <= set(VAL_TILES), name
    assert ARMS["control"][0] == TRAIN_TILES
    assert pooled([prf(3, 5, 10), prf(1, 5, 2)]) == prf(4, 10, 12)
