"""Catalogue cross-match of icme event rows (issue #13): reader, matching rule, stage, run record.

Fixture catalogues: tests/fixtures/make_icme_catalogue_fixtures.py (seeded, real layouts).
The expected matches are computed here by plain interval arithmetic, independent of
``best_match``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from epnml.config import Settings
from epnml.ingest.readers.icme_catalogues import (
    CatalogueError,
    best_match,
    load_catalogues,
    read_icmecat,
    read_nguyen,
)
from epnml.ingest.registry import make_stage
from epnml.ingest.runner import run_pipeline
from epnml.ingest.stage import RunContext
from epnml.ingest.stages.icme import MATCH_COLUMNS, Source, cross_match
from tests.fixtures.make_icme_catalogue_fixtures import (
    ICMECAT_EVENTS,
    NGUYEN_EVENTS,
    NGUYEN_IDS,
    make_icme_catalogue_fixtures,
)

T = pd.Timestamp
NOT_AVAILABLE = "; not cross-matched with ICME catalogues (catalogues not available)"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reference")
    make_icme_catalogue_fixtures(root)
    return root


def _ctx(reference_data: Path | None, **params: float) -> RunContext:
    return RunContext(run_id="t-xmatch", files_base_url="http://example.org/static/epnml",
                      started=datetime(2026, 1, 2, 3, 4, 5), make_quicklooks=False,
                      params=dict(params), reference_data=reference_data)


def _expected(events: list[tuple[str, str, str, str]], spacecraft: str, start: T, end: T
              ) -> tuple[str, float] | None:
    """The rule by hand: largest covered fraction, then longest common time, then earliest."""
    best: tuple[float, float, T, str] | None = None
    for event_id, sc, s, e in events:
        s0, e0 = T(s).tz_localize(None), T(e).tz_localize(None)
        common = (min(e0, end) - max(s0, start)).total_seconds()
        if sc != spacecraft or common <= 0:
            continue
        key = (common / (e0 - s0).total_seconds(), common, s0, event_id)
        if best is None or (key[0], key[1], -key[2].value) > (best[0], best[1], -best[2].value):
            best = key
    return None if best is None else (best[3], best[0])


# ------------------------------------------------------------------------------- reader
def test_readers_parse_the_real_layouts(reference: Path) -> None:
    icmecat = read_icmecat(reference / "catalogues" / "helio4cast_icmecat_v23.csv")
    assert len(icmecat) == len(ICMECAT_EVENTS) + 12
    wind = icmecat[icmecat["spacecraft"] == "Wind"]
    assert list(wind["id"]) == ["ICME_Wind_TEST_20150310_01", "ICME_Wind_TEST_20150311_01",
                                "ICME_Wind_TEST_20150601_01"]
    assert wind["start"].iloc[1] == T("2015-03-11 06:00") and wind["end"].iloc[1] == T(
        "2015-03-11 12:00")
    nguyen = read_nguyen(reference / "catalogues" / "nguyen2019_wind_icmes.csv")
    assert list(nguyen["id"]) == NGUYEN_IDS
    assert list(nguyen["end"]) == [T("2015-03-10 21:00"), T("2015-03-11 09:00"),
                                   T("2015-06-01 12:00:30")]
    assert set(nguyen["spacecraft"]) == {"Wind"}


def test_reader_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "helio4cast_icmecat_v23.csv"
    bad.write_text("icmecat_id,icme_start_time,mo_end_time\nX,2015-01-01T00:00Z,2015-01-02T00:00Z\n")
    with pytest.raises(CatalogueError, match=r"^helio4cast_icmecat_v23.csv: missing column\(s\) "
                                             r"sc_insitu$"):
        read_icmecat(bad)
    backwards = tmp_path / "nguyen2019_wind_icmes.csv"
    backwards.write_text("begin,end,origin\n2015/01/02 00:00,2015/01/01 00:00,FP\n")
    with pytest.raises(CatalogueError, match=r"^nguyen2019_wind_icmes.csv: 1 event\(s\) end "
                                             r"before they start \(first: N19_20150102T0000\)$"):
        read_nguyen(backwards)
    garbage = tmp_path / "x" / "nguyen2019_wind_icmes.csv"
    garbage.parent.mkdir()
    garbage.write_text("begin,end,origin\nsoon,later,FP\n")
    with pytest.raises(CatalogueError, match=r"^nguyen2019_wind_icmes.csv: unreadable time in "
                                             r"column 'begin'"):
        read_nguyen(garbage)


# ----------------------------------------------------------------------------- matching
@pytest.mark.parametrize(("start", "end", "wanted_id", "wanted_overlap"), [
    # 12 h of the 24-h event (0.5) and 3 h of the 6-h one (0.5): tie, longer common time wins
    ("2015-03-10 12:00", "2015-03-11 09:00", "ICME_Wind_TEST_20150310_01", 0.5),
    # 4 h of 24 (0.1667) against all of the 6-h event (1.0): the larger fraction wins
    ("2015-03-10 20:00", "2015-03-11 12:00", "ICME_Wind_TEST_20150311_01", 1.0),
    # 6 of 24 hours
    ("2015-03-09 00:00", "2015-03-10 06:00", "ICME_Wind_TEST_20150310_01", 0.25),
    # a detection longer than the event covers all of it
    ("2015-05-30 00:00", "2015-06-05 00:00", "ICME_Wind_TEST_20150601_01", 1.0),
    # ending where the event starts is no overlap; a quiet day neither
    ("2015-03-09 00:00", "2015-03-10 00:00", None, None),
    ("2015-04-01 00:00", "2015-04-02 00:00", None, None),
])
def test_best_match_arithmetic(reference: Path, start: str, end: str, wanted_id: str | None,
                               wanted_overlap: float | None) -> None:
    events = read_icmecat(reference / "catalogues" / "helio4cast_icmecat_v23.csv")
    got = best_match(events, "Wind", T(start), T(end))
    assert got == _expected(ICMECAT_EVENTS, "Wind", T(start), T(end))
    if wanted_id is None:
        assert got is None
    else:
        assert got is not None
        assert got[0] == wanted_id and got[1] == pytest.approx(wanted_overlap, abs=1e-12)


def test_other_spacecraft_are_ignored(reference: Path) -> None:
    cats = load_catalogues(reference)
    start, end = T("2015-03-10 12:00"), T("2015-03-11 09:00")
    # STEREO-A: its own event (21 of 72 h), never a Wind one, and no Nguyen (Wind) list
    stereo = cross_match(cats, Source("STEREO-A", "IMPACT#PLASTIC", False, False), start, end)
    assert stereo == {"icmecat_id": "ICME_STEREO_A_TEST_20150309_01",
                      "icmecat_overlap": round(21 / 72, 4), "nguyen_id": None,
                      "nguyen_overlap": None}
    # OMNI (Wind/ACE at the bow shock) matches the Wind events of both lists: Nguyen's
    # 3-h event is covered whole (1.0), its 18-h one half (9 h)
    omni = cross_match(cats, Source("OMNI", "OMNI", False, True), start, end)
    assert omni == {"icmecat_id": "ICME_Wind_TEST_20150310_01", "icmecat_overlap": 0.5,
                    "nguyen_id": "N19_20150311T0600", "nguyen_overlap": 1.0}
    # a spacecraft no catalogue is matched for, and simulated inputs: NULL
    assert cross_match(cats, Source("Juno", "MAG", False, False), start, end) == dict.fromkeys(
        MATCH_COLUMNS)
    assert cross_match(cats, Source("Wind", "MFI#SWE", True, True), start, end) == dict.fromkeys(
        MATCH_COLUMNS)


def test_catalogue_availability_is_recorded(reference: Path, tmp_path: Path) -> None:
    record = load_catalogues(reference).record()
    digest = hashlib.sha256((reference / "catalogues" / "helio4cast_icmecat_v23.csv")
                            .read_bytes()).hexdigest()
    assert record == {"catalogues": [
        {"name": "helio4cast_icmecat_v23.csv", "sha256": digest, "events": 16},
        {"name": "nguyen2019_wind_icmes.csv", "sha256": hashlib.sha256(
            (reference / "catalogues" / "nguyen2019_wind_icmes.csv").read_bytes()).hexdigest(),
         "events": 3}]}
    assert load_catalogues(tmp_path).record() == {
        "catalogues": [], "catalogues_missing": ["helio4cast_icmecat_v23.csv",
                                                 "nguyen2019_wind_icmes.csv"],
        "catalogue_match": "catalogues not available"}
    (tmp_path / "catalogues").mkdir()
    (tmp_path / "catalogues" / "nguyen2019_wind_icmes.csv").write_text(
        "begin,end,origin\n" + "".join(f"{b},{e},{o}\n" for b, e, o in NGUYEN_EVENTS))
    partial = load_catalogues(tmp_path)
    assert partial.available and partial.missing == ("helio4cast_icmecat_v23.csv",)
    assert cross_match(partial, Source("Wind", "MFI#SWE", False, True), T("2015-06-01 06:00"),
                       T("2015-06-03")) == {"icmecat_id": None, "icmecat_overlap": None,
                                            "nguyen_id": "N19_20150601T0000",
                                            "nguyen_overlap": round(21630 / 43200, 4)}


# -------------------------------------------------------------------------------- stage
@pytest.fixture(scope="module")
def wind_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[T, T]]]:
    """SIMULATED solar wind named like a real Wind file (no "simulated" in the name), so
    that the stage cross-matches it: the catalogue events are put on its ICMEs."""
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    frame, truth = simulate_solar_wind("2015-03-01", days=21, seed=11, n_icmes=3)
    folder = tmp_path_factory.mktemp("xmatch")
    # written under its honest name, then renamed in this test's scratch folder only: the
    # stage never cross-matches inputs it knows are simulated (tested above)
    path = write_csv(frame, folder / "wind_simulated_20150301.csv").rename(
        folder / "wind_20150301.csv")
    return path, list(truth)


def _truth_catalogue(root: Path, truth: list[tuple[T, T]]) -> list[tuple[str, str, str, str]]:
    """Fixture catalogues plus one Wind event on each simulated ICME (first half of it)."""
    make_icme_catalogue_fixtures(root)
    events = []
    for k, icme in enumerate(truth):
        s, e = T(icme[0]), T(icme[1])
        events.append((f"ICME_Wind_SIM_{k:02d}", "Wind", f"{s:%Y-%m-%dT%H:%MZ}",
                       f"{s + (e - s) / 2:%Y-%m-%dT%H:%MZ}"))
    path = root / "catalogues" / "helio4cast_icmecat_v23.csv"
    with path.open("a") as out:
        for i, ev in enumerate(events):
            out.write(",".join([str(100 + i), *ev[:3], ev[2], ev[3], *[""] * 33]) + "\n")
    return [e for e in ICMECAT_EVENTS if e[1] == "Wind"] + events


def test_stage_rows_carry_the_matches(wind_csv: tuple[Path, list[tuple[T, T]]],
                                      tmp_path: Path) -> None:
    path, truth = wind_csv
    assert len(truth) == 3
    catalogue = _truth_catalogue(tmp_path, truth)
    stage = make_stage("icme")
    (granule,) = stage.granules([path])
    out = stage.process(granule, _ctx(tmp_path, threshold=0.3))
    assert len(out.rows) == len(out.records) > 0
    matched = 0
    for row, rec in zip(out.rows, out.records.to_dict("records"), strict=True):
        start = T(rec["start"]).tz_convert(None)
        end = T(rec["end"]).tz_convert(None)
        want = _expected(catalogue, "Wind", start, end)
        assert (row["icmecat_id"], row["icmecat_overlap"]) == (
            (want[0], round(want[1], 4)) if want else (None, None))
        assert (rec["icmecat_id"], rec["icmecat_overlap"]) == (
            row["icmecat_id"], row["icmecat_overlap"])
        assert row["nguyen_id"] is None  # the Nguyen fixture has no event in these weeks
        assert NOT_AVAILABLE not in row["processing_level_desc"]
        matched += want is not None
    assert matched == len({r["icmecat_id"] for r in out.rows} - {None}) > 0

    # the same granule without reference data: NULL columns, and the rows say why
    bare = stage.process(granule, _ctx(None, threshold=0.3))
    assert [r["granule_uid"] for r in bare.rows] == [r["granule_uid"] for r in out.rows]
    for row in bare.rows:
        assert [row[c] for c in MATCH_COLUMNS] == [None] * 4
        assert row["processing_level_desc"].endswith(NOT_AVAILABLE)


def test_predict_run_records_the_catalogues(wind_csv: tuple[Path, list[tuple[T, T]]],
                                            reference: Path, tmp_path: Path) -> None:
    path, _ = wind_csv
    settings = Settings(shared_data=reference, data_dir=tmp_path / "files")
    summary = run_pipeline("icme", [path], mode="predict", settings=settings, workers=1,
                           progress=False)
    assert [c["name"] for c in summary.inputs["catalogues"]] == [  # type: ignore[index]
        "helio4cast_icmecat_v23.csv", "nguyen2019_wind_icmes.csv"]
    assert list(summary.records.columns[-4:]) == MATCH_COLUMNS
    assert "catalogues not available" not in summary.text()
    bare = run_pipeline("icme", [path], mode="predict", progress=False, workers=1,
                        settings=Settings(shared_data=tmp_path / "none",
                                          data_dir=tmp_path / "files"))
    assert bare.inputs["catalogue_match"] == "catalogues not available"
    assert "  catalogues not available: catalogue cross-match columns left empty" in bare.text()


# --------------------------------------------------------------------------- real data
def test_real_catalogues_on_real_omni2_2015(shared_data: Path) -> None:
    omni = shared_data / "solarwind" / "omni2_hourly" / "omni2_2015.dat"
    cats = load_catalogues(shared_data)
    assert [f.record()["events"] for f in cats.files] == [1976, 653]
    icmecat = cats.get("icmecat")
    assert icmecat is not None
    wind = [(r.id, r.spacecraft, str(r.start), str(r.end))
            for r in icmecat.events.itertuples() if r.spacecraft == "Wind"]
    stage = make_stage("icme")
    (granule,) = stage.granules([omni])
    out = stage.process(granule, _ctx(shared_data))
    assert len(out.rows) > 0
    for row, rec in zip(out.rows, out.records.to_dict("records"), strict=True):
        want = _expected(wind, "Wind", T(rec["start"]).tz_convert(None),
                         T(rec["end"]).tz_convert(None))
        assert (row["icmecat_id"], row["icmecat_overlap"]) == (
            (want[0], round(want[1], 4)) if want else (None, None))
        assert row["nguyen_id"] is None or row["nguyen_id"].startswith("N19_2015")
        assert row["icmecat_id"] is None or row["icmecat_id"].startswith("ICME_Wind_")
    ids = [r["icmecat_id"] for r in out.rows]
    # 2015 (declining phase) holds catalogued ICMEs the model finds, and detections it lists not
    assert any(ids) and not all(ids)
