"""Meteors pipeline: reader rules, features, classifier, pairing, stage rows (no stack)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.readers.meteors import read_meteors_csv
from epnml.ingest.stage import GranuleError, RunContext
from tests.fixtures.make_meteors_fixtures import (
    BAD_FILES,
    BAD_RECORDS,
    FIXTURE_N,
    fixture_frame,
    make_meteors_fixtures,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_meteors_fixtures(tmp_path_factory.mktemp("meteors"))


def _ctx(**params: object) -> RunContext:
    return RunContext("test-run", "http://example.org/static", datetime(2026, 1, 1),
                      make_quicklooks=True, params=dict(params))


def test_reader_reads_plain_and_gzip_alike(files: dict[str, Path]) -> None:
    good, _ = fixture_frame()
    plain = read_meteors_csv(files["simulated_meteors_fixture.csv"])
    gz = read_meteors_csv(files["simulated_meteors_fixture.csv.gz"])
    assert len(plain.records) == len(good) == len(gz.records)
    assert plain.invalid == {} and gz.invalid == {}
    assert [r.meteor_id for r in plain.records] == [r.meteor_id for r in gz.records]
    first = plain.records[0]
    assert first.meteor_id == str(good.iloc[0]["fname"])[:-4]
    assert len(first.mag) == int(good.iloc[0]["sN"]) == len(first.ra) == len(first.dec)
    assert plain.source_path.startswith("SIMULATED")


def test_reader_leaves_out_bad_records_and_counts_them(files: dict[str, Path]) -> None:
    good, _ = fixture_frame()
    table = read_meteors_csv(files["simulated_meteors_mixed.csv"])
    assert len(table.records) == len(good)
    assert table.invalid == BAD_RECORDS


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_reader_refuses_bad_files_with_one_line(files: dict[str, Path], name: str) -> None:
    with pytest.raises(GranuleError) as err:
        read_meteors_csv(files[name])
    assert err.value.reason == BAD_FILES[name]
    assert str(err.value) == f"{files[name]}: {BAD_FILES[name]}"
    assert "\n" not in str(err.value)


def test_reader_refuses_more_records_than_the_limit(files: dict[str, Path]) -> None:
    from epnml.ingest.limits import LimitExceeded, ResourceLimits

    with pytest.raises(LimitExceeded) as err:
        read_meteors_csv(files["simulated_meteors_fixture.csv"], ResourceLimits(max_samples=3))
    assert err.value.reason == "meteor records 4 exceeds the limit of 3"


def test_shape_features_ignore_frame_count_and_zero_point() -> None:
    from epnml.ml.meteors.features import light_curve_features

    def curve(n: int) -> np.ndarray:
        t = np.linspace(0, 1, n)
        return 2.0 - 2.5 * np.log10(np.exp(-0.5 * ((t - 0.3) / 0.15) ** 2) + 0.05)

    short, long_ = light_curve_features(curve(21)), light_curve_features(curve(61))
    assert short["t_peak"] == pytest.approx(0.3, abs=0.001)
    assert long_["t_peak"] == pytest.approx(0.3, abs=0.001)
    assert long_["skewness"] == pytest.approx(short["skewness"], abs=0.02)
    assert long_["rise_slope"] == pytest.approx(short["rise_slope"], rel=0.02)
    assert long_["decay_slope"] == pytest.approx(short["decay_slope"], rel=0.02)
    assert short["skewness"] > 0  # early peak: the light's tail is late
    brighter = light_curve_features(curve(21) - 1.0)  # another camera's zero point
    for name in ("t_peak", "skewness", "rise_slope", "decay_slope", "flare_amp"):
        assert brighter[name] == pytest.approx(short[name], abs=1e-9)
    assert brighter["peak_mag"] == pytest.approx(short["peak_mag"] - 1.0)


def test_flare_is_counted_once() -> None:
    from epnml.ml.meteors.features import light_curve_features

    m = np.full(30, 2.0)
    m[14:16] = 0.8  # a 1.2 mag brightening over two fields
    f = light_curve_features(m)
    assert f["n_flares"] == 1.0
    assert f["flare_amp"] == pytest.approx(1.2)


def test_track_speed_and_length_from_swapped_fields() -> None:
    from epnml.ingest.simulate.meteors import track
    from epnml.ml.meteors.features import meteor_features

    ra, dec = track(40, np.random.default_rng(5), (100.0, 45.0), 30.0, 20.0)
    f = meteor_features(np.linspace(3, 1, 40), ra, dec, 50.0)
    assert f["angular_speed"] == pytest.approx(20.0, rel=0.03)
    assert f["track_length"] == pytest.approx(20.0 * 39 / 50, rel=0.03)
    assert f["duration_s"] == pytest.approx(0.78)


def test_outline_holds_every_position_and_wraps_ra() -> None:
    from epnml.ingest.simulate.meteors import track
    from epnml.ml.meteors.track import bounds, fit_track, outline

    ra, dec = track(30, np.random.default_rng(1), (359.0, 20.0), 90.0, 25.0)  # eastward
    tr = fit_track(ra, dec, np.arange(30) / 50.0)
    verts = outline(tr)
    assert len(verts) == 4
    assert bounds(verts)[:2] == (0.0, 360.0)  # across RA 0: every RA, as landform rows
    ra2, dec2 = track(30, np.random.default_rng(1), (120.0, 20.0), 90.0, 25.0)
    lo, hi, dlo, dhi = bounds(outline(fit_track(ra2, dec2, np.arange(30) / 50.0)))
    assert lo <= ra2.min() and ra2.max() <= hi and dlo <= dec2.min() and dec2.max() <= dhi


def test_classifier_is_deterministic_and_names_physical_classes() -> None:
    from epnml.ingest.readers.meteors import _record
    from epnml.ingest.simulate.meteors import simulate_meteors
    from epnml.ml.meteors.features import features_frame
    from epnml.ml.meteors.model import classify, load_model

    frame, _ = simulate_meteors(30, 7)

    records = [_record({k: str(v) for k, v in row.items()}, i)[0]
               for i, row in enumerate(frame.to_dict("records"), start=1)]
    assert all(r is not None for r in records)
    feats, dropped = features_frame(records, 50.0)
    assert dropped == {} and len(feats) == len(frame)
    a = classify(feats, load_model("1.0.0"))
    b = classify(feats, load_model("1.0.0"))
    pd.testing.assert_frame_equal(a, b)
    from epnml.ml.checkpoints import committed_card

    model = load_model("1.0.0")
    k = committed_card("meteors", "1.0.0")["criterion"]["chosen_k"]
    assert len(model.class_names) == k == 5
    assert set(model.class_names) == {"symmetric", "early-peaked", "late-peaked", "flaring"}
    assert ((a["score"] > 1 / k) & (a["score"] <= 1)).all()
    assert set(a["meteor_class"]) <= set(model.class_names)


def test_pairing_is_one_to_one_within_the_window() -> None:
    from epnml.ml.meteors.pairing import pair_meteors

    t = pd.Timestamp("2024-08-12T22:00:00")
    s = pd.Timedelta(seconds=1)
    starts = [t, t + s, t + 2 * s, t + 10 * s, t + 10 * s, t + 30 * s]
    cams = ["CAM1", "CAM2", "CAM3", "CAM1", "CAM1", "CAM2"]
    # 0-1 pair (1 s), 2 would pair with 1 too but 1 is taken; 3 and 4 share a camera
    assert pair_meteors(starts, cams) == [1, 0, None, None, None, None]
    assert pair_meteors(starts, cams, window_s=0.5) == [None] * 6
    with pytest.raises(ValueError, match="pairing window must be >= 0 s, got -1"):
        pair_meteors(starts, cams, window_s=-1)


def test_stage_rows(files: dict[str, Path]) -> None:
    from epnml.ingest.stages.meteors import MeteorsStage
    from epnml.schemas.products import get_product

    good, truth = fixture_frame()
    stage = MeteorsStage("1.0.0")
    granules = stage.granules([files["simulated_meteors_fixture.csv"]])
    assert [g.granule_id for g in granules] == ["simulated_meteors_fixture"]
    out = stage.process(granules[0], _ctx())
    assert len(out.rows) == len(good) == len(out.records)
    assert len(truth) == len(good) and FIXTURE_N < len(good)  # some double stations
    columns = {c.name for c in get_product("meteors").columns()}
    by_id = {r["meteor_id"]: r for r in out.rows}
    assert len({r["granule_uid"] for r in out.rows}) == len(out.rows)
    for row in out.rows:
        assert set(row) - columns == set()
        assert row["target_name"] == "Earth" and row["target_class"] == "planet"
        assert row["spatial_frame_type"] == "celestial"
        assert row["service_title"] == "epnml_meteors"
        assert row["processing_level_desc"].startswith("Meteor light-curve class by model "
                                                       "meteors v1.0.0")
        assert "SIMULATED meteor records" in row["processing_level_desc"]
        assert row["time_min"] < row["time_max"]
        assert re.fullmatch(r"\{(\(\d+\.\d{6}d,-?\d+\.\d{6}d\),){3}\(\d+\.\d{6}d,-?\d+\.\d{6}d\)\}",
                            row["s_region"])
        assert row["thumbnail_url"].endswith(".png")
        assert 0 < row["ml_score"] <= 1
    # every simulated double station is linked, both ways, and nothing else is
    expected = {m: p if isinstance(p, str) else None
                for m, p in zip(truth["meteor_id"], truth["partner"], strict=True)}
    assert {m: r["meteor_linked_id"] for m, r in by_id.items()} == expected
    # a quicklook PNG and a light-curve CSV (access_url) per row
    pngs = [v for k, v in out.files.items() if k.endswith(".png")]
    assert len(pngs) == len(out.rows) == len(out.files) - len(pngs)
    assert all(png.startswith(b"\x89PNG") for png in pngs)


def test_stage_says_what_was_left_out(files: dict[str, Path]) -> None:
    from epnml.ingest.stages.meteors import MeteorsStage

    stage = MeteorsStage("1.0.0")
    granule = stage.granules([files["simulated_meteors_mixed.csv"]])[0]
    out = stage.process(granule, _ctx())
    assert out.invalid_values == BAD_RECORDS
    assert out.rows[0]["processing_level_desc"].endswith(
        "; 6 non-physical input value(s) treated as missing (duplicate record 1, "
        "record whose mag/ra/dec lists differ in length 1, record whose sN disagrees with "
        "its lists 1, record with a non-numeric frame value 1, record with an impossible "
        "date 1, record with fewer than 3 frames 1)")


def test_spec_parameters_derive_versions() -> None:
    from epnml.ingest.spec import defaults, validate_params

    assert defaults("meteors") == {"frame_rate_hz": 50.0, "pair_window_s": 1.0}
    assert validate_params("meteors", {"frame_rate_hz": "25"})[1] == {"frame_rate_hz": 25.0}
    assert validate_params("meteors", {"pair_window_s": 1})[1] == {}
    with pytest.raises(ValueError) as err:
        validate_params("meteors", {"pair_window_s": 20})
    assert str(err.value) == "meteors: pair_window_s must be in [0, 10], got 20"


def test_real_records(shared_data: Path) -> None:
    """The real file: exactly the records and left-outs the model card reports."""
    import json

    from epnml.ml.checkpoints import committed_card

    path = shared_data / "meteors" / "armagh_meteors_2011_2015.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path.name} not in the shared data")
    table = read_meteors_csv(path)
    card = committed_card("meteors", "1.0.0")
    assert len(table.records) == card["data"]["records_used"] == 11770
    assert table.invalid == card["data"]["records_left_out"]
    assert json.dumps(card["metrics"])  # the card carries what was measured


def test_same_file_name_in_two_folders_gives_two_granules(tmp_path: Path) -> None:
    """Granule ids are unique within a run: the second file of a name gets its folder."""
    from epnml.ingest.stages.aurora import AuroraStage
    from epnml.ingest.stages.meteors import MeteorsStage

    for folder in ("night1", "night2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "cam.csv").write_text("x\n")
        (tmp_path / folder / "emus.fits").write_bytes(b"")
    meteors = MeteorsStage.__new__(MeteorsStage).granules(
        [tmp_path / "night1" / "cam.csv", tmp_path / "night2" / "cam.csv"])
    assert [(g.granule_id, g.paths[0].parent.name) for g in meteors] == [
        ("cam", "night1"), ("cam@night2", "night2")]
    aurora = AuroraStage.__new__(AuroraStage).granules(
        [tmp_path / "night1" / "emus.fits", tmp_path / "night2" / "emus.fits"])
    assert [g.granule_id for g in aurora] == ["emus.fits", "night2_emus.fits"]
