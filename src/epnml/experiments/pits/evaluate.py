"""mAP of the pits detector on observation-held-out HiRISE crops (COCO-style).

COCO definitions: greedy matching by score to the best-IoU unmatched ground truth of
the same class and image, all-point precision envelope, 101 recall points
(0, 0.01, .., 1); AP50 at IoU 0.5, AP50-95 the mean over IoU 0.50:0.05:0.95; the mean
is over classes present in the ground truth. Run::

    python -m epnml.experiments.pits.evaluate --weights 2.0.0               # validation
    python -m epnml.experiments.pits.evaluate --path RUN/pits-V.pt --final-test --write-card
    python -m epnml.experiments.pits.evaluate --path /tmp/pits_leaky/pits-0.0.0-leaky.pt \
        --final-test

It re-detects the crops named in the model card (split by HiRISE observation, or the crop
list of a ``--split leaky`` comparison model). The test crops are read only with
``--final-test``: training scores validation alone, and the test figure of frozen weights
is written into their card once (``--write-card`` refuses a card that has one already).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from epnml.ml.imagery.detector import CLASS_NAMES
from epnml.ml.imagery.tiling import box_iou

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
#: Nodjoumi et al. 2023, YOLOv8n on its (crop-level, leaky) validation images.
REFERENCE = {"mAP50": 0.749, "mAP50-95": 0.591,
             "source": "Nodjoumi et al. 2023 (doi:10.1029/2022EA002278), YOLOv8n, "
                       "validation crops of the same observations as training"}


def average_precision(dets: Sequence[np.ndarray], gts: Sequence[np.ndarray], cls: int,
                      iou_threshold: float, max_dets: int = 100) -> float | None:
    """COCO 101-point AP of one class; None when the class has no ground truth.

    ``dets[i]``: ``(n, 6)`` x_min, y_min, x_max, y_max, class, score of image i;
    ``gts[i]``: ``(m, 5)`` class, x_min, y_min, x_max, y_max of image i.
    """
    scores: list[float] = []
    hits: list[bool] = []
    n_pos = 0
    for d, g in zip(dets, gts, strict=True):
        d = np.asarray(d, dtype=float).reshape(-1, 6)
        g = np.asarray(g, dtype=float).reshape(-1, 5)
        d = d[d[:, 4] == cls]
        d = d[np.argsort(-d[:, 5], kind="stable")][:max_dets]
        g = g[g[:, 0] == cls, 1:5]
        n_pos += len(g)
        used = np.zeros(len(g), dtype=bool)
        iou = box_iou(d[:, :4], g) if len(g) and len(d) else np.zeros((len(d), len(g)))
        for k in range(len(d)):
            cand = np.where(used, -1.0, iou[k]) if len(g) else np.zeros(0)
            j = int(np.argmax(cand)) if cand.size else -1
            ok = j >= 0 and cand[j] >= iou_threshold
            if ok:
                used[j] = True
            scores.append(float(d[k, 5]))
            hits.append(bool(ok))
    if n_pos == 0:
        return None
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    tp = np.cumsum(np.asarray(hits)[order])
    fp = np.cumsum(~np.asarray(hits)[order])
    recall = tp / n_pos
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # envelope
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(q.mean())


def evaluate(dets: Sequence[np.ndarray], gts: Sequence[np.ndarray],
             n_classes: int = len(CLASS_NAMES)) -> dict[str, Any]:
    """Per-class AP50 and AP50-95 and their means over classes with ground truth."""
    per_class: dict[str, dict[str, float | int | None]] = {}
    ap50s, aps = [], []
    for c in range(n_classes):
        n_gt = int(sum(int((np.asarray(g).reshape(-1, 5)[:, 0] == c).sum()) for g in gts))
        ap_t = [average_precision(dets, gts, c, t) for t in IOU_THRESHOLDS]
        ap50 = ap_t[0]
        ap = None if ap50 is None else float(np.mean([a for a in ap_t if a is not None]))
        per_class[CLASS_NAMES[c]] = {"n_gt": n_gt,
                                     "AP50": None if ap50 is None else round(ap50, 4),
                                     "AP50-95": None if ap is None else round(ap, 4)}
        if ap50 is not None and ap is not None:
            ap50s.append(ap50)
            aps.append(ap)
    return {"mAP50": round(float(np.mean(ap50s)), 4) if ap50s else None,
            "mAP50-95": round(float(np.mean(aps)), 4) if aps else None,
            "per_class": per_class, "n_images": len(gts)}


def match_at(d: np.ndarray, g: np.ndarray, threshold: float, iou_threshold: float = 0.5
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: detections scoring >= threshold (best first), whether each matched a
    same-class ground truth (greedy, best IoU >= ``iou_threshold``) and which ground
    truths were matched."""
    d = np.asarray(d, dtype=float).reshape(-1, 6)
    d = d[d[:, 5] >= threshold]
    d = d[np.argsort(-d[:, 5], kind="stable")]
    g = np.asarray(g, dtype=float).reshape(-1, 5)
    used = np.zeros(len(g), dtype=bool)
    hit = np.zeros(len(d), dtype=bool)
    for k, row in enumerate(d):
        same = (g[:, 0] == row[4]) & ~used
        iou = box_iou(row[:4], g[:, 1:5])[0] if len(g) else np.zeros(0)
        iou = np.where(same, iou, -1.0)
        j = int(np.argmax(iou)) if iou.size else -1
        if j >= 0 and iou[j] >= iou_threshold:
            used[j] = hit[k] = True
    return d, hit, used


def f1_at(dets: Sequence[np.ndarray], gts: Sequence[np.ndarray], threshold: float,
          iou_threshold: float = 0.5) -> tuple[float, float, float]:
    """Micro precision, recall, F1 over all classes of detections scoring >= threshold."""
    tp = fp = n_pos = 0
    for d, g in zip(dets, gts, strict=True):
        _, hit, _ = match_at(d, g, threshold, iou_threshold)
        n_pos += len(np.asarray(g).reshape(-1, 5))
        tp += int(hit.sum())
        fp += int((~hit).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / n_pos if n_pos else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def failure_examples(crops: Sequence[Any], dets: Sequence[np.ndarray], threshold: float,
                     path: Any, title: str, classes: Sequence[int] = (2, 3), n: int = 5,
                     side: int = 160) -> dict[str, Any]:
    """PNG with two rows per class of ``classes`` (0-based; default Type-3 and Type-4): its
    missed boxes (largest first, labelled with the class a detection gave the same place,
    if any) and its false detections (highest score first), ``side`` px crops around each.
    Returns per class: boxes, found, missed, missed-but-found-as-another-class, false."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from epnml.experiments.landforms.thumbs import thumbnail_grid

    counts: dict[str, Any] = {}
    rows: list[list[tuple[Any, np.ndarray, str]]] = []
    for c in classes:
        missed: list[tuple[float, Any, np.ndarray, str]] = []
        false: list[tuple[float, Any, np.ndarray, str]] = []
        other: dict[str, int] = {}
        n_gt = 0
        for crop, d in zip(crops, dets, strict=True):
            kept, hit, used = match_at(d, crop.boxes, threshold)
            g = np.asarray(crop.boxes, dtype=float).reshape(-1, 5)
            n_gt += int((g[:, 0] == c).sum())
            for b in g[(g[:, 0] == c) & ~used]:
                iou = box_iou(b[1:5], kept[:, :4])[0] if len(kept) else np.zeros(0)
                as_k = int(kept[int(np.argmax(iou)), 4]) if iou.size and iou.max() >= 0.5 else -1
                seen = f"as Type-{as_k + 1}" if as_k >= 0 else "not found"
                if as_k >= 0:
                    other[f"Type-{as_k + 1}"] = other.get(f"Type-{as_k + 1}", 0) + 1
                size = float(max(b[3] - b[1], b[4] - b[2]))
                missed.append((-size, crop, b[1:5], f"missed {size:.0f}px, {seen}"))
            for b in kept[(kept[:, 4] == c) & ~hit]:
                false.append((-float(b[5]), crop, b[:4], f"false, score {b[5]:.2f}"))
        name = CLASS_NAMES[c]
        counts[name] = {"boxes": n_gt, "found": n_gt - len(missed), "missed": len(missed),
                        "missed_found_as_other_class": other, "false": len(false)}
        for found in (missed, false):
            rows.append([(cr, b, f"{name.split()[0]} {label}") for _, cr, b, label
                         in sorted(found, key=lambda r: r[0])[:n]])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.5 * n, 1.6 * len(rows)), dpi=75,
                             squeeze=False)
    thumbnail_grid(axes, [[(cr.pixels, b, label) for cr, b, label in row] for row in rows],
                   side, lambda r: "tab:orange" if r % 2 else "tab:cyan", margin=0.7,
                   interpolation="bilinear")
    fig.suptitle(f"{title}: per class, missed (cyan) then false (orange)", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    with Image.open(buf) as im:  # 64-colour palette: a committed thumbnail stays small
        im.convert("RGB").quantize(64).save(path, optimize=True)
    return counts


def choose_threshold(dets: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """Score threshold with the best micro-F1 at IoU 0.5 (ties: the higher threshold)."""
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3)
    f1 = [f1_at(dets, gts, float(t))[2] for t in grid]
    best = max(f1)
    return float(grid[max(i for i, v in enumerate(f1) if v == best)])


def detect_split(module: Any, scale: float, items: Sequence[Any], nms_iou: float = 0.5
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Detections (from the minimum score up) and ground truths of labelled crops
    (``epnml.experiments.pits.train.Crop``: normalised pixels, boxes ``class, x0, y0, x1, y1``)."""
    from epnml.ml.pits.inference import detect_array

    dets, gts = [], []
    for item in items:
        dets.append(detect_array(item.pixels, module, scale=scale, nms_iou=nms_iou))
        gts.append(item.boxes)
    return dets, gts


def write_test_metrics(card_path: Path, metrics: dict[str, Any], when: str) -> None:
    """Put the test figures into a card that has none: the test split is scored once per
    version, after its checkpoint and threshold were chosen on validation."""
    from epnml.ml.checkpoints import has_test_figures

    card = json.loads(card_path.read_text())
    if has_test_figures(card):
        raise ValueError(f"{card_path}: the test split was already scored for pits "
                         f"{card.get('version')}; a second look is not written")
    card.setdefault("metrics", {})["test"] = {**metrics, "scored": when}
    card_path.write_text(json.dumps(card, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    from datetime import UTC, datetime

    from epnml.config import load_settings
    from epnml.ml.pits.inference import load_model

    from .train import load_crops

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None, help="model version (default: newest)")
    ap.add_argument("--path", type=Path, default=None,
                    help="a pits-<version>.pt elsewhere, e.g. the --split leaky comparison")
    ap.add_argument("--failures", type=Path, default=None,
                    help="write a PNG of Type-3 / Type-4 failures on the validation crops")
    ap.add_argument("--validation-only", action="store_true",
                    help="score validation only (the default; kept for older commands)")
    ap.add_argument("--final-test", action="store_true",
                    help="also score the test crops (once, for frozen weights)")
    ap.add_argument("--write-card", action="store_true",
                    help="with --final-test: write the test figures into the card, which "
                         "must not have any yet")
    args = ap.parse_args(argv)
    if args.write_card and not args.final_test:
        raise SystemExit("--write-card goes with --final-test")
    if args.final_test and args.validation_only:
        raise SystemExit("--final-test and --validation-only exclude each other")
    model = load_model(args.weights, path=args.path)
    pt = args.path if args.path is not None and args.path.is_file() else None
    if pt is None:
        from epnml.ml.pits.inference import WEIGHTS_DIR

        pt = (args.path or WEIGHTS_DIR) / f"pits-{model.info.version}.pt"
    card = json.loads(pt.with_suffix(".json").read_text())
    crops = load_crops(load_settings().shared_data / "images" / "hirise_pits")
    out: dict[str, Any] = {"model": f"{model.info.name} {model.info.version}",
                           "split": card["split"]["method"]}
    for part in ("validation", "test") if args.final_test else ("validation",):
        held = card["split"][part]
        if "observations" in held:
            items = [c for c in crops if c.observation in set(held["observations"])]
        else:  # leaky crop-level split
            items = [c for c in crops if c.name in set(held["crops"])]
        dets, gts = detect_split(model.module, model.input_scale, items,
                                 float(model.config.get("nms_iou", 0.5)))
        out[part] = evaluate(dets, gts)
        p, r, f1 = f1_at(dets, gts, model.threshold)
        out[part]["at_threshold"] = {"threshold": model.threshold, "precision": round(p, 4),
                                     "recall": round(r, 4), "f1": round(f1, 4)}
        if args.failures is not None and part == "validation":
            out[part]["failures"] = failure_examples(
                items, dets, model.threshold, args.failures,
                f"pits {model.info.version}, validation, threshold {model.threshold:g}")
    out["reference"] = REFERENCE
    if args.write_card:
        write_test_metrics(pt.with_suffix(".json"), out["test"],
                           datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
