"""Build the dataset version of each committed model version from the shared data and the
split code of its trainer (``epnml.experiments.<case>``).

Each builder reproduces the trainer's split with the trainer's own functions and checks the
result against what the committed model card recorded (counts, split years, observations):
a manifest that disagrees with the weights it describes is refused, never written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from epnml.config import load_settings

from .manifest import (
    Manifest,
    Sample,
    Source,
    datacite,
    file_sha256,
    hash_near_pairs,
    iso,
    quality_report,
    time_near_pairs,
)

PROJECT = ("epnml project", "Organizational")
OMNI2_REF = "doi:10.48322/1shr-ht18"
ICMECAT_REF = "https://helioforecast.space/icmecat"
NGUYEN_REF = "doi:10.3847/1538-4357/ab0d0c"
ICMECAT_LABEL = "ICMECAT v2.3 (Moestl et al.)"
DEEPLANDFORMS_REF = "doi:10.1029/2022EA002278"
DEEPLANDFORMS_LABEL = "DeepLandforms annotators (Nodjoumi et al. 2023)"


class DataMissing(FileNotFoundError):
    """The shared data a builder needs is not there (the manifest stays as committed)."""


def card(model: str, version: str) -> dict[str, Any]:
    path = load_settings().models_dir / "weights" / f"{model}-{version}.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except OSError:
        raise FileNotFoundError(f"{path.name}: no committed model card") from None
    return doc


def _mismatch(model: str, what: str, ours: object, theirs: object) -> ValueError:
    return ValueError(f"{model}: the rebuilt split disagrees with the committed card on "
                      f"{what}: {ours} here, {theirs} in the card")


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataMissing(f"{path.name} not found under the shared data (EPNML_SHARED_DATA)")
    return path


def _file_source(shared: Path, rel: str, origin: str, reference: str | None) -> Source:
    return Source(rel, origin, file_sha256(_need(shared / rel)), None, reference)


def _year_now() -> int:
    return datetime.now(UTC).year


# ----------------------------------------------------------------------------- icme 2.0.0
def build_icme_2(shared: Path, version: str = "2.0.0") -> Manifest:
    """icme 2.x: hourly OMNI2 1998-2018 split by whole years; a sample is one ICMECAT Wind
    ICME (clipped to each year it overlaps: an ICME across a year boundary of two splits is
    reported as a duplicate across splits)."""
    import pandas as pd

    from epnml.experiments.icme import train_omni2 as tr
    from epnml.experiments.icme.evaluate import ICMECAT_FILE, IWF_MIN_FP_DURATION, event_scores
    from epnml.ingest.readers.icme_catalogues import read_icmecat

    c = card("icme", version)
    split_years = {"train": tr.SPLIT_YEARS["train"], "validation": tr.SPLIT_YEARS["val"],
                   "test": tr.SPLIT_YEARS["test"]}
    if c.get("split_years") != tr.SPLIT_YEARS:
        raise _mismatch("icme", "split years", tr.SPLIT_YEARS, c.get("split_years"))
    split_of_year = {y: k for k, ys in split_years.items() for y in ys}
    t0 = pd.Timestamp(f"{tr.YEARS[0]}-01-01")
    t1 = pd.Timestamp(f"{tr.YEARS[-1]}-12-31 23:59")
    cat = read_icmecat(_need(shared / ICMECAT_FILE))
    wind = cat[(cat["spacecraft"] == "Wind") & (cat["end"] >= t0) & (cat["start"] <= t1)]
    if len(wind) != c["data"]["n_icmecat_wind_events"]:
        raise _mismatch("icme", "ICMECAT Wind events", len(wind),
                        c["data"]["n_icmecat_wind_events"])
    samples: list[Sample] = []
    same: dict[str, str] = {}
    for ev in wind.itertuples():
        years = [y for y in tr.YEARS if ev.end >= tr.year_bounds(y)[0]
                 and ev.start <= tr.year_bounds(y)[1]]
        for y in years:
            y0, y1 = tr.year_bounds(y)
            sid = ev.id if len(years) == 1 else f"{ev.id}@{y}"
            samples.append(Sample(
                sid, split_of_year[y], f"{tr.OMNI2_DIR}/omni2_{y}.dat", "ICME", ICMECAT_LABEL,
                obs_id=f"omni2_{y}", time_min=iso(max(ev.start, y0).floor("s")),
                time_max=iso(min(ev.end, y1).floor("s"))))
            same[sid] = str(ev.id)
    sources = [_file_source(shared, f"{tr.OMNI2_DIR}/omni2_{y}.dat", "archive", OMNI2_REF)
               for y in tr.YEARS]
    sources += [_file_source(shared, ICMECAT_FILE, "catalogue", ICMECAT_REF),
                _file_source(shared, tr.NGUYEN_FILE, "catalogue", NGUYEN_REF)]
    # label agreement: the Nguyen list scored against ICMECAT (IWF rule), per split
    icmecat = tr.icmecat_wind(shared)
    nguyen = tr.nguyen_events(shared)
    per_split: dict[str, Any] = {}
    for split, ys in split_years.items():
        per = {y: event_scores(tr.clip(nguyen, *tr.year_bounds(y)),
                               tr.clip(icmecat, *tr.year_bounds(y)),
                               min_fp_duration=IWF_MIN_FP_DURATION) for y in ys}
        p = tr.pooled(per)
        per_split[split] = {"icmecat_found_in_nguyen": p["tp"], "icmecat_not_in_nguyen": p["fn"],
                            "nguyen_not_in_icmecat": p["fp"], "f1": round(p["f1"], 4)}
    overall = tr.pooled({y: event_scores(tr.clip(nguyen, *tr.year_bounds(y)),
                                         tr.clip(icmecat, *tr.year_bounds(y)),
                                         min_fp_duration=IWF_MIN_FP_DURATION)
                         for y in tr.YEARS})
    agreement = {
        "available": True, "annotators": [ICMECAT_LABEL, "Nguyen et al. 2019 (Wind list)"],
        "rule": tr.RULE + " (the Nguyen list taken as the predictions)",
        "icmecat_events": len(icmecat), "nguyen_events": len(nguyen),
        "icmecat_found_in_nguyen": overall["tp"], "icmecat_not_in_nguyen": overall["fn"],
        "nguyen_not_in_icmecat": overall["fp"], "f1": round(overall["f1"], 4),
        "per_split": per_split}
    # the training target is per hour: hours labelled ICME over the calendar hours
    hours: dict[str, dict[str, int]] = {}
    for split, ys in split_years.items():
        idx = pd.DatetimeIndex(np.concatenate([
            pd.date_range(*tr.year_bounds(y), freq="1h").to_numpy() for y in ys]))
        lab = tr.hourly_labels(idx, icmecat)
        hours[split] = {"ICME": int(lab.sum()), "no ICME": int(len(lab) - lab.sum())}
    title = f"Training, validation and test set of the epnml icme model {version}"
    description = (
        f"ICMECAT v2.3 Wind ICMEs in 21 years of REAL hourly OMNI2 solar wind (1998-2018), "
        f"split by whole years fixed before training (train {split_years['train']}, "
        f"validation {split_years['validation']}, test {split_years['test']}). The model's "
        "target is per hour (1 where an hour overlaps an ICMECAT ICME); each sample here is "
        "one ICME clipped to one year. The Nguyen et al. 2019 Wind list is the second "
        "annotator of the quality report, not a training label.")
    quality = quality_report(
        samples, duplicate_keys=same,
        duplicate_method="the same ICMECAT event in two splits (an ICME across a year "
                         "boundary between years of different splits)",
        near_pairs=time_near_pairs(samples, 86400.0, same),
        near_method="ICMEs of different splits within 24 h of each other (one solar-wind "
                    "stream can hold both)",
        label_agreement=agreement,
        extra={"class_balance_hours": hours,
               "class_balance_hours_note": "calendar hours of the split's years labelled as "
                                           "the trainer labels them (hourly_labels); OMNI2 "
                                           "fill hours included"})
    return _manifest("icme", version, title, description, False, sources, samples, quality,
                     [PROJECT, ("Moestl, Christian", "Personal")], ["solar wind", "ICME"])


# ----------------------------------------------------------------------------- pits
PITS_DIR = "images/hirise_pits"


def dhash(pixels: np.ndarray) -> int:
    """64-bit difference hash of a grey image, the same for the image and its mirror."""
    def one(img: np.ndarray) -> int:
        h, w = img.shape
        ys = np.linspace(0, h, 9).astype(int)
        xs = np.linspace(0, w, 10).astype(int)
        small = np.array([[np.nanmean(img[ys[i]:ys[i + 1], xs[j]:xs[j + 1]])
                           for j in range(9)] for i in range(8)])
        bits = (small[:, 1:] > small[:, :-1]).ravel()
        return int(sum(1 << k for k, b in enumerate(bits) if b))

    a = np.asarray(pixels, dtype=float)
    return min(one(a), one(a[:, ::-1]))


def build_pits(shared: Path, version: str = "1.0.0") -> Manifest:
    """pits: a sample is one labelled box of a HiRISE crop; the split is by observation
    (the trainer's ``split_by_observation``, checked against the card)."""
    from epnml.experiments.pits.train import SEED, load_crops, split_by_observation
    from epnml.ml.imagery.detector import CLASS_NAMES

    root = _need(shared / PITS_DIR)
    crops = load_crops(root)
    split = split_by_observation(crops, SEED)
    c = card("pits", version)["split"]
    for part in ("train", "validation", "test"):
        if split[part] != c[part]["observations"]:
            raise _mismatch("pits", f"{part} observations", split[part],
                            c[part]["observations"])
    part_of = {o: part for part, obs in split.items() for o in obs}
    samples: list[Sample] = []
    sources: list[Source] = []
    dup_keys: dict[str, str] = {}
    hashes: dict[str, int] = {}
    for crop in crops:
        rel = f"{PITS_DIR}/images/{crop.name}"
        lab = f"{PITS_DIR}/labels/{Path(crop.name).stem}.txt"
        img_src = _file_source(shared, rel, "archive", DEEPLANDFORMS_REF)
        sources += [img_src, _file_source(shared, lab, "catalogue", DEEPLANDFORMS_REF)]
        h = dhash(crop.pixels)
        for k, box in enumerate(crop.boxes):
            sid = f"{Path(crop.name).stem}#{k}"
            samples.append(Sample(sid, part_of[crop.observation], rel,
                                  CLASS_NAMES[int(box[0])], DEEPLANDFORMS_LABEL,
                                  obs_id=crop.observation))
            dup_keys[sid] = img_src.sha256 or ""
            hashes[sid] = h
    for part in ("train", "validation", "test"):
        ours = {n: sum(s.split == part and s.label == n for s in samples) for n in CLASS_NAMES}
        if ours != c[part]["boxes_per_class"]:
            raise _mismatch("pits", f"{part} boxes per class", ours, c[part]["boxes_per_class"])
    n_obs = len(part_of)
    title = f"Training, validation and test set of the epnml pits model {version}"
    description = (
        f"Boxes of Mars pits and skylights (5 DeepLandforms classes) in {len(crops)} REAL "
        f"HiRISE RED crops from {n_obs} observations (75 crops and their mirrored copies; "
        "boxes under 2 px dropped), split by HiRISE observation so that no observation, and "
        "no crop with its mirror, is in two splits (seeded search keeping every class in "
        "validation and test). One sample per labelled box.")
    quality = quality_report(
        samples, duplicate_keys=dup_keys,
        duplicate_method="byte-identical crop files (sha256) in two splits",
        near_pairs=hash_near_pairs(samples, hashes, 6),
        near_method="crops of different splits whose mirror-invariant 64-bit difference "
                    "hashes differ in <= 6 bits",
        label_agreement={"available": False,
                         "reason": "one annotation set (DeepLandforms); no second annotator "
                                   "of these crops"},
        extra={"observations": {p: len(v) for p, v in split.items()},
               "crops": {p: sum(part_of[cr.observation] == p for cr in crops)
                         for p in ("train", "validation", "test")}})
    return _manifest("pits", version, title, description, False, sources, samples, quality,
                     [PROJECT, ("Nodjoumi, Giacomo", "Personal")],
                     ["Mars", "pits", "skylights", "HiRISE"])


# ----------------------------------------------------------------------------- common
def _manifest(model: str, version: str, title: str, description: str, simulated: bool,
              sources: Sequence[Source], samples: Sequence[Sample], quality: dict[str, Any],
              creators: Sequence[tuple[str, str]], subjects: Sequence[str]) -> Manifest:
    used = {s.source_file for s in samples}
    missing = sorted(used - {s.source_file for s in sources})
    if missing:
        raise ValueError(f"{model}-{version}: samples from unlisted sources: {missing[:3]}")
    m = Manifest(model, version, title, description, simulated, list(sources), list(samples),
                 quality)
    m.datacite = datacite(model_name=model, model_version=version, title=title,
                          description=description, year=_year_now(), sources=sources,
                          creators=creators, rights="cc-by-4.0", simulated=simulated,
                          subjects=subjects)
    m.check(f"{model}-{version}")
    return m


#: model version -> builder (shared-data root -> manifest).
BUILDERS: dict[str, Callable[[Path], Manifest]] = {
    "icme-2.0.0": build_icme_2,
    "pits-1.0.0": build_pits,
}


def build_all(shared: Path, out: Path, only: Sequence[str] = ()) -> list[Path]:
    """Write ``<out>/<model>-<version>.json`` for each builder (or those named)."""
    unknown = sorted(set(only) - set(BUILDERS))
    if unknown:
        raise ValueError(f"no dataset builder for {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(BUILDERS))}")
    if not shared.is_dir():
        raise DataMissing(f"shared data not found at {shared} (set EPNML_SHARED_DATA)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, builder in BUILDERS.items():
        if only and key not in only:
            continue
        m = builder(shared)
        path = out / f"{m.model_name}-{m.model_version}.json"
        path.write_text(m.to_json())
        written.append(path)
    return written
