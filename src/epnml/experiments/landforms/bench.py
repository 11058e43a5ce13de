"""Throughput of the landform detectors on 512x512 tiles (goal: >= 1,000 tiles/min, 2 threads).

``run`` measures pits, ``run_craters`` the crater detector
(``python -m epnml.experiments.landforms.bench craters``), ``run_craters_image`` the whole
crater stage on one CTX image (``... bench craters_image``), ``run_pits_image`` the whole
pits stage on one large image, ``run_mounds`` the mound U-Net on
256x256 tiles and ``run_ice`` the ice CNN on 1024x1024 chunks (``... bench mounds|ice``).

Why: HiRISE observations are ~20k x 50k px, i.e. thousands of tiles each; the detector
must keep up on a small CPU. ``run`` times the network plus box decoding on batches
of random tiles (content does not change the cost), the median of ``repeats``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

THREADS = 2
TILE = 512
GOAL_TILES_PER_MIN = 1000.0


def run(repeats: int = 5, batch: int = 4, threads: int = THREADS,
        version: str | None = None) -> dict[str, Any]:
    """Median tiles/min over ``repeats`` batches (after a warm-up).

    On a shared machine 2 threads can be slower than 1 (the second core is busy):
    ``threads`` lets the caller measure both.
    """
    if repeats < 1 or batch < 1:
        raise ValueError("repeats and batch must be >= 1")
    if not 1 <= threads <= THREADS:
        raise ValueError(f"threads must be in 1..{THREADS}")
    from epnml.ml.craters.net import runnable
    from epnml.ml.imagery.detector import PitsDetector
    from epnml.ml.pits.inference import BATCH, load_model

    module: Any
    scale = 0.5
    try:
        model = load_model(version)
        # as inference runs it: the pretrained 2.x as its fused copy, one tile per call
        module, used = runnable(model.module, BATCH)
        batch = min(batch, used)
        name, scale = f"pits {model.info.version}", model.input_scale
    except FileNotFoundError:  # no committed weights: same architecture, random weights
        module, name = PitsDetector().eval(), "pits (untrained)"
    out = measure(module, name, repeats, batch, threads)
    # a 512x512 INPUT tile is input_scale^2 network tiles (fewer when input_scale < 1)
    out["input_scale"] = scale
    out["input_tiles_per_min"] = round(out["tiles_per_min"] / scale ** 2, 1)
    return out


def _crater_band(model: Any, band: str | None) -> Any:
    """The band of a banded crater model by name (None: its first, the default)."""
    bands = {b.name: b for b in model.module.config.band_list()}
    if band is not None and band not in bands:
        raise ValueError(f"craters {model.info.version} has no band {band!r}; "
                         f"bands: {', '.join(bands)}")
    return bands[band] if band is not None else next(iter(bands.values()))


def run_craters(repeats: int = 5, batch: int = 4, threads: int = THREADS,
                version: str | None = None, band: str | None = None) -> dict[str, Any]:
    """Tiles/min of the crater detector on 512x512 NETWORK tiles, as ``run``; a banded
    version (2.1.0 on) runs ``band`` (default: its first, ``ctx``). Also: the backbone's
    share of the time (2.x) and the rate in 512x512 INPUT tiles, which the network sees
    ``input_scale`` larger (x1.5 for CTX: 2.25 network tiles per input tile) and, with a
    test-time recipe (2.2.0 on), ``recipe.passes`` times (flipped views, coarse pass).

    The 2.x network is timed as inference runs it (``epnml.ml.fuse`` copy, one tile per
    call) and, for the ratio, as before (unfused, batches of ``batch``)."""
    if repeats < 1 or batch < 1:
        raise ValueError("repeats and batch must be >= 1")
    if not 1 <= threads <= THREADS:
        raise ValueError(f"threads must be in 1..{THREADS}")
    from epnml.ml.craters.bands import BandedCraterNet
    from epnml.ml.craters.inference import load_model
    from epnml.ml.craters.net import CraterNet, runnable
    from epnml.ml.craters.recipe import Recipe
    from epnml.ml.imagery.detector import DetectorConfig, PitsDetector

    scale = 2.0
    passes = 1.0
    module: Any
    try:
        model = load_model(version)
        module, name = model.module, f"craters {model.info.version}"
        scale = model.input_scale
        if isinstance(module, BandedCraterNet):
            chosen = _crater_band(model, band)
            module, name = module.nets[chosen.name], f"{name} band {chosen.name}"
            scale = chosen.input_scale
            if chosen.recipe is not None:
                passes = Recipe.from_dict(chosen.recipe).passes
    except FileNotFoundError:
        module, name = PitsDetector(DetectorConfig(n_classes=1)).eval(), "craters (untrained)"
    baseline = None
    if isinstance(module, CraterNet):
        baseline = measure(module, name, repeats, batch, threads)
        module, batch = runnable(module, batch)
    out = measure(module, name, repeats, batch, threads)
    out["input_scale"] = scale
    out["recipe_passes"] = passes
    out["input_tiles_per_min"] = round(out["tiles_per_min"] / scale ** 2 / passes, 1)
    if baseline is not None:
        out["inference_copy"] = "BatchNorm folded, channels-last, batch 1"
        out["unfused_batch"] = baseline["batch"]
        out["unfused_tiles_per_min"] = baseline["tiles_per_min"]
        out["speedup_vs_unfused"] = round(out["tiles_per_min"] / baseline["tiles_per_min"], 2)
    if isinstance(module, CraterNet):  # backbone share = 1 - (pyramid + heads) / whole
        x = torch.from_numpy(np.random.default_rng(0).normal(
            size=(batch, 1, TILE, TILE)).astype(np.float32))
        with torch.inference_mode():
            feats = module.backbone.features((x * module.config.input_gain
                                              ).expand(-1, 3, -1, -1))
        whole = _timed(lambda: module(x), repeats, threads) / batch
        heads = _timed(lambda: module.heads(feats), repeats, threads) / batch
        out["network_seconds_per_tile_same_minute"] = round(whole, 4)
        out["heads_seconds_per_tile"] = round(heads, 4)
        out["backbone_share"] = round(1.0 - heads / whole, 3)
    return out


def _time_stage(network: Any, warm_up: Any, once: Any, repeats: int, threads: int
                ) -> tuple[float, float]:
    """Median seconds of ``once()`` over ``repeats`` calls after ``warm_up()``, on
    ``threads`` threads, and the network tiles per call: counted where tiled inference
    calls the network (a 2.x ``CraterNet`` as its memoised fused copy)."""
    from epnml.ml.craters.net import CraterNet
    from epnml.ml.fuse import fast_module

    calls = [0]
    runner = fast_module(network) if isinstance(network, CraterNet) else network
    hook = runner.register_forward_pre_hook(
        lambda _m, args: calls.__setitem__(0, calls[0] + int(args[0].shape[0])))
    def warm_up_then_count() -> None:
        warm_up()  # weights, allocator
        calls[0] = 0

    try:
        seconds = _timed(once, repeats, threads, warm_up=warm_up_then_count)
    finally:
        hook.remove()
    return seconds, calls[0] / repeats


#: the CTX tile timed end to end (a training tile: no held-out tile is read)
CTX_IMAGE = "MC11E-A"


def run_craters_image(repeats: int = 3, threads: int = THREADS, version: str | None = None,
                      band: str = "ctx", image: np.ndarray | None = None,
                      fine_overlap: int | None = None) -> dict[str, Any]:
    """Seconds for the crater stage's whole detection on one image, as ``epnml predict``
    runs it: up-scaling, overlapping tiles, every pass of the band's recipe, box decoding,
    merging and NMS. The rate in 512x512 INPUT tiles per minute is what a user's CTX
    image costs; ``run_craters`` gives network tiles only, and its ``input_tiles_per_min``
    leaves out the tile overlap and everything outside the network.

    ``image`` None: the real CTX tile ``CTX_IMAGE`` from the shared data (its craters
    make the decoding and NMS cost real), or, when the shared data are absent, SIMULATED
    seeded noise of the same size (few detections: a little optimistic). ``fine_overlap``:
    another tile overlap for the recipe's fine passes (a trial; None: the stage's)."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    if not 1 <= threads <= THREADS:
        raise ValueError(f"threads must be in 1..{THREADS}")
    from epnml.experiments.craters.evaluate import load_tile
    from epnml.ml.craters.bands import BandedCraterNet
    from epnml.ml.craters.inference import detect_band, load_model
    from epnml.ml.pits.inference import OVERLAP

    model = load_model(version)
    use = model.choose(None)
    if isinstance(model.module, BandedCraterNet):
        use = model.choose(_crater_band(model, band).min_m)
    if image is not None:
        source = f"given image {image.shape[0]}x{image.shape[1]}"
    else:
        try:
            image, source = load_tile(CTX_IMAGE).pixels, f"{CTX_IMAGE} (real CTX tile)"
        except FileNotFoundError:
            image = np.random.default_rng(0).normal(128, 30, (2000, 2000)).astype(np.float32)
            source = "SIMULATED noise 2000x2000 (shared data absent)"
    overlap = OVERLAP if fine_overlap is None else fine_overlap
    found: list[np.ndarray] = []
    seconds, calls = _time_stage(
        use.module, lambda: detect_band(image[:256, :256], use),
        lambda: found.append(detect_band(image, use, fine_overlap=overlap)), repeats, threads)
    n_dets = len(found[-1])
    input_tiles = image.shape[0] * image.shape[1] / TILE ** 2
    return {"model": f"craters {model.info.version}" + (f" band {band}" if model.banded else ""),
            "image": source, "threads": threads, "repeats": repeats, "fine_overlap": overlap,
            "seconds_per_image": round(seconds, 3), "input_tiles_512": round(input_tiles, 2),
            "input_tiles_per_min": round(input_tiles * 60.0 / seconds, 1),
            "network_tiles_per_image": round(calls),
            "network_tiles_per_input_tile": round(calls / input_tiles, 2),
            "detections_at_min_score": n_dets, "goal_tiles_per_min": GOAL_TILES_PER_MIN,
            "meets_goal": input_tiles * 60.0 / seconds >= GOAL_TILES_PER_MIN}


def run_pits_image(repeats: int = 3, threads: int = THREADS, version: str | None = None,
                   side: int = 4096) -> dict[str, Any]:
    """The pits stage's whole detection (``epnml.ml.pits.inference.detect``: down-scaling,
    overlapping tiles, decoding, NMS) on a SIMULATED seeded noise image of ``side``² px,
    in 512x512 INPUT tiles per minute; the counterpart of ``run_craters_image``. Noise,
    because the shared HiRISE data are small crops, not whole observations; the pits
    network's cost does not depend on the content, its few detections make NMS cheap."""
    if repeats < 1 or side < 64:
        raise ValueError("repeats must be >= 1 and side >= 64")
    if not 1 <= threads <= THREADS:
        raise ValueError(f"threads must be in 1..{THREADS}")
    from epnml.ml.pits.inference import detect, load_model

    model = load_model(version)
    image = np.random.default_rng(0).normal(128, 30, (side, side)).astype(np.float32)
    seconds, calls = _time_stage(model.module, lambda: detect(image[:256, :256], model),
                                 lambda: detect(image, model), repeats, threads)
    input_tiles = side * side / TILE ** 2
    rate = input_tiles * 60.0 / seconds
    return {"model": f"pits {model.info.version}", "image": f"SIMULATED noise {side}x{side}",
            "threads": threads, "repeats": repeats, "input_scale": model.input_scale,
            "seconds_per_image": round(seconds, 3), "input_tiles_512": round(input_tiles, 2),
            "input_tiles_per_min": round(rate, 1),
            "network_tiles_per_image": round(calls),
            "network_tiles_per_input_tile": round(calls / input_tiles, 3),
            "goal_tiles_per_min": GOAL_TILES_PER_MIN, "meets_goal": rate >= GOAL_TILES_PER_MIN}


def measure(module: Any, name: str, repeats: int, batch: int, threads: int) -> dict[str, Any]:
    """Median time of network + box decoding over ``repeats`` batches, after a warm-up."""
    from epnml.ml.imagery.detector import decode

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.from_numpy(np.random.default_rng(0).normal(
            size=(batch, 1, TILE, TILE)).astype(np.float32))
        times = []
        with torch.inference_mode():
            decode(module(x), module.config.stride)
            for _ in range(repeats):
                t0 = time.perf_counter()
                decode(module(x), module.config.stride)
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    per_tile = statistics.median(times) / batch
    rate = 60.0 / per_tile
    return {"model": name, "tile_px": TILE, "threads": threads, "batch": batch,
            "repeats": repeats, "seconds_per_tile": round(per_tile, 4),
            "tiles_per_min": round(rate, 1), "goal_tiles_per_min": GOAL_TILES_PER_MIN,
            "meets_goal": rate >= GOAL_TILES_PER_MIN}


def _timed(fn: Any, repeats: int, threads: int, warm_up: Any = None) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up call
    (``warm_up()`` if given, else ``fn()``), on ``threads`` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            (warm_up or fn)()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times)


def _check(repeats: int, batch: int, threads: int) -> None:
    if repeats < 1 or batch < 1:
        raise ValueError("repeats and batch must be >= 1")
    if not 1 <= threads <= THREADS:
        raise ValueError(f"threads must be in 1..{THREADS}")


def run_mounds(repeats: int = 5, batch: int = 4, threads: int = THREADS,
               version: str | None = None) -> dict[str, Any]:
    """Tiles/min of the mound U-Net on the stage's 256x256 five-channel tiles (network +
    sigmoid; features are computed once per DTM, not per tile, and are not timed)."""
    _check(repeats, batch, threads)
    from epnml.ml.mounds.model import TILE as MTILE
    from epnml.ml.mounds.model import load_model
    from epnml.ml.mounds.unet import UNet

    try:
        model = load_model(version)
        module, name = model.module, f"mounds {model.info.version}"
    except FileNotFoundError:
        module, name = UNet().eval(), "mounds (untrained)"
    x = torch.from_numpy(np.random.default_rng(0).normal(
        size=(batch, 5, MTILE, MTILE)).astype(np.float32))
    per_tile = _timed(lambda: torch.sigmoid(module(x)), repeats, threads) / batch
    return {"model": name, "tile_px": MTILE, "threads": threads, "batch": batch,
            "repeats": repeats, "seconds_per_tile": round(per_tile, 4),
            "tiles_per_min": round(60.0 / per_tile, 1),
            "km2_per_min_at_20m": round(60.0 / per_tile * (MTILE * 0.02) ** 2, 1)}


def run_ice(repeats: int = 5, batch: int = 4, threads: int = THREADS,
            version: str | None = None) -> dict[str, Any]:
    """Chunks/min of the ice CNN on 1024x1024 8-bit chunks, INCLUDING the 8x block-mean
    reduction and normalisation (``chunk_inputs``), which costs more than the network."""
    _check(repeats, batch, threads)
    from epnml.ml.ice.icenet import CHUNK, IceNet, chunk_inputs
    from epnml.ml.ice.model import load_model

    try:
        model = load_model(version)
        module, name = model.module, f"ice {model.info.version}"
    except FileNotFoundError:
        module, name = IceNet().eval(), "ice (untrained)"
    image = np.random.default_rng(0).integers(0, 256, (CHUNK, CHUNK * batch)).astype(np.float32)

    def once() -> None:
        x, _ = chunk_inputs(image, 255.0)
        torch.sigmoid(module(torch.from_numpy(x)))

    per_chunk = _timed(once, repeats, threads) / batch
    return {"model": name, "chunk_px": CHUNK, "threads": threads, "batch": batch,
            "repeats": repeats, "seconds_per_chunk": round(per_chunk, 4),
            "chunks_per_min": round(60.0 / per_chunk, 1),
            "km2_per_min_at_0.5m": round(60.0 / per_chunk * (CHUNK * 0.0005) ** 2, 2)}


if __name__ == "__main__":
    import json
    import sys
    from collections.abc import Callable

    benches: dict[str, Callable[[], dict[str, Any]]] = {
        "craters": run_craters, "craters_image": run_craters_image, "pits_image": run_pits_image,
        "mounds": run_mounds, "ice": run_ice}
    print(json.dumps(benches.get(sys.argv[1], run)() if sys.argv[1:] else run(), indent=1))
