"""Craters 2.x: the pretrained EfficientNet-Lite0 backbone, the CTX-tile evaluation rules
and the committed 2.0.0 weights (issue #14)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from epnml.experiments.craters.evaluate import (
    TEST_TILES,
    TRAIN_TILES,
    VAL_TILES,
    cluster,
    count_matches,
    load_tile,
    prf,
    read_voc,
)
from epnml.ml.backbone import (
    EfficientNetLite0,
    load_pretrained,
    pretrained_path,
    pretrained_state_dict,
)
from epnml.ml.craters.inference import WEIGHTS_DIR, available_versions, load_model
from epnml.ml.craters.net import CraterNet, CraterNetConfig


def test_backbone_loads_every_imagenet_key_and_classifies() -> None:
    torch.manual_seed(0)
    state = pretrained_state_dict()
    assert pretrained_path().name == "efficientnet-lite0-57934424.pth"
    model = EfficientNetLite0()
    result = model.load_state_dict(state, strict=True)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    assert len(model.state_dict()) == len(state) == 296
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    model.eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(2, 3, 224, 224)).shape) == (2, 1000)
        feats = model.features(torch.randn(1, 3, 64, 96))
    assert {s: tuple(f.shape) for s, f in feats.items()} == {
        4: (1, 24, 16, 24), 8: (1, 40, 8, 12), 16: (1, 112, 4, 6)}


def test_truncated_backbone_takes_exactly_its_keys() -> None:
    small = load_pretrained(EfficientNetLite0(n_blocks=11))
    state = pretrained_state_dict()
    keys = set(small.state_dict())
    assert len(keys) == 6 + 12 + 10 * 18  # stem, block 0 (no expansion), blocks 1-10
    assert not any(k.startswith(("_blocks.11.", "_conv_head", "_fc")) for k in keys)
    assert all(torch.equal(small.state_dict()[k], state[k]) for k in keys)
    with pytest.raises(ValueError, match="no classifier"):
        small(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="n_blocks must be in 1..16, got 17"):
        EfficientNetLite0(n_blocks=17)


def test_crater_net_outputs_and_frozen_stages() -> None:
    net = CraterNet(CraterNetConfig(), pretrained=True)
    frozen = {id(p) for m in net.frozen_modules() for p in m.parameters()}
    assert all(not p.requires_grad for p in net.parameters() if id(p) in frozen)
    assert all(p.requires_grad for p in net.parameters() if id(p) not in frozen)
    net.train()
    assert not any(m.training for m in net.backbone.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 1, 64, 128))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "heatmap": (2, 1, 16, 32), "size": (2, 2, 16, 32), "offset": (2, 2, 16, 32)}
    with pytest.raises(ValueError, match="unknown crater network architecture 'x'"):
        CraterNet(CraterNetConfig(arch="x"))


def test_f1_matching_is_one_to_one_at_iou_half() -> None:
    ref = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 56, 56]], float)
    pred = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [22, 22, 32, 32], [100, 100, 110, 110]],
                    float)
    # the duplicate of crater 0 and the shifted one (IoU 0.47 < 0.5) do not count
    assert count_matches(pred, np.array([0.9, 0.8, 0.7, 0.6]), ref) == 1
    assert count_matches(pred, None, ref) == 1
    assert prf(1, 4, 3) == {"precision": 0.25, "recall": 0.3333, "f1": 0.2857, "tp": 1,
                            "n_pred": 4, "n_ref": 3}


def test_cluster_one_annotator_at_most_once() -> None:
    a = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], float)  # one annotator, two near boxes
    b = np.array([[0, 0, 10, 10]], float)
    c = np.array([[40, 40, 50, 50]], float)
    boxes, support = cluster([a, b, c])
    assert support.tolist() == [2, 1, 1]
    assert boxes[0].tolist() == [0.0, 0.0, 10.0, 10.0]
    assert boxes[2].tolist() == [40.0, 40.0, 50.0, 50.0]


def test_read_voc_bad_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "tile.xml"
    bad.write_text("<annotation><object>")
    with pytest.raises(ValueError, match=r"^tile.xml: not a Pascal-VOC XML file"):
        read_voc(bad)


def test_tile_split_is_disjoint_and_covers_the_eight_tiles() -> None:
    names = [*TRAIN_TILES, *VAL_TILES, *TEST_TILES]
    assert sorted(names) == [f"MC11E-{c}" for c in "ABCEGHIJ"]


def test_real_tile_consensus_and_annotators(shared_data: Path) -> None:
    tile = load_tile("MC11E-B", shared_data / "images" / "ctx_craters")
    assert tile.pixels.shape == (2000, 2000)
    assert len(tile.consensus) == 196
    assert np.bincount(tile.confidence).tolist() == [0, 47, 31, 14, 16, 19, 69]
    assert sorted(len(b) for b in tile.annotators.values()) == [88, 90, 93, 125, 151, 177]


def test_committed_2_0_0_and_1_0_0_stay_loadable() -> None:
    # 2.1.0: banded; 2.2.0: the same networks with the ctx band's test-time recipe;
    # 2.3.0: a new ctx network (crop-256 continuation) with its own recipe
    assert available_versions()[-5:] == ["1.0.0", "2.0.0", "2.1.0", "2.2.0", "2.3.0"]
    model = load_model("2.0.0")
    assert model.info.version == "2.0.0"
    assert isinstance(model.module, CraterNet)
    assert load_model("1.0.0").info.version == "1.0.0"
    card = json.loads((WEIGHTS_DIR / "craters-2.0.0.json").read_text())
    assert card["split"]["test"] == list(TEST_TILES)
    assert card["data"]["simulated"] is False
    assert 0.0 < card["inference"]["threshold"] < 1.0
    assert set(card["metrics"]) >= {"validation", "test", "threshold"}


@pytest.mark.parametrize("version", ["2.0.0", "2.1.0", "2.2.0", "2.3.0"])
def test_committed_crater_manifest(version: str) -> None:
    """ml/datasets/craters-<v>.json: one sample per consensus crater, split by tile, the
    annotators' agreement in the quality report (the figures of the model card)."""
    from epnml.datasets.manifest import read_manifest

    m = read_manifest(WEIGHTS_DIR.parent / "datasets" / f"craters-{version}.json")
    assert m.counts() == {"train": 2356, "validation": 364, "test": 594}
    q = m.quality
    assert q["tiles"] == {"train": list(TRAIN_TILES), "validation": list(VAL_TILES),
                          "test": list(TEST_TILES)}
    assert {s.obs_id for s in m.samples if s.split == "test"} == set(TEST_TILES)
    assert q["duplicates_across_splits"]["n_groups"] == 0
    agree = q["label_agreement"]["per_split"]
    assert agree["test"]["support_ge1"]["pooled"]["f1"] == 0.6118
    assert agree["validation"]["support_ge2"]["pooled"]["f1"] == 0.6939
    assert q["per_tile"]["MC11E-B"]["by_support"] == {"1": 47, "2": 31, "3": 14, "4": 16,
                                                      "5": 19, "6": 69}


def test_default_version_reproduces_its_card_on_a_real_validation_tile(shared_data: Path
                                                                        ) -> None:
    """The default (newest) version, through the stage's band choice, recipe and threshold,
    finds on the real validation tile MC11E-B what its card says it found there (test tiles
    are never read by tests)."""
    from epnml.experiments.craters.evaluate import PIXEL_M, scores_at
    from epnml.ml.craters.inference import MIN_SCORE, detect_band

    version = available_versions()[-1]
    model = load_model()
    assert model.info.version == version
    card = json.loads((WEIGHTS_DIR / f"craters-{version}.json").read_text())
    expected = card["metrics"]["ctx"]["validation"]["per_tile"]["MC11E-B"]
    use = model.choose(PIXEL_M)
    tile = load_tile("MC11E-B", shared_data / "images" / "ctx_craters")
    found = detect_band(tile.pixels, use, min_score=MIN_SCORE)
    got = scores_at([tile], [found], float(use.threshold))
    assert got["n_ref"] == expected["n_ref"] == 196
    # float sums may differ with the thread count: at most one crater either side
    assert abs(got["n_pred"] - expected["n_pred"]) <= 1
    assert abs(got["tp"] - expected["tp"]) <= 1
    assert got["f1"] == pytest.approx(expected["f1"], abs=0.01)


@pytest.mark.parametrize("kernel,stride", [(1, 1), (3, 1), (5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("size", [(31, 32), (64, 64), (45, 50)])
def test_same_conv_equals_explicit_tensorflow_padding(kernel: int, stride: int,
                                                     size: tuple[int, int]) -> None:
    """Symmetric "same" padding goes to the convolution itself (no padded copy); the
    result is the explicit TensorFlow padding's, odd and even sizes alike."""
    import math

    from torch.nn import functional as F

    from epnml.ml.backbone import SameConv2d

    torch.manual_seed(0)
    conv = SameConv2d(4, 6, kernel, stride, bias=True)
    x = torch.randn(2, 4, *size)
    pads = []
    for n in size:
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    want = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, conv.bias, stride)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), want, rtol=1e-5, atol=1e-5)


def test_backbone_in_place_activations_keep_gradients() -> None:
    """The in-place ReLU6 of the blocks leaves training's gradients intact: equal to a
    copy of the network run with out-of-place activations."""
    from epnml.ml.backbone import MBConv

    torch.manual_seed(1)
    block = MBConv(16, 16, 3, 1, 6).train()
    x = torch.randn(2, 16, 12, 12, requires_grad=True)
    block(x).square().sum().backward()
    got = (x.grad.clone(), block._expand_conv.weight.grad.clone())

    def plain(m: MBConv, inp: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        y = F.relu6(m._bn1(m._depthwise_conv(F.relu6(m._bn0(m._expand_conv(inp))))))
        return inp + m._bn2(m._project_conv(y))

    x.grad, block._expand_conv.weight.grad = None, None
    plain(block, x).square().sum().backward()
    assert x.grad is not None and block._expand_conv.weight.grad is not None
    torch.testing.assert_close(got[0], x.grad)
    torch.testing.assert_close(got[1], block._expand_conv.weight.grad)
