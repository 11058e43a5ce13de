"""Published ICME lists: HELIO4CAST ICMECAT and the Nguyen et al. 2019 Wind list.

One parser for the icme stage (catalogue cross-match columns of every event row) and the
experiments (labels, evaluation). The files stay in the read-only shared data
(``<shared_data>/catalogues/``) and are never copied into the repository.

- ICMECAT (Möstl et al., ``helio4cast_icmecat_v23.csv``): one row per ICME with
  ``icmecat_id``, ``sc_insitu`` (the spacecraft that saw it) and ISO times
  ``icme_start_time`` / ``mo_start_time`` / ``mo_end_time`` (``...Z``). An event is
  ``icme_start_time .. mo_end_time`` (sheath and magnetic obstacle), as in the IWF case.
- Nguyen et al. 2019 (ApJ 874, 145, ``nguyen2019_wind_icmes.csv``): ``begin,end,origin``,
  times ``YYYY/MM/DD HH:MM`` with or without seconds (the list mixes both, even ``1:29``
  for ``01:29``). It has no identifiers: ours is ``N19_<begin as YYYYmmddTHHMM>`` (unique
  in the published list; checked when read).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: file names under ``<shared_data>/catalogues/`` (their versions are in the names).
ICMECAT_NAME = "helio4cast_icmecat_v23.csv"
NGUYEN_NAME = "nguyen2019_wind_icmes.csv"
ICMECAT_COLUMNS = ("icmecat_id", "sc_insitu", "icme_start_time", "mo_end_time")
NGUYEN_COLUMNS = ("begin", "end", "origin")
#: columns of every parsed catalogue: naive UTC timestamps, end > start.
EVENT_COLUMNS = ["id", "spacecraft", "start", "end"]


class CatalogueError(ValueError):
    """A catalogue file cannot be used; the message names the file and the reason."""


def _times(values: pd.Series, path: Path, column: str, fmt: str | None) -> pd.Series:
    try:
        t = pd.to_datetime(values, format=fmt, utc=True)
    except (ValueError, TypeError) as exc:
        raise CatalogueError(f"{path.name}: unreadable time in column {column!r} "
                             f"({str(exc).splitlines()[0][:120]})") from None
    if t.isna().any():
        raise CatalogueError(f"{path.name}: {int(t.isna().sum())} empty time(s) in {column!r}")
    return t.dt.tz_localize(None)


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise CatalogueError(f"{path.name}: not a readable CSV ({type(exc).__name__})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CatalogueError(f"{path.name}: missing column(s) {', '.join(missing)}")
    return table


def _events(ids: pd.Series, spacecraft: pd.Series, start: pd.Series, end: pd.Series,
            path: Path) -> pd.DataFrame:
    events = pd.DataFrame({"id": ids.to_numpy(), "spacecraft": spacecraft.to_numpy(),
                           "start": start.to_numpy(), "end": end.to_numpy()},
                          columns=EVENT_COLUMNS)
    bad = events["end"] <= events["start"]
    if bad.any():
        raise CatalogueError(f"{path.name}: {int(bad.sum())} event(s) end before they start "
                             f"(first: {events.loc[bad, 'id'].iloc[0]})")
    if events["id"].duplicated().any():
        raise CatalogueError(f"{path.name}: repeated id "
                             f"{events.loc[events['id'].duplicated(), 'id'].iloc[0]}")
    return events.sort_values(["start", "id"], ignore_index=True)


def read_icmecat(path: Path) -> pd.DataFrame:
    """ICMECAT rows as :data:`EVENT_COLUMNS` (spacecraft = ``sc_insitu``, e.g. ``Wind``)."""
    table = _read_csv(path, ICMECAT_COLUMNS)
    return _events(table["icmecat_id"].str.strip(), table["sc_insitu"].str.strip(),
                   _times(table["icme_start_time"], path, "icme_start_time", None),
                   _times(table["mo_end_time"], path, "mo_end_time", None), path)


def nguyen_id(begin: pd.Timestamp) -> str:
    return f"N19_{begin:%Y%m%dT%H%M}"


def read_nguyen(path: Path) -> pd.DataFrame:
    """Nguyen 2019 rows as :data:`EVENT_COLUMNS` (spacecraft ``Wind``; id from ``begin``)."""
    table = _read_csv(path, NGUYEN_COLUMNS)
    start = _times(table["begin"].str.strip(), path, "begin", "mixed")
    end = _times(table["end"].str.strip(), path, "end", "mixed")
    return _events(start.map(nguyen_id), pd.Series(["Wind"] * len(table)), start, end, path)


def between(events: pd.DataFrame, spacecraft: str | None, start: object, end: object
            ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(start, end) of the events of ``spacecraft`` (None: all) overlapping [start, end]."""
    m = (events["end"] >= pd.Timestamp(start)) & (events["start"] <= pd.Timestamp(end))  # type: ignore[arg-type]
    if spacecraft is not None:
        m &= events["spacecraft"] == spacecraft
    return sorted(zip(events.loc[m, "start"], events.loc[m, "end"], strict=True))


# ----------------------------------------------------------------------- cross-matching
#: the stage's catalogues: short name (column prefix) -> file name and reader.
CATALOGUES = {"icmecat": ICMECAT_NAME, "nguyen": NGUYEN_NAME}
#: which catalogue spacecraft a source matches (Source.host of the icme stage). L1 monitors
#: and OMNI (Wind/ACE shifted to the bow shock, within about an hour) match ICMECAT's Wind
#: events and the Nguyen (Wind) list; STEREO matches its own spacecraft in ICMECAT only.
MATCH_SPACECRAFT: dict[str, dict[str, str]] = {
    "icmecat": {"Wind": "Wind", "OMNI": "Wind", "ACE": "Wind",
                "STEREO-A": "STEREO-A", "STEREO-B": "STEREO-B"},
    "nguyen": {"Wind": "Wind", "OMNI": "Wind", "ACE": "Wind"},
}


@dataclass(frozen=True)
class CatalogueFile:
    """One catalogue as used by a run: recorded with the run (name, sha256, events)."""

    key: str
    name: str
    sha256: str
    events: pd.DataFrame

    def record(self) -> dict[str, object]:
        return {"name": self.name, "sha256": self.sha256, "events": len(self.events)}


@dataclass(frozen=True)
class Catalogues:
    """The catalogues found under a reference-data folder (empty: none available)."""

    files: tuple[CatalogueFile, ...]
    #: why some or all are missing (for the run record and processing_level_desc).
    missing: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return bool(self.files)

    def get(self, key: str) -> CatalogueFile | None:
        return next((f for f in self.files if f.key == key), None)

    def record(self) -> dict[str, object]:
        """What the run stores (``epnml.runs.inputs``): names and sha256 of the files."""
        out: dict[str, object] = {"catalogues": [f.record() for f in self.files]}
        if self.missing:
            out["catalogues_missing"] = list(self.missing)
        if not self.files:
            out["catalogue_match"] = "catalogues not available"
        return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_catalogues(reference_data: Path | None) -> Catalogues:
    """The catalogues of ``<reference_data>/catalogues/``; a missing file is left out (its
    columns stay NULL) and named in ``missing``; an unreadable one raises CatalogueError."""
    if reference_data is None:
        return Catalogues((), tuple(CATALOGUES.values()))
    files, missing = [], []
    for key, name in CATALOGUES.items():
        path = Path(reference_data) / "catalogues" / name
        if not path.is_file():
            missing.append(name)
            continue
        events = read_icmecat(path) if key == "icmecat" else read_nguyen(path)
        files.append(CatalogueFile(key, name, _sha256(path), events))
    return Catalogues(tuple(files), tuple(missing))


def best_match(events: pd.DataFrame, spacecraft: str | None, start: pd.Timestamp,
               end: pd.Timestamp) -> tuple[str, float] | None:
    """The catalogue event of ``spacecraft`` most covered by the detection [start, end]:
    (id, overlap) with overlap = |detection ∩ event| / |event| in (0, 1]; None when no
    event of that spacecraft overlaps (touching ends do not). Ties: the longer common
    time, then the earlier event."""
    if spacecraft is None or events.empty:
        return None
    cand = events[(events["spacecraft"] == spacecraft) & (events["start"] < end)
                  & (events["end"] > start)]
    if cand.empty:
        return None
    s, e = cand["start"].to_numpy(), cand["end"].to_numpy()
    common = (np.minimum(e, end.to_datetime64()) - np.maximum(s, start.to_datetime64())
              ) / np.timedelta64(1, "s")
    frac = np.minimum(common / ((e - s) / np.timedelta64(1, "s")), 1.0)
    ranked = pd.DataFrame({"id": cand["id"].to_numpy(), "frac": frac, "common": common,
                           "start": s})
    best = ranked.sort_values(["frac", "common", "start"],
                              ascending=[False, False, True]).iloc[0]
    return str(best["id"]), float(best["frac"])
