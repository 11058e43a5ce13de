"""Aurora pipeline: reader rules, geometry, simulator, prefilter, stage rows (no stack)."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from epnml.ingest.readers.aurora import png_stretch, png_unstretch, read_aurora_image
from epnml.ingest.stage import GranuleError, RunContext
from epnml.ml.aurora.geometry import DiskGeometry
from epnml.ml.aurora.prefilter import prefilter
from tests.fixtures.make_aurora_fixtures import (
    BAD_FILES,
    NAN_PIXELS,
    fixture_images,
    make_aurora_fixtures,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_aurora_fixtures(tmp_path_factory.mktemp("aurora"))


def _ctx(**params: object) -> RunContext:
    return RunContext("test-run", "http://example.org/static", datetime(2026, 1, 1),
                      make_quicklooks=True, params=dict(params))


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_reader_refuses_bad_files_with_one_line(files: dict[str, Path], name: str) -> None:
    with pytest.raises(GranuleError) as err:
        read_aurora_image(files[name])
    assert err.value.reason == BAD_FILES[name]
    assert str(err.value) == f"{files[name]}: {BAD_FILES[name]}"
    assert "\n" not in str(err.value)


def test_reader_reads_the_header(files: dict[str, Path]) -> None:
    sim = fixture_images()["discrete"]
    image = read_aurora_image(files["simulated_emus_discrete.fits"])
    assert image.brightness.shape == (256, 256)
    np.testing.assert_array_equal(image.brightness, sim.brightness)
    assert image.start == sim.start
    assert image.exptime_s == pytest.approx(round(sim.exptime_s, 3))
    assert (image.band, image.wave_nm) == ("OI 130.4 nm", (128.0, 133.0))
    assert (image.telescope, image.instrument, image.simulated) == ("EMM", "EMUS", True)
    assert image.geometry is not None
    assert image.geometry.sc_dist_km == pytest.approx(sim.geometry.sc_dist_km, abs=1e-3)
    assert image.invalid == {}


def test_reader_counts_non_finite_pixels(files: dict[str, Path]) -> None:
    image = read_aurora_image(files["simulated_emus_nan.fits"])
    assert image.invalid == {"brightness": NAN_PIXELS}
    assert np.isfinite(image.brightness).all()


def test_png_chip_has_no_geometry_and_keeps_the_brightness(files: dict[str, Path]) -> None:
    sim = fixture_images()["discrete"]
    chip = read_aurora_image(files["simulated_emus_discrete.png"])
    assert (chip.geometry, chip.start, chip.end, chip.file_format) == (None, None, None, "PNG")
    np.testing.assert_array_equal(png_stretch(chip.brightness), png_stretch(sim.brightness))
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(png_stretch(png_unstretch(values)), values)


def test_geometry_round_trip_and_centre() -> None:
    g = DiskGeometry(20.0, 100.0, 30_000.0, 1.3e-3, 128.0, 128.0, 0.0, 10.0)
    hit, lat, lon, mu = g.intersect(np.array([128.0]), np.array([128.0]))
    assert bool(hit[0]) and lat[0] == pytest.approx(20.0) and lon[0] == pytest.approx(100.0)
    assert mu[0] == pytest.approx(1.0)
    col, row, vis = g.to_pixel(np.array([10.0, 35.0]), np.array([95.0, 110.0]))
    assert vis.all()
    _, lat2, lon2, _ = g.intersect(col, row)
    np.testing.assert_allclose(lat2, [10.0, 35.0], atol=1e-6)
    np.testing.assert_allclose(lon2, [95.0, 110.0], atol=1e-6)
    # north up, east right
    c_n, r_n, _ = g.to_pixel(np.array(30.0), np.array(100.0))
    c_e, r_e, _ = g.to_pixel(np.array(20.0), np.array(110.0))
    assert float(r_n) < 128 and float(c_e) > 128
    with pytest.raises(ValueError, match="not above Mars"):
        DiskGeometry(0, 0, 3000.0, 1e-3, 0, 0, 0, 0)


def test_simulator_is_seeded_and_says_simulated(tmp_path: Path) -> None:
    from epnml.ingest.simulate.aurora import write_simulated

    a = write_simulated(tmp_path / "a", 4, 5, png=1)
    b = write_simulated(tmp_path / "b", 4, 5)
    assert [p.name for p, _ in a if p.suffix == ".fits"] == [p.name for p, _ in b]
    assert all(p.name.startswith("simulated_emus_") for p, _ in a)
    for (_, s1), (_, s2) in zip([x for x in a if x[0].suffix == ".fits"], b, strict=True):
        np.testing.assert_array_equal(s1.brightness, s2.brightness)
    from astropy.io import fits

    assert fits.getheader(a[0][0])["SIMULATE"] is True


def test_prefilter_passes_aurora_and_not_the_empty_disk() -> None:
    sims = fixture_images()
    assert not prefilter(sims["none"].brightness, sims["none"].geometry).candidate
    for kind in ("discrete", "diffuse", "sinuous"):
        pre = prefilter(sims[kind].brightness, sims[kind].geometry)
        assert pre.candidate, kind
        x0, y0, x1, y1 = sims[kind].box or (0, 0, 0, 0)
        assert any(x0 - 5 <= x <= x1 + 5 and y0 - 5 <= y <= y1 + 5 for x, y, _ in pre.objects)


@pytest.fixture(scope="module")
def stage() -> object:
    from epnml.ingest.executor import get_stage

    return get_stage("aurora", None)


def test_stage_rows_of_each_kind(files: dict[str, Path], stage: object) -> None:
    from epnml.ingest.stages.aurora import AuroraStage

    assert isinstance(stage, AuroraStage)
    sims = fixture_images()
    footprints: list[bool] = []
    for kind, sim in sims.items():
        (granule,) = stage.granules([files[f"simulated_emus_{kind}.fits"]])
        out = stage.process(granule, _ctx())
        if kind == "none":
            assert out.rows == [] and out.records.empty
            continue
        assert len(out.rows) == 1, (kind, out.records)
        row = out.rows[0]
        assert row["aurora_type"] == kind
        x0, y0, x1, y1 = sim.box or (0, 0, 0, 0)
        assert x0 - 10 <= row["aurora_x"] <= x1 + 10 and y0 - 10 <= row["aurora_y"] <= y1 + 10
        assert row["target_name"] == "Mars" and row["service_title"] == "epnml_aurora"
        assert row["processing_level_desc"].startswith("SIMULATED input; ")
        assert row["time_min"] < row["time_max"]
        assert row["spectral_range_min"] < row["spectral_range_max"]
        # a footprint exactly when the box's outline lies on the disk
        box = (row["aurora_x"] - row["aurora_width"] / 2, row["aurora_y"]
               - row["aurora_height"] / 2, row["aurora_x"] + row["aurora_width"] / 2,
               row["aurora_y"] + row["aurora_height"] / 2)
        xs, ys = [box[0], box[2], box[2], box[0]], [box[1], box[1], box[3], box[3]]
        on_disk = bool(sim.geometry.intersect(np.array(xs), np.array(ys))[0].all())
        footprints.append(on_disk)
        if on_disk:
            assert row["s_region"].startswith("{(") and row["s_region"].count("d,") == 16
            assert row["c2min"] < row["aurora_lat"] < row["c2max"]
        else:
            assert row["s_region"] is None and row["c1min"] == row["aurora_lon"]
            assert "box partly off the disk" in row["processing_level_desc"]
        assert row["incidence_min"] > 100  # on the night side
        assert set(out.files) == {row[c].removeprefix("http://example.org/static/")
                                  for c in ("thumbnail_url", "access_url")}
        assert row["access_format"] == "image/png"
        # the download is the image's brightness around the box, at full resolution
        from PIL import Image

        cut = Image.open(io.BytesIO(out.files[row["access_url"].removeprefix(
            "http://example.org/static/")]))
        assert cut.mode == "L" and "epnml:scale" in cut.text
        assert row["access_estsize"] == max(1, round(len(out.files[row["access_url"]
                                             .removeprefix("http://example.org/static/")])
                                             / 1000))
    assert len(footprints) == 3 and any(footprints)


def test_png_chip_rows_have_no_time_nor_footprint(files: dict[str, Path],
                                                  stage: object) -> None:
    from epnml.ingest.stages.aurora import AuroraStage

    assert isinstance(stage, AuroraStage)
    (granule,) = stage.granules([files["simulated_emus_discrete.png"]])
    rows = stage.process(granule, _ctx()).rows
    assert len(rows) == 1
    assert rows[0]["aurora_type"] == "discrete"
    for name in ("time_min", "time_max", "s_region", "c1min", "aurora_lon"):
        assert rows[0][name] is None, name
    assert "no viewing geometry" in rows[0]["processing_level_desc"]


def test_granules_refuse_other_files(tmp_path: Path, stage: object) -> None:
    from epnml.ingest.stages.aurora import AuroraStage

    assert isinstance(stage, AuroraStage)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(GranuleError) as err:
        stage.granules([other])
    assert err.value.reason == ("not an image for the aurora pipeline (expected .fits, "
                                ".fit, .fts, .png)")
