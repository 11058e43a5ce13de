"""Every row has something to download (issue #18): ``access_url`` answers 200 with
``access_format`` and a body within 10 % of ``access_estsize`` kB; what each family's
file holds (docs/service-api.md, "What access_url delivers")."""

from __future__ import annotations

import io
import re
import sys
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from epnml.ingest.access import KBYTE, cutout_png, estsize_kb
from epnml.ingest.registry import make_stage
from epnml.ingest.stage import RunContext, StageOutput

BASE = "http://example.org/static/epnml"


def _ctx(**params: object) -> RunContext:
    return RunContext("t-access", BASE, datetime(2026, 1, 2), make_quicklooks=True,
                      params=dict(params))


def _file(out: StageOutput, row: dict[str, Any]) -> bytes:
    """The file a row's access_url names, as the stage returned it; its size checked."""
    rel = row["access_url"].removeprefix(BASE + "/")
    content = out.files[rel]
    assert abs(len(content) - row["access_estsize"] * KBYTE) <= 0.10 * len(content), \
        (rel, len(content), row["access_estsize"])
    return content


def _csv(content: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(content), comment="#")


def test_estsize_is_rounded_kbytes_at_least_one() -> None:
    assert [estsize_kb(b"x" * n) for n in (0, 1, 1499, 1500, 5000, 123_456)] == \
        [1, 1, 1, 2, 5, 123]


def test_event_extract_holds_the_input_samples_of_its_window(tmp_path: Path) -> None:
    from epnml.ingest.readers.solarwind import read_solarwind
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv
    from epnml.ingest.stages.icme import extract_window

    sim, _ = simulate_solar_wind("2023-02-01", days=21, seed=5, n_icmes=3)
    path = tmp_path / "wind_simulated_20230201.csv"
    write_csv(sim, path)
    stage = make_stage("icme")
    (granule,) = stage.granules([path])
    out = stage.process(granule, _ctx(threshold=0.2))
    frame = read_solarwind([path])
    assert len(out.rows) == len(out.records) > 0
    for row, rec in zip(out.rows, out.records.itertuples(), strict=True):
        assert row["access_format"] == "text/csv"
        got = _csv(_file(out, row))
        start = pd.Timestamp(rec.start).tz_convert(None)
        end = pd.Timestamp(rec.end).tz_convert(None)
        lo, hi = extract_window(start, end)
        want = frame.loc[(frame.index >= lo) & (frame.index <= hi)]
        times = pd.to_datetime(got["time"]).dt.tz_convert(None)
        assert list(times) == list(want.index)  # every 10-min sample of the window
        assert times.iloc[0] <= start and times.iloc[-1] >= end
        np.testing.assert_allclose(got["bt"], want["bt"], rtol=1e-3)
        np.testing.assert_allclose(got["vt"], want["vt"], rtol=1e-3)


def test_crossing_extract_holds_the_mag_samples_around_the_edge(tmp_path: Path) -> None:
    from epnml.ingest.epn import UNIX_EPOCH_JD
    from epnml.ingest.readers.messenger import read_mag
    from epnml.ingest.simulate.messenger import simulate_orbit, write_pds3
    from epnml.ingest.stages.crossings import EXTRACT_HALF_WIDTH

    files = list(write_pds3(simulate_orbit(900, 31), tmp_path))
    stage = make_stage("crossings")
    (granule,) = stage.granules(files)
    out = stage.process(granule, _ctx())
    frame = read_mag(files)
    assert len(out.rows) > 0
    for row in out.rows:
        got = _csv(_file(out, row))
        t = pd.Timestamp((row["time_min"] - UNIX_EPOCH_JD) * 86_400e9).round("ms")
        want = frame.loc[(frame.index >= t - EXTRACT_HALF_WIDTH)
                         & (frame.index <= t + EXTRACT_HALF_WIDTH)]
        assert len(got) == len(want) == 601  # 1-s samples, edge +- 5 min
        times = pd.to_datetime(got["time"]).dt.tz_convert(None)
        assert list(times) == list(want.index)
        for col in ("bx", "by", "bz", "x", "y", "z"):
            np.testing.assert_allclose(got[col], want[col], rtol=1e-6, atol=1e-3)


def test_meteor_csv_holds_the_light_curve_and_track(tmp_path: Path) -> None:
    from epnml.ingest.readers.meteors import read_meteors_csv
    from epnml.ingest.stages.meteors import MeteorsStage
    from tests.fixtures.make_meteors_fixtures import make_meteors_fixtures

    path = make_meteors_fixtures(tmp_path)["simulated_meteors_fixture.csv"]
    stage = MeteorsStage("1.0.0")
    (granule,) = stage.granules([path])
    out = stage.process(granule, _ctx())
    by_id = {r.meteor_id: r for r in read_meteors_csv(path).records}
    assert len(out.rows) == 9
    for row in out.rows:
        content = out.files[row["access_url"].removeprefix(BASE + "/")]
        # integer kB: within 10 % from 5 kB on, within the rounding (0.5 kB) below
        assert abs(len(content) - row["access_estsize"] * KBYTE) <= \
            max(0.10 * len(content), KBYTE / 2)
        got = _csv(content)
        rec = by_id[row["meteor_id"]]
        assert len(got) == row["meteor_frames"] == len(rec.mag)
        np.testing.assert_allclose(got["mag"], rec.mag, atol=5e-4)
        np.testing.assert_allclose(got["ra_deg"], rec.ra, atol=5e-5)
        np.testing.assert_allclose(got["dec_deg"], rec.dec, atol=5e-5)
        assert got["t_s"].iloc[-1] == pytest.approx((len(rec.mag) - 1) / 50.0)
        # the fitted track: constant steps along the row's track length, and within one
        # step of the measured positions (the two video fields alternate along the track)
        step = row["meteor_track_length"] / (len(rec.mag) - 1)
        fit = _unit(got["ra_fit_deg"], got["dec_fit_deg"])
        seps = np.degrees(np.arccos(np.clip((fit[1:] * fit[:-1]).sum(axis=1), -1, 1)))
        np.testing.assert_allclose(seps, step, rtol=0.02, atol=2e-4)
        off = np.degrees(np.arccos(np.clip(
            (fit * _unit(got["ra_deg"], got["dec_deg"])).sum(axis=1), -1, 1)))
        assert off.mean() < 1.5 * step


def _unit(ra: Any, dec: Any) -> np.ndarray:
    r, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def test_landform_cutout_holds_the_source_samples(tmp_path: Path) -> None:
    from PIL import Image

    from epnml.ingest.readers.images import read_image
    from tests.fixtures.make_pits_fixtures import make_pits_fixtures

    path = make_pits_fixtures(tmp_path)["geotiff"]
    stage = make_stage("pits")
    (granule,) = stage.granules([path])
    out = stage.process(granule, _ctx())
    pixels = read_image(path).pixels
    assert len(out.rows) == 4
    for row in out.rows:
        assert row["access_format"] == "image/png"
        png = Image.open(io.BytesIO(_file(out, row)))
        assert png.format == "PNG" and png.mode == "L"
        window = re.fullmatch(r"x (\d+)\.\.(\d+), y (\d+)\.\.(\d+) \(source pixels\)",
                              png.text["epnml:window"])
        assert window is not None
        a, c, b, d = (int(v) for v in window.groups())
        assert (png.width, png.height) == (c - a + 1, d - b + 1)
        assert png.width >= 128 and png.height >= 128
        scale = re.fullmatch(r"value = (\S+) \+ DN / 255 \* \((\S+) - \S+\)",
                             png.text["epnml:scale"])
        assert scale is not None
        lo, hi = float(scale.group(1)), float(scale.group(2))
        source = pixels[b:d + 1, a:c + 1]
        values = lo + np.asarray(png, float) / 255.0 * (hi - lo)
        inside = (source >= lo) & (source <= hi)
        assert inside.mean() > 0.9
        assert np.abs(values - source)[inside].max() <= (hi - lo) / 255.0 * 0.51 + 1e-4


def test_cutout_window_is_clipped_and_widened_at_the_edge() -> None:
    from PIL import Image

    pixels = np.arange(200 * 300, dtype=np.float32).reshape(200, 300)
    png = Image.open(io.BytesIO(cutout_png(pixels, (0.0, 190.0, 4.0, 200.0), "test")))
    assert png.text["epnml:window"] == "x 0..127, y 72..199 (source pixels)"


def test_pds3_label_gives_landform_times_and_instrument(tmp_path: Path) -> None:
    from epnml.ingest.epn import to_jd
    from epnml.ingest.readers.images import read_image
    from epnml.ingest.simulate.pds3_image import write_mars_pds3_image
    from epnml.ingest.stages.pits import landform_row

    dtm = np.linspace(0, 100, 64 * 64, dtype=np.float32).reshape(64, 64)
    label = write_mars_pds3_image(tmp_path / "DTEEC_002118_1510.LBL", dtm, 10.0, -30.0, 20.0,
                                  detached=True)
    text = label.read_text().replace(
        "PDS_VERSION_ID = PDS3\n",
        "PDS_VERSION_ID = PDS3\nINSTRUMENT_HOST_NAME = \"MARS RECONNAISSANCE ORBITER\"\n"
        "INSTRUMENT_ID = HIRISE\nSTART_TIME = 2007-01-08T14:11:16.283\n"
        "STOP_TIME = 2007-01-08T14:11:22.150\n", 1)
    label.write_text(text)
    image = read_image(label)
    row = landform_row("u", "mounds", make_stage("pits").granules([label])[0], image,
                       make_stage("pits").model_info(), 0.5, None, _ctx(), None, "mound",
                       "mound", "desc", "phys.reflectance")
    assert (row["instrument_host_name"], row["instrument_name"]) == ("MRO", "HiRISE")
    assert row["time_min"] == pytest.approx(to_jd(pd.Timestamp("2007-01-08T14:11:16.283")))
    assert row["time_max"] == pytest.approx(to_jd(pd.Timestamp("2007-01-08T14:11:22.150")))
    assert row["time_scale"] == "UTC"
    # a label without them: NULL, never invented
    bare = write_mars_pds3_image(tmp_path / "SIMULATED_DTM.IMG", dtm, 10.0, -30.0, 20.0)
    row = landform_row("v", "mounds", make_stage("pits").granules([bare])[0],
                       read_image(bare), make_stage("pits").model_info(), 0.5, None, _ctx(),
                       None, "mound", "mound", "desc", "phys.reflectance")
    assert (row["time_min"], row["time_max"], row["instrument_host_name"],
            row["instrument_name"]) == (None, None, None, None)
    assert "time_scale" not in row
    # a time that is not a date: the file and the reason
    label.write_text(text.replace("2007-01-08T14:11:22.150", "yesterday"))
    with pytest.raises(ValueError, match=r"DTEEC_002118_1510\.LBL: STOP_TIME is not a date$"):
        read_image(label)


def test_ctx_and_hrsc_file_names_give_the_instrument() -> None:
    from epnml.ingest.readers.images import product_id_meta

    assert product_id_meta("P01_001472_1747_XI_05S146W.tif") == \
        {"instrument_host_name": "MRO", "instrument_name": "CTX"}
    assert product_id_meta("h0905_0000_nd3.tif") == \
        {"instrument_host_name": "MEX", "instrument_name": "HRSC"}
    assert product_id_meta("MC11E-A.png") == {}


# --- the served rows ------------------------------------------------------------------

SERVICES = {"epnml_events": "text/csv", "epnml_crossings": "text/csv",
            "epnml_landforms": "image/png", "epnml_units": "text/csv",
            "epnml_meteors": "text/csv", "epnml_aurora": "image/png"}


@pytest.fixture(scope="module")
def meteors_ingest(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.fixtures.make_meteors_fixtures import make_meteors_fixtures

    out = tmp_path_factory.mktemp("access_meteors")
    fixture = make_meteors_fixtures(out)["simulated_meteors_fixture.csv"]
    return stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "meteors",
                     "--no-progress", "--workers", "1", str(fixture), check=False)


@pytest.mark.stack
def test_every_served_row_has_a_file_to_download(ingested_all: dict[str, Any],
                                                 meteors_ingest: Any, tap: Any) -> None:
    for name, ingest in ingested_all.items():
        assert ingest.result.returncode == 0 or name == "icme", ingest.result.stderr
    assert meteors_ingest.returncode == 0, meteors_ingest.stderr
    sizes: dict[str, list[int]] = {}
    for schema, mime in SERVICES.items():
        rows = tap.search(f"SELECT granule_uid, access_url, access_format, access_estsize "
                          f"FROM {schema}.epn_core").to_table()
        assert len(rows) > 0, schema
        for row in rows:
            assert row["access_format"] == mime, (schema, row["granule_uid"])
            with urllib.request.urlopen(str(row["access_url"]), timeout=30) as resp:
                assert resp.status == 200
                assert resp.headers.get_content_type() == mime, row["access_url"]
                body = resp.read()
            est = int(row["access_estsize"]) * KBYTE
            tolerance = 0.10 * len(body) if schema != "epnml_meteors" else \
                max(0.10 * len(body), KBYTE / 2)
            assert abs(len(body) - est) <= tolerance, (row["access_url"], len(body), est)
            sizes.setdefault(schema, []).append(len(body))
    print({s: (len(v), min(v), max(v)) for s, v in sizes.items()})
