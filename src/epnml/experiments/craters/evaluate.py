"""F1 of the crater detector on REAL CTX tiles against the annotators' consensus, with the
human agreement measured on the same tiles.

    python -m epnml.experiments.craters.evaluate --weights 2.0.0 [--final-test]

Data: ``images/ctx_craters`` of the shared data (Francis et al. 2020, CC-BY-4.0): 8 CTX
tiles of MC11-East (2000 x 2000 px, ~5-6 m/px), Pascal-VOC boxes of six volunteer
annotators per tile and their clustered consensus (3,314 craters, each with the number
of annotators who marked it, ``confidence`` 1..6).

Split by tile, fixed here: the test tiles are scored once, by ``--final-test``.

Rule: a detection is a true positive when its box overlaps an unmatched consensus box
with IoU >= 0.5 (greedy by score, best IoU first); F1 at ONE score threshold, chosen on
the validation tiles (pooled) and then applied to the test tiles.

Human agreement: each annotator against the consensus of the other five, clustered here
with the rule below, on the same tiles. The model is scored against those same
leave-one-out consensuses too (mean over the six), so both sit side by side on equal
references. Clustering: boxes of different annotators join one crater when IoU >= 0.5
with the cluster's mean box (greedy, an annotator at most once per cluster); a crater
needs ``min_support`` annotators (1 = like the published consensus, which keeps
single-annotator craters; 2 = at least two agree).
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from epnml.ml.imagery.tiling import box_iou

TRAIN_TILES = ("MC11E-A", "MC11E-E", "MC11E-G", "MC11E-H")
VAL_TILES = ("MC11E-B", "MC11E-J")
TEST_TILES = ("MC11E-C", "MC11E-I")
IOU = 0.5
THRESHOLDS = tuple(round(float(t), 3) for t in np.arange(0.05, 0.951, 0.025))
#: detections kept below any candidate threshold
MIN_SCORE = 0.05
#: nominal CTX pixel scale of these tiles (README: about 5-6 m/px), for the SFD axis only
PIXEL_M = 5.5
DATA_SUBDIR = Path("images") / "ctx_craters"


@dataclass
class Tile:
    """One CTX tile: pixels, consensus boxes (n, 4) with their support, annotators' boxes."""

    name: str
    pixels: np.ndarray
    consensus: np.ndarray
    confidence: np.ndarray
    annotators: dict[str, np.ndarray] = field(default_factory=dict)


def data_root(shared: Path | None = None) -> Path:
    from epnml.config import load_settings

    base = shared or load_settings().shared_data
    root = base / DATA_SUBDIR
    if not (root / "images").is_dir():
        raise FileNotFoundError(f"no CTX crater tiles under {root} (set EPNML_SHARED_DATA)")
    return root


def read_voc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, 4) x_min, y_min, x_max, y_max (px, max exclusive + 1 like VOC) and the
    ``confidence`` of each (1 when absent)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path.name}: not a Pascal-VOC XML file ({exc})") from exc
    boxes, conf = [], []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError(f"{path.name}: an object without bndbox")
        x0, y0, x1, y1 = (float(bb.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((x0, y0, x1 + 1.0, y1 + 1.0))
        conf.append(int(obj.findtext("confidence", "1")))
    return np.asarray(boxes, float).reshape(-1, 4), np.asarray(conf, int)


def load_tile(name: str, root: Path | None = None) -> Tile:
    from PIL import Image

    root = root or data_root()
    pixels = np.asarray(Image.open(root / "images" / f"{name}.png").convert("L"), np.float32)
    boxes, conf = read_voc(root / "annotations" / "clustered" / f"{name}.xml")
    annotators = {p.stem: read_voc(p)[0]
                  for p in sorted((root / "annotations" / "raw" / name).glob("*.xml"))}
    return Tile(name, pixels, boxes, conf, annotators)


# --- matching -----------------------------------------------------------------------------

def count_matches(pred: np.ndarray, scores: np.ndarray | None, ref: np.ndarray,
                  iou: float = IOU) -> int:
    """True positives: one-to-one, greedy by score (by IoU when ``scores`` is None)."""
    if not len(pred) or not len(ref):
        return 0
    m = box_iou(pred, ref)
    used_p = np.zeros(len(pred), bool)
    used_r = np.zeros(len(ref), bool)
    tp = 0
    if scores is None:
        pairs = np.argwhere(m >= iou)
        for i, j in sorted(pairs.tolist(), key=lambda ij: -m[ij[0], ij[1]]):
            if not used_p[i] and not used_r[j]:
                used_p[i] = used_r[j] = True
                tp += 1
        return tp
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.flatnonzero((m[i] >= iou) & ~used_r)
        if cand.size:
            used_r[cand[np.argmax(m[i, cand])]] = True
            tp += 1
    return tp


def prf(tp: int, n_pred: int, n_ref: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_ref if n_ref else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "tp": tp, "n_pred": n_pred, "n_ref": n_ref}


def cluster(sets: Sequence[np.ndarray], iou: float = IOU) -> tuple[np.ndarray, np.ndarray]:
    """Consensus of several annotators: mean boxes (n, 4) and support (n,)."""
    sums: list[np.ndarray] = []
    members: list[set[int]] = []
    for a, boxes in enumerate(sets):
        for b in boxes:
            if sums:
                means = np.stack([s / len(m) for s, m in zip(sums, members, strict=True)])
                ov = box_iou(b[None], means)[0]
                ov[[a in m for m in members]] = 0.0
                j = int(np.argmax(ov))
                if ov[j] >= iou:
                    sums[j] = sums[j] + b
                    members[j].add(a)
                    continue
            sums.append(np.asarray(b, float).copy())
            members.append({a})
    if not sums:
        return np.zeros((0, 4)), np.zeros(0, int)
    return (np.stack([s / len(m) for s, m in zip(sums, members, strict=True)]),
            np.array([len(m) for m in members]))


def loo_references(tile: Tile, min_support: int) -> dict[str, np.ndarray]:
    """Per annotator, the consensus of the other annotators (support >= min_support)."""
    out = {}
    for name in tile.annotators:
        boxes, support = cluster([b for n, b in tile.annotators.items() if n != name])
        out[name] = boxes[support >= min_support]
    return out


def human_agreement(tiles: Sequence[Tile], min_support: int) -> dict[str, Any]:
    """Each annotator against the consensus of the others, pooled over tiles per annotator
    slot; mean and range of the per-(tile, annotator) F1 and the pooled F1."""
    per, tp, npred, nref = [], 0, 0, 0
    for t in tiles:
        refs = loo_references(t, min_support)
        for name, ref in refs.items():
            boxes = t.annotators[name]
            k = count_matches(boxes, None, ref)
            per.append(prf(k, len(boxes), len(ref))["f1"])
            tp, npred, nref = tp + k, npred + len(boxes), nref + len(ref)
    if not per:
        raise ValueError("no annotators on these tiles")
    return {"pooled": prf(tp, npred, nref), "mean_f1": round(float(np.mean(per)), 4),
            "min_f1": round(float(np.min(per)), 4), "max_f1": round(float(np.max(per)), 4),
            "n_pairs": len(per)}


def model_vs_loo(tiles: Sequence[Tile], found: Sequence[np.ndarray], threshold: float,
                 min_support: int) -> dict[str, Any]:
    """The model against the same leave-one-out consensuses the annotators face."""
    per, tp, npred, nref = [], 0, 0, 0
    for t, d in zip(tiles, found, strict=True):
        keep = d[d[:, 5] >= threshold]
        for ref in loo_references(t, min_support).values():
            k = count_matches(keep[:, :4], keep[:, 5], ref)
            per.append(prf(k, len(keep), len(ref))["f1"])
            tp, npred, nref = tp + k, npred + len(keep), nref + len(ref)
    return {"pooled": prf(tp, npred, nref), "mean_f1": round(float(np.mean(per)), 4)}


# --- the model ----------------------------------------------------------------------------

def detect_tile(tile: Tile, module: Any, scale: float, nms_iou: float = 0.5) -> np.ndarray:
    """``(n, 6)`` detections at score >= MIN_SCORE on one tile (the stage's inference)."""
    from epnml.ml.craters.inference import detect_craters_array

    return detect_craters_array(tile.pixels, module, scale=scale, min_score=MIN_SCORE,
                                nms_iou=nms_iou)


def scores_at(tiles: Sequence[Tile], found: Sequence[np.ndarray], threshold: float,
              min_confidence: int = 1) -> dict[str, Any]:
    tp = npred = nref = 0
    for t, d in zip(tiles, found, strict=True):
        keep = d[d[:, 5] >= threshold]
        ref = t.consensus[t.confidence >= min_confidence]
        tp += count_matches(keep[:, :4], keep[:, 5], ref)
        npred, nref = npred + len(keep), nref + len(ref)
    return prf(tp, npred, nref)


def choose_threshold(tiles: Sequence[Tile], found: Sequence[np.ndarray]) -> tuple[float, float]:
    """The score threshold with the best pooled F1 on these (validation) tiles."""
    best = max(THRESHOLDS, key=lambda th: (scores_at(tiles, found, th)["f1"], -th))
    return best, scores_at(tiles, found, best)["f1"]


def split_metrics(tiles: Sequence[Tile], found: Sequence[np.ndarray], threshold: float
                  ) -> dict[str, Any]:
    return {
        "tiles": [t.name for t in tiles],
        "consensus": scores_at(tiles, found, threshold),
        "consensus_support_ge2": scores_at(tiles, found, threshold, 2),
        "model_vs_leave_one_out": {f"support_ge{s}": model_vs_loo(tiles, found, threshold, s)
                                   for s in (1, 2)},
        "human_vs_leave_one_out": {f"support_ge{s}": human_agreement(tiles, s)
                                   for s in (1, 2)},
        "per_tile": {t.name: scores_at([t], [d], threshold)
                     for t, d in zip(tiles, found, strict=True)},
    }


def sfd_plot(tiles: Sequence[Tile], found: Sequence[np.ndarray], threshold: float,
             path: Path, title: str) -> None:
    """Cumulative crater size-frequency distribution N(>= D) of the detections and of the
    consensus labels (D = mean box side), log-log, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def diam(b: np.ndarray) -> np.ndarray:
        return np.sort(((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2)[::-1]

    lab = diam(np.concatenate([t.consensus for t in tiles]))
    det = diam(np.concatenate([d[d[:, 5] >= threshold, :4] for d in found]))
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=100)
    for d, name in ((lab, f"consensus labels ({len(lab)})"),
                    (det, f"detections, score >= {threshold} ({len(det)})")):
        if len(d):
            ax.step(d, np.arange(1, len(d) + 1), where="post", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"crater diameter D (px; x {PIXEL_M} ~ m)")
    ax.set_ylabel("cumulative number N(>= D)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def unmatched(pred: np.ndarray, scores: np.ndarray, ref: np.ndarray, iou: float = IOU
              ) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the predictions and the references left unmatched by ``count_matches``'s
    rule (one-to-one, greedy by score): false detections and missed craters."""
    used_p = np.zeros(len(pred), bool)
    used_r = np.zeros(len(ref), bool)
    if len(pred) and len(ref):
        m = box_iou(pred, ref)
        for i in np.argsort(-np.asarray(scores), kind="stable"):
            cand = np.flatnonzero((m[i] >= iou) & ~used_r)
            if cand.size:
                used_r[cand[np.argmax(m[i, cand])]] = True
                used_p[i] = True
    return ~used_p, ~used_r


def failure_examples(tiles: Sequence[Tile], found: Sequence[np.ndarray], threshold: float,
                     path: Path, title: str, n: int = 6, side: int = 72) -> dict[str, int]:
    """PNG of ``n`` missed craters (the most agreed-on first: support, then size) and ``n``
    false detections (highest score first), ``side`` px crops centred on each, the box
    drawn; returns how many of each the tiles hold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from epnml.experiments.landforms.thumbs import thumbnail_grid

    missed: list[tuple[tuple[float, float], Tile, np.ndarray, str]] = []
    false: list[tuple[tuple[float, float], Tile, np.ndarray, str]] = []
    for t, d in zip(tiles, found, strict=True):
        keep = d[d[:, 5] >= threshold]
        fp, fn = unmatched(keep[:, :4], keep[:, 5], t.consensus)
        for b, c in zip(t.consensus[fn], t.confidence[fn], strict=True):
            size = float((b[2] - b[0] + b[3] - b[1]) / 2)
            missed.append(((-float(c), -size), t, b, f"{t.name} missed, {c}/6, {size:.0f} px"))
        for b in keep[fp]:
            false.append(((-float(b[5]), 0.0), t, b[:4],
                          f"{t.name} false, score {b[5]:.2f}"))
    counts = {"missed": len(missed), "false": len(false)}
    rows = [sorted(missed, key=lambda r: r[0])[:n], sorted(false, key=lambda r: r[0])[:n]]
    fig, axes = plt.subplots(2, n, figsize=(1.45 * n, 3.4), dpi=100, squeeze=False)
    thumbnail_grid(axes, [[(t.pixels, b, label) for _, t, b, label in row] for row in rows],
                   side, lambda r: "tab:orange" if r else "tab:cyan")
    fig.suptitle(f"{title}: top row missed ({counts['missed']}), bottom row false "
                 f"({counts['false']})", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return counts


def evaluate_model(model: Any, final_test: bool, plot: Path | None = None,
                   failures: Path | None = None) -> dict[str, Any]:
    """Validation metrics (threshold = the model's) and, with ``final_test``, test metrics
    and the SFD plot of the test tiles."""
    from epnml.ml.craters.inference import detect_band

    use = model.choose(PIXEL_M)  # a banded model: its CTX band (and its recipe, if any)
    thr = float(use.threshold)
    out: dict[str, Any] = {"threshold": thr}
    if use.band is not None:
        out["band"] = use.band.name
    if use.recipe is not None:
        out["recipe"] = use.recipe.to_dict()
    splits = {"validation": VAL_TILES, **({"test": TEST_TILES} if final_test else {})}
    for split, names in splits.items():
        tiles = [load_tile(n) for n in names]
        found = [detect_band(t.pixels, use, min_score=MIN_SCORE) for t in tiles]
        out[split] = split_metrics(tiles, found, thr)
        if failures is not None and split == "validation":
            out[split]["failure_counts"] = failure_examples(
                tiles, found, thr, failures,
                f"craters {model.info.version}, validation {', '.join(names)}")
        if plot is not None and split == ("test" if final_test else "validation"):
            sfd_plot(tiles, found, thr, plot,
                     f"craters {model.info.version}, {split} tiles {', '.join(names)}")
    return out


def validation_scores(model: Any, module: Any = None, fine_overlap: int | None = None
                      ) -> dict[str, Any]:
    """Pooled validation F1 of ``model``'s CTX band, optionally run with another
    ``module`` (an int8 copy) or another tile overlap of its fine passes (speed trials):
    at the version's threshold and at the best one on these tiles. Never the test tiles."""
    from dataclasses import replace

    from epnml.ml.craters.inference import detect_band
    from epnml.ml.pits.inference import OVERLAP

    use = model.choose(PIXEL_M)
    if module is not None:
        use = replace(use, module=module)
    overlap = OVERLAP if fine_overlap is None else fine_overlap
    tiles = [load_tile(n) for n in VAL_TILES]
    found = [detect_band(t.pixels, use, min_score=MIN_SCORE, fine_overlap=overlap)
             for t in tiles]
    best, _ = choose_threshold(tiles, found)
    return {"tiles": list(VAL_TILES), "threshold": use.threshold, "fine_overlap": overlap,
            "at_version_threshold": scores_at(tiles, found, use.threshold),
            "best_threshold": best, "at_best_threshold": scores_at(tiles, found, best)}


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from epnml.ml.craters.inference import load_model

    ap = argparse.ArgumentParser(description="crater F1 on real CTX tiles + human agreement")
    ap.add_argument("--weights", default=None, help="version (default: newest)")
    ap.add_argument("--final-test", action="store_true",
                    help="also score the held-out test tiles (once, at the end)")
    ap.add_argument("--plot", type=Path, default=None, help="size-frequency PNG to write")
    ap.add_argument("--failures", type=Path, default=None,
                    help="PNG of missed and false craters on the VALIDATION tiles")
    ap.add_argument("--write-card", action="store_true",
                    help="store the metrics in the committed JSON card (a banded card: "
                         "its ctx band)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    model = load_model(args.weights)
    metrics = evaluate_model(model, args.final_test, args.plot, args.failures)
    print(json.dumps(metrics, indent=1))
    if args.write_card:
        write_card_metrics(model.info.version, metrics)
    return 0


def write_card_metrics(version: str, metrics: dict[str, Any]) -> None:
    """Metrics into ``craters-<version>.json`` (the sha256 is of the .pt: unchanged)."""
    from epnml.ml.craters.inference import WEIGHTS_DIR

    path = WEIGHTS_DIR / f"craters-{version}.json"
    card = json.loads(path.read_text())
    if "networks_from" in card or card.get("bands", {}).get("ctx", {}).get("recipe"):
        # the band runs a recipe: its source card keeps the plain pass's own metrics
        card["metrics"]["ctx"] = metrics
        card["bands"]["ctx"]["metrics"] = metrics
    elif "bands" in card:
        card["metrics"]["ctx"] = metrics
        card["bands"]["ctx"]["source"]["metrics"] = metrics
    else:
        card["metrics"] = metrics
    path.write_text(json.dumps(card, indent=1) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
