"""Pits detector: shapes, decoding, tiling + NMS, mAP on hand-made boxes, checkpoints."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from epnml.experiments.pits.evaluate import average_precision, evaluate
from epnml.ml.imagery.detector import DetectorConfig, PitsDetector, decode, n_parameters
from epnml.ml.imagery.tiling import iter_tiles, nms, tile_starts, to_image
from epnml.ml.pits.inference import (
    WEIGHTS_DIR,
    available_versions,
    detect,
    load_model,
    save_checkpoint,
)


def test_detector_output_shapes() -> None:
    module = PitsDetector().eval()
    with torch.inference_mode():
        out = module(torch.zeros(2, 1, 128, 96))
    assert out["heatmap"].shape == (2, 5, 32, 24)
    assert out["size"].shape == (2, 2, 32, 24) and out["offset"].shape == (2, 2, 32, 24)
    assert n_parameters(module) * 4 < 3_000_000  # float32 weights under 3 MB


def test_decode_recovers_a_box() -> None:
    h = torch.full((1, 5, 16, 16), -10.0)
    h[0, 2, 5, 7] = 5.0  # class index 2, cell x=7, y=5
    size = torch.zeros(1, 2, 16, 16)
    size[0, :, 5, 7] = torch.tensor([math.log(5.0), math.log(2.5)])
    off = torch.zeros(1, 2, 16, 16)
    off[0, :, 5, 7] = torch.tensor([0.5, 0.25])
    (dets,) = decode({"heatmap": h, "size": size, "offset": off}, stride=4, threshold=0.5)
    assert dets.shape == (1, 6)
    cx, cy = (7 + 0.5) * 4, (5 + 0.25) * 4
    assert dets[0, :4] == pytest.approx([cx - 10, cy - 5, cx + 10, cy + 5], abs=1e-4)
    assert dets[0, 4] == 2 and dets[0, 5] == pytest.approx(1 / (1 + math.exp(-5)), abs=1e-5)


def test_tiles_cover_the_image_with_overlap() -> None:
    starts = tile_starts(1300, 512, 128)
    assert starts[0] == 0 and starts[-1] == 1300 - 512
    assert all(b - a <= 512 - 128 for a, b in zip(starts, starts[1:], strict=False))
    assert tile_starts(300, 512, 128) == [0]
    img = np.random.default_rng(1).normal(size=(700, 1000)).astype(np.float32)
    rebuilt = np.full_like(img, np.nan)
    for y0, x0, tile in iter_tiles(img, 512, 128):
        assert tile.shape == (512, 512)
        rebuilt[y0:y0 + 512, x0:x0 + 512] = tile
    assert np.array_equal(rebuilt, img)  # round trip: every pixel, at its place


def test_nms_merges_duplicates_across_a_tile_border() -> None:
    # one pit at image x 480..540 (across the border of tiles starting at 0 and 384),
    # seen whole by both tiles and truncated by the first; another class nearby stays
    left = np.array([[480, 100, 540, 160, 1, 0.9], [480, 100, 512, 160, 1, 0.4]])
    right = np.array([[96, 101, 157, 161, 1, 0.8], [90, 100, 150, 160, 4, 0.7]])
    dets = np.concatenate([to_image(left, 0, 0), to_image(right, 384, 0)])
    kept = nms(dets, 0.5)
    assert len(kept) == 2
    assert kept[0, 5] == 0.9 and kept[0, 4] == 1
    assert kept[1, 4] == 4  # class-aware: the other class is not suppressed


def test_nms_keeps_a_small_crater_inside_a_large_one() -> None:
    dets = np.array([[0, 0, 200, 200, 4, 0.9], [90, 90, 110, 110, 4, 0.8]])
    assert len(nms(dets)) == 2


def test_to_image_undoes_scale_and_offset() -> None:
    out = to_image(np.array([[10, 20, 30, 40, 0, 0.5]]), 100, 50, scale=0.5, shape=(300, 400))
    assert out[0, :4].tolist() == [220, 140, 260, 180]


def test_map_on_hand_made_boxes() -> None:
    gt = [np.array([[0, 0, 0, 10, 10], [0, 20, 20, 30, 30]])]
    one_hit = [np.array([[0, 0, 10, 10, 0, 0.9]])]
    assert average_precision(one_hit, gt, 0, 0.5) == pytest.approx(51 / 101)
    fp_first = [np.array([[50, 50, 60, 60, 0, 0.9], [0, 0, 10, 10, 0, 0.8],
                          [20, 20, 30, 30, 0, 0.7]])]
    # precision 1/2 at recall 0.5, 2/3 at recall 1: envelope 2/3 everywhere
    assert average_precision(fp_first, gt, 0, 0.5) == pytest.approx(2 / 3)
    # IoU 0.64 (8x10 box in 10x10 ... shifted): a hit at 0.5 and 0.6, a miss from 0.65 on
    shifted = [np.array([[0, 0, 10, 10, 0, 0.9], [20, 20, 30, 30, 0, 0.8]])]
    shifted[0][1, :4] = [22, 20, 30, 30]  # IoU 0.8 with the second box
    res = evaluate(shifted, gt)
    first = res["per_class"]["Type-1 skylight"]
    assert first["AP50"] == pytest.approx(1.0)
    assert first["AP50-95"] == pytest.approx((7 * 1.0 + 3 * 51 / 101) / 10, abs=1e-4)
    assert res["mAP50"] == pytest.approx(1.0)  # only classes with ground truth count
    assert res["per_class"]["Type-5 impact crater"]["AP50"] is None
    assert average_precision([np.zeros((0, 6))], gt, 0, 0.5) == 0.0


def _tiny_checkpoint(folder: Path, version: str = "0.0.1") -> Path:
    torch.manual_seed(0)
    module = PitsDetector(DetectorConfig(widths=(4, 8, 8, 8, 8), fpn=8, head=8))
    pt = folder / f"pits-{version}.pt"
    digest = save_checkpoint(pt, module, version, {"input_scale": 0.5, "threshold": 0.3})
    pt.with_suffix(".json").write_text(json.dumps({"version": version, "sha256": digest}))
    return pt


def test_load_model_verifies_checksum(tmp_path: Path) -> None:
    pt = _tiny_checkpoint(tmp_path)
    model = load_model(path=tmp_path)
    assert model.info.name == "pits" and model.info.version == "0.0.1"
    assert available_versions(tmp_path) == ["0.0.1"]
    out = detect(np.random.default_rng(0).random((100, 140)), model, threshold=0.5)
    assert list(out.columns) == ["x_min", "y_min", "x_max", "y_max", "class", "score"]
    data = bytearray(pt.read_bytes())
    data[-10] ^= 0xFF
    pt.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match"):
        load_model(path=tmp_path)
    pt.with_suffix(".json").unlink()
    with pytest.raises(ValueError, match="missing"):
        load_model(path=pt)
    with pytest.raises(ValueError, match="unknown pits model version"):
        load_model("9.9.9", path=tmp_path)


def test_detect_rejects_bad_threshold(tmp_path: Path) -> None:
    _tiny_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="threshold"):
        detect(np.zeros((64, 64)), load_model(path=tmp_path), threshold=1.0)


@pytest.mark.skipif(not available_versions(), reason="no committed pits weights")
def test_committed_weights_load_and_are_small() -> None:
    model = load_model()
    assert (WEIGHTS_DIR / f"pits-{model.info.version}.pt").stat().st_size < 3_000_000
    assert 0.0 < model.threshold < 1.0


@pytest.mark.shared_data
@pytest.mark.parametrize(("version", "name", "part"), [
    ("1.0.0", "ESP_054703_2225_RED_print_H0_V0__crop_cropped.jpg", "test"),
    # 2.0.0 finds nothing above its threshold in the 1.0.0 crop (card); a validation crop
    ("2.0.0", "ESP_016213_1720_RED_print_H3_V0__crop_cropped.jpg", "validation"),
])
def test_committed_model_finds_a_pit_on_a_real_held_out_crop(
        shared_data: Path, tmp_path: Path, version: str, name: str, part: str) -> None:
    from epnml.ingest.readers.images import read_image, read_yolo_labels
    from epnml.ml.imagery.tiling import box_iou

    model = load_model(version)
    card = json.loads((WEIGHTS_DIR / f"pits-{model.info.version}.json").read_text())
    root = shared_data / "images" / "hirise_pits"
    assert name.split("_RED")[0] in card["split"][part]["observations"]  # held out
    img = read_image(root / "images" / name)
    gt = read_yolo_labels(root / "labels" / name.replace(".jpg", ".txt"), 900, 900)
    found = detect(img.pixels, model)
    pits = gt[gt["class"] == 1][["x_min", "y_min", "x_max", "y_max"]].to_numpy()
    hits = found[found["class"] == 2]
    assert len(hits), f"no Type-2 pit found in {name}: {found}"
    iou = box_iou(hits[["x_min", "y_min", "x_max", "y_max"]].to_numpy(), pits)
    assert iou.max() >= 0.5
    shutil.rmtree(tmp_path, ignore_errors=True)



def test_test_figures_are_written_into_a_card_once(tmp_path: Path) -> None:
    """``evaluate --final-test --write-card``: the first look is stored with its time, a
    second is refused and leaves the card as it was."""
    from epnml.experiments.pits.evaluate import write_test_metrics

    card = tmp_path / "pits-9.9.9.json"
    card.write_text(json.dumps({"version": "9.9.9", "metrics": {"validation": {"mAP50": 0.3}}}))
    write_test_metrics(card, {"mAP50": 0.25}, "2026-12-01T16:00:00Z")
    stored = json.loads(card.read_text())
    assert stored["metrics"]["test"] == {"mAP50": 0.25, "scored": "2026-12-01T16:00:00Z"}
    assert stored["metrics"]["validation"] == {"mAP50": 0.3}
    before = card.read_text()
    with pytest.raises(ValueError, match="already scored"):
        write_test_metrics(card, {"mAP50": 0.9}, "2026-12-01T17:00:00Z")
    assert card.read_text() == before


@pytest.mark.parametrize("args", [["--write-card"], ["--final-test", "--validation-only"]])
def test_evaluate_refuses_inconsistent_test_flags(args: list[str]) -> None:
    from epnml.experiments.pits.evaluate import main

    with pytest.raises(SystemExit):
        main(["--weights", "1.0.0", *args])


def _nms_every_pair(dets: np.ndarray, iou_threshold: float = 0.5, containment: float = 0.8,
                    min_area_ratio: float = 0.25) -> np.ndarray:
    """The greedy NMS rule written plainly, every box against every later box."""
    dets = dets[np.argsort(-dets[:, 5], kind="stable")]
    alive = np.ones(len(dets), dtype=bool)
    for i in range(len(dets)):
        if not alive[i]:
            continue
        for j in range(i + 1, len(dets)):
            if not alive[j] or dets[j, 4] != dets[i, 4]:
                continue
            a, b = dets[i, :4], dets[j, :4]
            ix = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
            iy = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
            area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
            area_b = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
            iou = ix * iy / union if union > 0 else 0.0
            covered = ix * iy / (area_b if area_b > 0 else 1.0)
            if iou > iou_threshold or (covered > containment and area_b > min_area_ratio * area_a):
                alive[j] = False
    return dets[alive]


@pytest.mark.parametrize("seed", range(5))
def test_nms_equals_the_every_pair_rule(seed: int) -> None:
    """The bisection that skips boxes too far left or right to intersect changes nothing:
    crowded, nested, tiny, huge and multi-class boxes, with tied scores."""
    rng = np.random.default_rng(seed)
    n = 400
    size = np.where(rng.random(n) < 0.1, rng.uniform(100, 400, n), rng.uniform(3, 40, n))
    x0, y0 = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
    dets = np.column_stack([x0, y0, x0 + size * rng.uniform(0.7, 1.3, n), y0 + size,
                            rng.integers(0, 3, n), np.round(rng.random(n), 2)])
    dets = np.concatenate([dets, dets[:50] + [2, 1, 2, 1, 0, 0]])  # near-duplicates
    for thr in (0.3, 0.5, -1.0):  # a negative threshold drops every later box of a class
        got, want = nms(dets, thr), _nms_every_pair(dets, thr)
        assert 0 < len(got) < len(dets)
        np.testing.assert_array_equal(got[np.lexsort(got.T)], want[np.lexsort(want.T)])


@pytest.mark.parametrize("tall", [False, True])
def test_intersecting_pairs_are_every_intersecting_pair(tall: bool) -> None:
    """The sweep finds exactly the pairs a plain double loop finds, along either axis
    (a tall strip sweeps in y) and across chunk borders (``block`` small)."""
    from epnml.ml.imagery.tiling import intersecting_pairs

    rng = np.random.default_rng(7)
    n = 300
    size = np.where(rng.random(n) < 0.1, rng.uniform(50, 200, n), rng.uniform(1, 30, n))
    x0, y0 = rng.uniform(0, 500, n), rng.uniform(0, 5000 if tall else 500, n)
    boxes = np.column_stack([x0, y0, x0 + size, y0 + size * rng.uniform(0.5, 2, n)])
    boxes[:20] = boxes[20:40]  # identical boxes
    boxes[40:45, 2] = boxes[40:45, 0]  # zero width: intersects nothing
    want = [(i, j) for i in range(n) for j in range(i + 1, n)
            if min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) > 0
            and min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) > 0]
    for block in (1_000_000, 37, 1):
        i, j = intersecting_pairs(boxes, block=block)
        assert list(zip(i.tolist(), j.tolist(), strict=True)) == want
    assert [len(a) for a in intersecting_pairs(boxes[:1])] == [0, 0]
