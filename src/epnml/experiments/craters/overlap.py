"""Tile-overlap trial of a craters 2.x CTX band (issue #14, speed): validation F1 and the
whole-image speed when the recipe's fine passes tile with less overlap.

Why: on a real CTX image the stage runs 9.44 network tiles per input tile, of which the
128 px overlap of the 512 px network tiles is ~1.8x. The recipe sends craters of 30 px
and more (45 px at the fine scale) to its coarse pass, which keeps its 128 px overlap, so
the fine passes may not need as much. Fewer tiles change the detections near tile
borders: an overlap other than the version's would be a new version, chosen on validation
and scored once on the test tiles. This trial reads the validation tiles only and
records, per overlap, the F1 and the seconds per image (``run_craters_image``: the real
training tile MC11E-A, 2 threads).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run(version: str, overlaps: Sequence[int], repeats: int) -> dict[str, Any]:
    from epnml.experiments.craters.evaluate import validation_scores
    from epnml.experiments.landforms.bench import run_craters_image
    from epnml.ml.craters.inference import load_model
    from epnml.ml.pits.inference import TILE

    for overlap in overlaps:
        if not 0 <= overlap < TILE // 2:
            raise ValueError(f"overlap must be in 0..{TILE // 2 - 1} px, got {overlap}")
    model = load_model(version)
    started = time.time()
    load = list(os.getloadavg())
    out: dict[str, Any] = {"version": model.info.version, "overlaps": {}}
    for overlap in overlaps:
        out["overlaps"][str(overlap)] = {
            "validation": validation_scores(model, fine_overlap=overlap),
            "whole_image": run_craters_image(repeats=repeats, version=version,
                                             fine_overlap=overlap)}
    out.update(date=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)),
               seconds=round(time.time() - started, 1), load_average_at_start=load)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m epnml.experiments.craters.overlap",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--version", default="2.3.0")
    p.add_argument("--overlaps", type=int, nargs="+", default=[128, 96, 64])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    record = run(a.version, a.overlaps, a.repeats)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(record, indent=2) + "\n")
    for overlap, r in record["overlaps"].items():
        v, w = r["validation"], r["whole_image"]
        print(f"overlap {overlap}: validation F1 {v['at_version_threshold']['f1']} "
              f"(best {v['at_best_threshold']['f1']} at {v['best_threshold']}), "
              f"{w['seconds_per_image']} s/image, {w['input_tiles_per_min']} input tiles/min, "
              f"{w['network_tiles_per_input_tile']} network tiles per input tile")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
