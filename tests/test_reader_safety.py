"""Readers under hostile input: label pointers never leave the label's folder, errors carry
no file content, damaged files give GranuleError, declared sizes are refused before work.

No stack needed: real file formats written by the fixture generators, then altered.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin, TiffTags

from epnml.ingest.limits import LimitExceeded, ResourceLimits
from epnml.ingest.readers.images import check_image_size, read_image, read_yolo_labels
from epnml.ingest.readers.mascs import read_mascs, read_mascs_files
from epnml.ingest.readers.messenger import read_mag
from epnml.ingest.readers.paths import PointerRefused, plain_name
from epnml.ingest.readers.spectra import read_envi_sli, read_relab_json
from epnml.ingest.stage import GranuleError
from epnml.ingest.stages.mounds import MoundsStage
from tests.fixtures.make_crossings_fixtures import make_crossings_fixtures
from tests.fixtures.make_mounds_fixtures import make_mounds_fixtures
from tests.fixtures.make_units_fixtures import make_units_fixtures

REPO = Path(__file__).resolve().parent.parent
SECRET = "SECRET-TOKEN-7f3a9c"


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return dict(make_units_fixtures(tmp_path_factory.mktemp("u")))


@pytest.fixture(scope="module")
def mag(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return dict(make_crossings_fixtures(tmp_path_factory.mktemp("c")))


@pytest.fixture(scope="module")
def mounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return dict(make_mounds_fixtures(tmp_path_factory.mktemp("m")))


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside every granule holding a secret file (and a secret .fmt)."""
    root = tmp_path_factory.mktemp("outside")
    (root / "secret.txt").write_text(f"{SECRET}\n")
    (root / "secret.fmt").write_text(f"{SECRET} = 1\n")
    return root


def _variant(label: Path, data: list[Path], folder: Path, old: str, new: str,
             name: str | None = None) -> Path:
    """Copy a label (text replaced) and its data files into a new folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for d in data:
        shutil.copy(d, folder / d.name)
    text = label.read_text(encoding="latin-1")
    if old not in text:
        raise ValueError(f"{old!r} not in the label")
    out = folder / (name or label.name)
    out.write_text(text.replace(old, new, 1), encoding="latin-1")
    return out


def _targets(outside: Path, folder: Path) -> dict[str, str]:
    """Pointer values that must all be refused: absolute, '..', sub-folder, each existing
    and not existing (the label goes into ``folder``; sub/inside.dat and ../sibling.dat
    are created there)."""
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "sub" / "inside.dat").write_text(f"{SECRET}\n")
    (folder.parent / "sibling.dat").write_text(f"{SECRET}\n")
    return {
        "etc_passwd": "/etc/passwd",
        "absolute_missing": "/nonexistent/x.dat",
        "absolute_secret": str(outside / "secret.txt"),
        "dotdot_secret": os.path.relpath(outside / "secret.txt", folder),
        "dotdot_existing": "../sibling.dat",
        "dotdot_missing": "../nope.dat",
        "subfolder_existing": "sub/inside.dat",
        "subfolder_missing": "sub/none.dat",
        "dotdot_alone": "..",
    }


def _assert_clean(message: str) -> None:
    """No content of the targets and no server folder in the message."""
    assert SECRET not in message
    assert "root:" not in message and "/bin/" not in message
    assert "/etc" not in message and "/nonexistent" not in message


def _mascs_folder(units: dict[str, Path], name: str) -> Path:
    """A new folder inside the fixture volume (so ^STRUCTURE finds the volume's LABEL)."""
    folder = units["vis_lbl"].parents[1] / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _mascs_label(units: dict[str, Path], folder: Path, pointer: str) -> Path:
    return _variant(units["vis_lbl"], [units["vis_dat"]], folder,
                    '"VIRSVD_SIM_26001_000000.DAT"', f'"{pointer}"')


def test_mascs_table_pointer_outside_the_folder_is_refused_alike(
        units: dict[str, Path], outside: Path) -> None:
    messages = set()
    folder = _mascs_folder(units, "crafted")
    targets = _targets(outside, folder)
    assert len(targets) == 9
    for pointer in targets.values():
        label = _mascs_label(units, folder, pointer)
        with pytest.raises(PointerRefused) as err:
            read_mascs(label)
        assert str(err.value) == f"{label}: ^TABLE pointer must name a file in the label's folder"
        _assert_clean(str(err.value))
        messages.add(err.value.reason)
        # the units stage reads through read_mascs_files: refused, never skipped silently
        with pytest.raises(PointerRefused):
            read_mascs_files([label])
    assert messages == {"^TABLE pointer must name a file in the label's folder"}


def test_mascs_symlink_out_of_the_folder_is_refused_whether_or_not_it_exists(
        units: dict[str, Path], outside: Path) -> None:
    reasons = []
    for target in (outside / "secret.txt", outside / "absent.dat"):
        label = _mascs_label(units, _mascs_folder(units, f"link_{target.stem}"),
                             f"link_{target.stem}.dat")
        (label.parent / f"link_{target.stem}.dat").symlink_to(target)
        with pytest.raises(PointerRefused) as err:
            read_mascs(label)
        _assert_clean(str(err.value))
        reasons.append(err.value.reason)
    assert reasons == ["^TABLE pointer must name a file in the label's folder"] * 2


def test_mascs_plain_name_matched_case_insensitively_and_missing_reported(
        units: dict[str, Path]) -> None:
    label = _mascs_label(units, _mascs_folder(units, "lower"),
                         "virsvd_sim_26001_000000.dat")  # lower case: the file is upper
    assert read_mascs(label).n_spectra == 320
    label = _mascs_label(units, _mascs_folder(units, "absent"), "ABSENT.DAT")
    with pytest.raises(GranuleError) as err:
        read_mascs(label)
    assert err.value.reason == ("data file ABSENT.DAT named by ^TABLE is missing from the "
                                "label's folder")
    assert read_mascs_files([label]) == []  # labels without data are skipped, as before


@pytest.mark.parametrize("pointer", ["/etc/passwd", "/nonexistent/x.fmt", "../secret.fmt",
                                     "label/SIMVIRSVD.FMT", "../../../../label/SIMVIRSVD.FMT"])
def test_mascs_structure_pointer_must_be_a_plain_name(units: dict[str, Path], tmp_path: Path,
                                                      pointer: str) -> None:
    folder = _mascs_folder(units, f"struct_{abs(hash(pointer))}")
    label = _variant(units["vis_lbl"], [units["vis_dat"]], folder, '"SIMVIRSVD.FMT"',
                     f'"{pointer}"')
    with pytest.raises(PointerRefused) as err:
        read_mascs(label)
    assert str(err.value) == (f"{label}: ^STRUCTURE pointer must name a file in the label's "
                              "folder or a LABEL folder above it")
    _assert_clean(str(err.value))


def test_mascs_structure_stub_leading_out_is_refused(units: dict[str, Path],
                                                     outside: Path) -> None:
    """Archives keep a symlink as a text stub (``../../label/x.fmt``, as the real VIRS
    volume does); a stub naming a file elsewhere is refused alike, existing or not."""
    reasons = []
    for stem in ("secret", "absent"):
        folder = units["vis_lbl"].parent.parent / f"stub_{stem}"
        label = _variant(units["vis_lbl"], [units["vis_dat"]], folder, '"SIMVIRSVD.FMT"',
                         '"STUB.FMT"')
        rel = os.path.relpath(outside / f"{stem}.fmt", folder)
        (folder / "STUB.FMT").write_text(rel)
        with pytest.raises(PointerRefused) as err:
            read_mascs(label)
        _assert_clean(str(err.value))
        reasons.append(err.value.reason)
    assert reasons == ["^STRUCTURE pointer must name a file in the label's folder or a LABEL "
                       "folder above it"] * 2
    # a stub into the volume's LABEL folder (the real layout) is followed
    folder = units["vis_lbl"].parent.parent / "stub_good"
    label = _variant(units["vis_lbl"], [units["vis_dat"]], folder, '"SIMVIRSVD.FMT"',
                     '"STUB.FMT"')
    (folder / "STUB.FMT").write_text(os.path.relpath(units["vis_fmt"], folder))
    assert read_mascs(label).n_spectra == 320


def _mag_label(mag: dict[str, Path], folder: Path, pointer: str) -> Path:
    return _variant(mag["pds3_lbl"], [mag["pds3_tab"]], folder,
                    f'"{mag["pds3_tab"].name}"', f'"{pointer}"')


def test_messenger_table_pointer_outside_the_folder_is_refused_alike(
        mag: dict[str, Path], outside: Path, tmp_path: Path) -> None:
    targets = _targets(outside, tmp_path / "mag")
    assert len(targets) == 9
    for pointer in targets.values():
        label = _mag_label(mag, tmp_path / "mag", pointer)
        with pytest.raises(PointerRefused) as err:
            read_mag([label])
        assert str(err.value) == f"{label}: ^TABLE pointer must name a file in the label's folder"
        _assert_clean(str(err.value))
    link = _mag_label(mag, tmp_path / "link", "linked.tab")
    (link.parent / "linked.tab").symlink_to("/etc/passwd")
    with pytest.raises(PointerRefused) as err:
        read_mag([link])
    assert err.value.reason == "^TABLE pointer must name a file in the label's folder"


def test_messenger_errors_carry_no_table_content(mag: dict[str, Path], tmp_path: Path) -> None:
    rows = mag["pds3_tab"].read_bytes().splitlines(keepends=True)
    width = len(rows[10])
    rows[10] = (b"SECRETXX" + rows[10][8:])[:width]
    folder = tmp_path / "garbled"
    label = _variant(mag["pds3_lbl"], [], folder, "ORBIT_NUMBER", "ORBIT_NUMBER")
    (folder / mag["pds3_tab"].name).write_bytes(b"".join(rows))
    with pytest.raises(GranuleError) as err:
        read_mag([label])
    assert "SECRET" not in str(err.value)
    assert err.value.reason in ("unparsable value in column YEAR at row 11",
                                "time columns contain fill values at row 11")


def test_label_parse_errors_give_a_line_number_not_the_line(
        units: dict[str, Path], mag: dict[str, Path], tmp_path: Path) -> None:
    label = _variant(units["vis_lbl"], [units["vis_dat"]], _mascs_folder(units, "garbage"),
                     "INSTRUMENT_ID", f"{SECRET}\nINSTRUMENT_ID")
    with pytest.raises(GranuleError) as err:
        read_mascs(label)
    assert err.value.reason == "cannot parse label line 7"
    assert SECRET not in str(err.value)
    label = _variant(mag["pds3_lbl"], [mag["pds3_tab"]], tmp_path / "garbage",
                     "INSTRUMENT_ID", f"%{SECRET}\nINSTRUMENT_ID")
    with pytest.raises(GranuleError) as err:
        read_mag([label])
    assert SECRET not in str(err.value)
    assert err.value.reason == "malformed PDS3 label: unexpected text at line 14"


def _pds3_label(mounds: dict[str, Path], folder: Path, old: str, new: str) -> Path:
    lbl = mounds["pds3_dtm_cross0"]
    return _variant(lbl, [lbl.with_suffix(".IMG")], folder, old, new)


def test_pds3_image_pointer_outside_the_folder_is_refused_alike(
        mounds: dict[str, Path], outside: Path, tmp_path: Path) -> None:
    folder = tmp_path / "img"
    targets = _targets(outside, folder)
    assert len(targets) == 9
    for pointer in targets.values():
        label = _pds3_label(mounds, folder, '"SIMULATED_MOUNDS_DTM_CROSS0.IMG"', f'"{pointer}"')
        with pytest.raises(PointerRefused) as err:
            read_image(label)
        assert str(err.value) == f"{label}: ^IMAGE pointer must name a file in the label's folder"
        _assert_clean(str(err.value))
    label = _pds3_label(mounds, tmp_path / "link", '"SIMULATED_MOUNDS_DTM_CROSS0.IMG"',
                        '"LINKED.IMG"')
    (label.parent / "LINKED.IMG").symlink_to(outside / "secret.txt")
    with pytest.raises(PointerRefused) as err:
        read_image(label)
    assert err.value.reason == "^IMAGE pointer must name a file in the label's folder"


def test_plain_name() -> None:
    assert plain_name("X.DAT") == "X.DAT"
    assert [plain_name(v) for v in ("", ".", "..", "/x", "a/b", "a\\b", "a\0b", " x", 3)] == \
        [None] * 9


# --------------------------------------------------------------------------- GeoTIFF

def _geotiff(path: Path, scale: tuple[float, float, float], keys: tuple[int, ...],
             doubles: tuple[float, ...]) -> Path:
    d, s = TiffTags.DOUBLE, TiffTags.SHORT
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, kind, value in ((33550, d, scale), (33922, d, (0, 0, 0, 10.0, 45.0, 0.0)),
                             (34735, s, keys), (34736, d, doubles)):
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    pixels = (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)
    Image.fromarray(pixels, mode="L").save(path, format="TIFF", tiffinfo=ifd)
    return path


GEOGRAPHIC_KEYS = (1, 1, 0, 4, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 32767,
                   2057, 34736, 1, 0)


def test_geokey_index_past_geodoubleparams(tmp_path: Path) -> None:
    keys = GEOGRAPHIC_KEYS[:-1] + (5,)  # semi-major axis at index 5 of a 1-value array
    path = _geotiff(tmp_path / "past_end.tif", (0.01, 0.01, 0.0), keys, (3396190.0,))
    with pytest.raises(GranuleError) as err:
        read_image(path)
    assert str(err.value) == (f"{path}: invalid GeoTIFF GeoKeys: GeoKey 2057 points past "
                              "GeoDoubleParams (1 values)")
    short = _geotiff(tmp_path / "short_dir.tif", (0.01, 0.01, 0.0), GEOGRAPHIC_KEYS[:-4],
                     (3396190.0,))
    with pytest.raises(GranuleError, match="declares 4 keys but holds 3"):
        read_image(short)


@pytest.mark.parametrize("bad", [math.nan, 0.0, math.inf, -0.01])
def test_nan_zero_inf_pixel_scale_is_an_error_not_rows_at_the_pole(tmp_path: Path,
                                                                   bad: float) -> None:
    path = _geotiff(tmp_path / "scale.tif", (bad, 0.01, 0.0), GEOGRAPHIC_KEYS, (3396190.0,))
    with pytest.raises(GranuleError) as err:
        read_image(path)
    assert str(err.value) == (f"{path}: invalid GeoTIFF pixel scale: it must be finite and "
                              "> 0 (NaN, zero or infinite given)")
    good = _geotiff(tmp_path / "good.tif", (0.01, 0.01, 0.0), GEOGRAPHIC_KEYS, (3396190.0,))
    lon, lat = read_image(good).georef.pixel_to_lonlat(0.0, 0.0)  # type: ignore[union-attr]
    assert (float(lon), float(lat)) == (10.0, 45.0)


# --------------------------------------------------------------------------- sizes

def _png_header(path: Path, width: int, height: int) -> Path:
    """A valid PNG header declaring ``width x height`` 8-bit gray, with a few KB of IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    idat = zlib.compress(b"\0" * (width + 1) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                      8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_png_declaring_30000_squared_is_refused_before_decoding(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    path = _png_header(tmp_path / "bomb.png", 30000, 30000)
    assert path.stat().st_size < 2000

    def no_decoding(self: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(LimitExceeded) as err:
        read_image(path)
    assert str(err.value) == f"{path}: pixels 9e+08 exceeds the limit of 1e+08"
    assert (err.value.quantity, err.value.value) == ("pixels", 9e8)
    from epnml.ingest.stages.pits import PitsStage

    with pytest.raises(LimitExceeded, match="pixels 9e\\+08 exceeds the limit of 2.5e\\+07"):
        read_image(path, limits=PitsStage.limits)


def test_memory_estimate_is_checked_too(tmp_path: Path) -> None:
    path = _png_header(tmp_path / "rgb.png", 4000, 4000)
    limits = ResourceLimits(max_pixels=10**9, max_memory_mb=100)
    with pytest.raises(LimitExceeded) as err:
        check_image_size(path, 4000, 4000, 3, limits, colour=True)
    assert err.value.quantity == "memory mb" and err.value.value == pytest.approx(518.8)


def test_pds3_label_declaring_huge_lines_and_samples_is_refused(mounds: dict[str, Path],
                                                                tmp_path: Path) -> None:
    label = _pds3_label(mounds, tmp_path / "huge", "LINES = 192\n  LINE_SAMPLES = 192",
                        "LINES = 100000\n  LINE_SAMPLES = 100000")
    with pytest.raises(LimitExceeded) as err:
        read_image(label)
    assert str(err.value) == f"{label}: pixels 1e+10 exceeds the limit of 1e+08"


def test_coarse_dtm_upsampled_to_the_model_scale_is_refused(tmp_path: Path) -> None:
    """A 264 kB DTM at 400 m/px would be resampled x20 to the model's 20 m (26 Mpx)."""
    from epnml.ingest.simulate.pds3_image import write_mars_pds3_image
    from epnml.ml.mounds.model import available_versions

    if not available_versions():
        pytest.skip("no committed mounds weights")
    dtm = np.random.default_rng(1).normal(size=(256, 256)).astype(np.float32)
    path = write_mars_pds3_image(tmp_path / "COARSE_DTM.IMG", dtm, 10.0, 5.0, 400.0)
    assert path.stat().st_size < 270_000
    stage = MoundsStage()
    image = read_image(path, limits=stage.limits)
    with pytest.raises(LimitExceeded) as err:
        stage.probabilities(image)
    assert str(err.value) == f"{path}: pixels 2.62144e+07 exceeds the limit of 1.6e+07"


def test_mascs_rows_and_bands_checked_from_the_label(units: dict[str, Path]) -> None:
    with pytest.raises(LimitExceeded) as err:
        read_mascs(units["vis_lbl"], limits=ResourceLimits(max_samples=100))
    assert err.value.reason == "samples 320 exceeds the limit of 100"
    with pytest.raises(LimitExceeded) as err:
        read_mascs(units["vis_lbl"], limits=ResourceLimits(max_bands=64))
    assert err.value.reason == "bands 120 exceeds the limit of 64"
    label = _variant(units["vis_lbl"], [units["vis_dat"]], _mascs_folder(units, "rows"),
                     "ROWS                           = 320", "ROWS = 900000000")
    with pytest.raises(LimitExceeded) as err:
        read_mascs(label)
    assert err.value.reason == "samples 9e+08 exceeds the limit of 2e+07"


def test_mag_rows_and_span_checked(mag: dict[str, Path], tmp_path: Path) -> None:
    from epnml.ingest.stages.crossings import CrossingsStage

    with pytest.raises(LimitExceeded) as err:
        read_mag([mag["pds3_lbl"]], ResourceLimits(max_samples=1000))
    assert err.value.reason == "samples 5220 exceeds the limit of 1000"
    with pytest.raises(LimitExceeded, match="samples 5402 exceeds the limit of 1000"):
        read_mag([mag["csv"]], ResourceLimits(max_samples=1000))  # lines, before parsing
    csv = tmp_path / "span.csv"
    csv.write_text("time,x_mso_km,y_mso_km,z_mso_km,bx_mso_nt,by_mso_nt,bz_mso_nt\n"
                   "1900-01-01T00:00:00,1,2,3,4,5,6\n1960-01-01T00:00:00,1,2,3,4,5,6\n"
                   "2020-01-01T00:00:00,1,2,3,4,5,6\n")
    with pytest.raises(LimitExceeded) as err:
        read_mag([csv], CrossingsStage.limits)
    assert err.value.reason == "span days 43829 days exceeds the limit of 62 days"


# --------------------------------------------------------------------------- damaged files

def test_zero_byte_files(tmp_path: Path) -> None:
    cases = {
        "empty.png": lambda p: read_image(p),
        "empty.tif": lambda p: read_image(p),
        "empty.IMG": lambda p: read_image(p),
        "empty.lbl": lambda p: read_mascs(p),
        "empty.LBL": lambda p: read_mag([p]),
        "empty.csv": lambda p: read_mag([p]),
        "empty.json": lambda p: read_relab_json(p),
    }
    reasons = {}
    for name, reader in cases.items():
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(GranuleError) as err:
            reader(path)
        assert err.value.path == str(path)
        reasons[name] = err.value.reason
    assert reasons == {
        "empty.png": "not an image file (unrecognised content)",
        "empty.tif": "not an image file (unrecognised content)",
        "empty.IMG": "empty file",
        "empty.lbl": "empty label",
        "empty.LBL": "empty file",
        "empty.csv": "empty file",
        "empty.json": "empty file",
    }


def test_truncated_files(units: dict[str, Path], mounds: dict[str, Path],
                         tmp_path: Path) -> None:
    png = tmp_path / "half.png"
    png.write_bytes(mounds["hillshade_png"].read_bytes()[:3000])
    with pytest.raises(GranuleError) as err:
        read_image(png)
    assert err.value.reason == "cannot decode image: truncated image data"
    js = tmp_path / "half.json"
    js.write_text('{"spectrum": {"wavelength": [1, 2')
    with pytest.raises(GranuleError) as err:
        read_relab_json(js)
    assert err.value.reason.startswith("not a readable JSON spectrum: Expecting")
    hdr = tmp_path / "lib.hdr"
    hdr.write_text("ENVI\nsamples = 4\nlines = 3\ndata type = 4\nwavelength = {1,2,3,4}\n")
    (tmp_path / "lib.sli").write_bytes(b"\0" * 20)
    with pytest.raises(GranuleError) as err:
        read_envi_sli(tmp_path / "lib.sli")
    assert err.value.reason == "missing or truncated: needs 48 bytes"
    hdr.write_text("ENVI\nsamples = 4000000\nlines = 3000000\ndata type = 4\n")
    with pytest.raises(LimitExceeded, match="samples 3e\\+06 exceeds"):
        read_envi_sli(tmp_path / "lib.sli", ResourceLimits(max_samples=100_000))


def test_bad_column_definitions_and_offsets(units: dict[str, Path], mag: dict[str, Path],
                                            tmp_path: Path) -> None:
    fmt = units["vis_fmt"].read_text()
    reasons = []
    for i, (pattern, new) in enumerate(((r"ITEMS\s*=\s*\d+", "ITEMS = 0"),
                                        (r"DATA_TYPE\s*=\s*IEEE_REAL", "DATA_TYPE = VAX_COMPLEX"),
                                        (r"BYTES\s*=\s*\d+", "BYTES = -8"))):
        folder = _mascs_folder(units, f"fmt{i}")
        label = _variant(units["vis_lbl"], [units["vis_dat"]], folder, '"SIMVIRSVD.FMT"',
                         '"LOCAL.FMT"')
        changed, n = re.subn(pattern, new, fmt, count=1)
        assert n == 1
        (folder / "LOCAL.FMT").write_text(changed)
        with pytest.raises(GranuleError) as err:
            read_mascs(label)
        reasons.append(err.value.reason)
    sizes = "(BYTES, ITEMS, ITEM_BYTES and START_BYTE must be >= 1)"
    assert reasons == [
        f"bad COLUMN PHOTOM_IOF_SPECTRUM_DATA {sizes}",
        "bad COLUMN PHOTOM_IOF_SPECTRUM_DATA (unsupported DATA_TYPE for its BYTES)",
        f"bad COLUMN SC_TIME {sizes}"]
    label = _variant(mag["pds3_lbl"], [mag["pds3_tab"]], tmp_path / "offset",
                     f'("{mag["pds3_tab"].name}", 1)', f'("{mag["pds3_tab"].name}", -4)')
    with pytest.raises(GranuleError) as err:
        read_mag([label])
    assert err.value.reason == "^TABLE offset is before the start of the file"


def test_non_ascii_labels(units: dict[str, Path], mag: dict[str, Path], tmp_path: Path) -> None:
    label = _variant(units["vis_lbl"], [units["vis_dat"]], _mascs_folder(units, "latin"),
                     '"MESSENGER"', '"MESSENGER \xe9t\xe9"')
    assert read_mascs(label).n_spectra == 320  # latin-1 text in a value is harmless
    label = _variant(mag["pds3_lbl"], [mag["pds3_tab"]], tmp_path / "latin", '"MESSENGER"',
                     '"MESSENGER \xe9t\xe9"')
    with pytest.raises(GranuleError) as err:
        read_mag([label])
    assert err.value.reason == "not an ASCII PDS3 label"


def test_all_missing_dtm_is_no_valid_data(tmp_path: Path) -> None:
    from epnml.ingest.simulate.pds3_image import write_mars_pds3_image

    path = write_mars_pds3_image(tmp_path / "EMPTY_DTM.IMG", np.full((32, 32), np.nan),
                                 10.0, 5.0, 20.0)
    with pytest.raises(GranuleError) as err:
        read_image(path)
    assert err.value.reason == "no valid data: the image holds no valid pixel"


def test_yolo_label_errors_do_not_echo_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text(f"0 {SECRET} 0.5 0.1 0.1\n")
    with pytest.raises(GranuleError) as err:
        read_yolo_labels(path, 100, 100)
    assert err.value.reason == "line 1: not numbers"
    path.write_text(f"{SECRET}\n")
    with pytest.raises(GranuleError) as err:
        read_yolo_labels(path, 100, 100)
    assert err.value.reason == "line 1: expected 'class cx cy w h', got 1 fields"


# --------------------------------------------------------------------------- footprints

def test_geotiff_footprint_leaving_the_body_is_refused(tmp_path: Path) -> None:
    """A huge pixel scale used to give rows clipped to the pole; now the file is refused."""
    from epnml.ingest.readers.images import read_image_header

    where = "georeference puts the image outside the body"
    huge = _geotiff(tmp_path / "huge.tif", (1e30, 1e30, 0.0), GEOGRAPHIC_KEYS, (3396190.0,))
    for read in (read_image, read_image_header):
        with pytest.raises(GranuleError) as err:
            read(huge)
        assert str(err.value) == f"{huge}: {where} (latitude -6.4e+31 to 45 deg, beyond -90..90)"
    south = _geotiff(tmp_path / "south.tif", (0.01, 2.25, 0.0), GEOGRAPHIC_KEYS, (3396190.0,))
    with pytest.raises(GranuleError) as err:
        read_image(south)
    assert err.value.reason == f"{where} (latitude -99 to 45 deg, beyond -90..90)"
    wide = _geotiff(tmp_path / "wide.tif", (6.0, 0.01, 0.0), GEOGRAPHIC_KEYS, (3396190.0,))
    with pytest.raises(GranuleError) as err:
        read_image(wide)
    assert err.value.reason == f"{where} (longitude extent 384 deg, more than 360)"


def test_global_footprint_touching_the_poles_is_accepted(tmp_path: Path) -> None:
    d, s = TiffTags.DOUBLE, TiffTags.SHORT
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, kind, value in ((33550, d, (5.625, 2.8125, 0.0)),
                             (33922, d, (0, 0, 0, -180.0, 90.0, 0.0)),
                             (34735, s, GEOGRAPHIC_KEYS), (34736, d, (3396190.0,))):
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    path = tmp_path / "global.tif"
    pixels = (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)
    Image.fromarray(pixels, mode="L").save(path, format="TIFF", tiffinfo=ifd)
    georef = read_image(path).georef
    assert georef is not None
    assert georef.footprint_deg(64, 64) == (-180.0, 180.0, -90.0, 90.0)


def test_pds3_projection_offset_leaving_the_body_is_refused(mounds: dict[str, Path],
                                                            tmp_path: Path) -> None:
    from epnml.ingest.readers.images import read_image_header

    text = mounds["pds3_dtm_cross0"].read_text(encoding="latin-1")
    line = re.search(r"LINE_PROJECTION_OFFSET = [^\n]*", text)
    assert line is not None
    label = _pds3_label(mounds, tmp_path / "offset", line.group(0),
                        "LINE_PROJECTION_OFFSET = 1e300 <PIXEL>")
    for read in (read_image, read_image_header):
        with pytest.raises(GranuleError) as err:
            read(label)
        assert str(err.value).startswith(f"{label}: ")
        assert re.fullmatch(r"georeference puts the image outside the body \(latitude "
                            r"3\.37\d*e\+296 to 3\.37\d*e\+296 deg, beyond -90\.\.90\)",
                            err.value.reason), err.value.reason
        assert "PROJECTION" not in err.value.reason


# --------------------------------------------------------------------------- routing sizes

def test_routing_checks_declared_sizes_against_each_stage(
        mounds: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI routes before it connects to the database: routing must refuse the sizes."""
    from PIL import ImageFile

    from epnml.ingest.routing import route_landforms

    def no_decoding(self: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    bomb = _png_header(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(LimitExceeded) as err:
        route_landforms([bomb])
    assert str(err.value) == f"{bomb}: pixels 9e+08 exceeds the limit of 2.5e+07"
    dtm = _pds3_label(mounds, tmp_path / "huge", "LINES = 192\n  LINE_SAMPLES = 192",
                      "LINES = 200000\n  LINE_SAMPLES = 200000")
    with pytest.raises(LimitExceeded) as err:
        route_landforms([dtm])
    assert str(err.value) == f"{dtm}: pixels 4e+10 exceeds the limit of 1.6e+07"
    # keep-going: collected like any other routing error, the good file still routed
    good = mounds["pds3_dtm_cross0"]
    errors: list[GranuleError] = []
    assert route_landforms([bomb, dtm, good], errors=errors) == {"mounds": [good]}
    assert [(type(e), e.path) for e in errors] == [(LimitExceeded, str(bomb)),
                                                   (LimitExceeded, str(dtm))]
    # each model's own limits: 30.25 Mpx is too much for pits (25) but not for craters (36)
    mid = _png_header(tmp_path / "mid.png", 5500, 5500)
    assert route_landforms([mid], models=["craters"]) == {"craters": [mid]}
    with pytest.raises(LimitExceeded, match="pixels 3.025e\\+07 exceeds the limit of 2.5e\\+07"):
        route_landforms([mid], models=["craters", "pits"])


def test_decompression_bomb_at_routing_is_a_limit(tmp_path: Path) -> None:
    from epnml.ingest.routing import route_landforms

    bomb = _png_header(tmp_path / "bomb60k.png", 60000, 60000)
    with pytest.raises(LimitExceeded) as err:
        route_landforms([bomb])
    assert str(err.value) == f"{bomb}: pixels 3.6e+09 exceeds the limit of 1.6e+09"


# --------------------------------------------------------------------------- MAG value checks

def _mag_csv_lines(mag: dict[str, Path]) -> list[str]:
    """The fixture CSV's lines: [0] the '# SIMULATED ...' comment, [1] the header."""
    lines = mag["csv"].read_text().splitlines()
    assert lines[1].split(",")[1:7] == ["x_mso_km", "y_mso_km", "z_mso_km", "bx_mso_nt",
                                        "by_mso_nt", "bz_mso_nt"]
    return lines


def _set_field(line: str, k: int, value: str) -> str:
    fields = line.split(",")
    fields[k] = value
    return ",".join(fields)


def test_mag_unknown_data_type_is_refused(mag: dict[str, Path], tmp_path: Path) -> None:
    old = "DATA_TYPE                = ASCII_INTEGER"
    assert mag["pds3_lbl"].read_text().index(old) < mag["pds3_lbl"].read_text().index(
        "NAME                     = DAY_OF_YEAR")  # the first DATA_TYPE is YEAR's
    label = _variant(mag["pds3_lbl"], [mag["pds3_tab"]], tmp_path / "dtype", old,
                     "DATA_TYPE = COMPLEX_QUATERNION")
    with pytest.raises(GranuleError) as err:
        read_mag([label])
    assert err.value.path == str(label)
    assert err.value.reason == ("unsupported DATA_TYPE of column YEAR (DATA_TYPE "
                                "COMPLEX_QUATERNION; an ASCII numeric type expected)")


def test_mag_duplicate_and_backward_times_are_refused(mag: dict[str, Path],
                                                      tmp_path: Path) -> None:
    lines = _mag_csv_lines(mag)
    dup = list(lines)
    dup[101] = dup[100]  # data row 100 repeats data row 99
    path = tmp_path / "dup.csv"
    path.write_text("\n".join(dup) + "\n")
    with pytest.raises(GranuleError) as err:
        read_mag([path])
    assert str(err.value) == f"{path}: duplicate time at data row 100 (same as data row 99)"
    stamp = lines[100].split(",")[0]
    assert stamp[:10] not in str(err.value)  # no timestamp text echoed
    back = list(lines)
    back[100], back[101] = back[101], back[100]
    path = tmp_path / "back.csv"
    path.write_text("\n".join(back) + "\n")
    with pytest.raises(GranuleError) as err:
        read_mag([path])
    assert err.value.reason == "non-monotonic times at data row 100 (earlier than data row 99)"


def test_mag_csv_nonphysical_values_are_counted(mag: dict[str, Path], tmp_path: Path) -> None:
    assert read_mag([mag["csv"]]).attrs["invalid_values"] == {}
    lines = _mag_csv_lines(mag)
    bad = {1000: (4, "inf"), 1100: (4, "-inf"), 1200: (4, "1e308"), 1300: (4, "-1e308"),
           1400: (4, "NaN"), 1500: (4, "100001"), 1600: (1, "2e7"), 1700: (5, "")}
    for r, (k, v) in bad.items():
        lines[r] = _set_field(lines[r], k, v)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    frame = read_mag([path])
    # the empty by cell is missing data, not a non-physical value
    assert frame.attrs["invalid_values"] == {"bx": 6, "x": 1}
    assert int(frame["bx"].isna().sum()) == 6 + int(read_mag([mag["csv"]])["bx"].isna().sum())
    assert not np.isinf(frame[["bx", "by", "bz", "x", "y", "z"]].to_numpy()).any()
    assert float(frame[["bx", "by", "bz"]].abs().max().max()) < 1e5


def test_mag_pds3_nonphysical_values_are_counted(mag: dict[str, Path], tmp_path: Path) -> None:
    from epnml.ingest.readers.messenger import parse_label

    label = parse_label(mag["pds3_lbl"].read_text())
    (table,) = label.find("TABLE")
    col = next(c for c in table.find("COLUMN") if c.get("NAME") == "BZ_MSO")
    start, width = int(col.get("START_BYTE")) - 1, int(col.get("BYTES"))
    assert col.get("MISSING_CONSTANT") is None and width >= 6
    rows = mag["pds3_tab"].read_bytes().splitlines(keepends=True)
    for r, v in zip((10, 20, 30), (b"inf", b"-1e308", b"1.0E31"), strict=True):
        rows[r] = rows[r][:start] + v.rjust(width) + rows[r][start + width:]
    folder = tmp_path / "pds3_bad"
    lbl = _variant(mag["pds3_lbl"], [], folder, "ORBIT_NUMBER", "ORBIT_NUMBER")
    (folder / mag["pds3_tab"].name).write_bytes(b"".join(rows))
    assert read_mag([mag["pds3_lbl"]]).attrs["invalid_values"] == {}
    frame = read_mag([lbl])
    assert frame.attrs["invalid_values"] == {"bz": 3}
    assert frame["bz"].iloc[[10, 20, 30]].isna().all()


def test_mag_without_valid_samples_is_refused(mag: dict[str, Path], tmp_path: Path) -> None:
    lines = _mag_csv_lines(mag)[:12]
    for r in range(2, 12):
        lines[r] = _set_field(_set_field(lines[r], 4, "inf"), 5, "nan")
    path = tmp_path / "all_bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GranuleError) as err:
        read_mag([path])
    assert err.value.reason == ("no valid magnetometer samples (20 of 60 values were not "
                                "physical: bx 10, by 10)")
    with pytest.raises(GranuleError) as err:
        read_mag([mag["bad_all_fill"]])
    assert err.value.reason == ("no valid magnetometer samples (no sample has a complete "
                                "field vector and position; all other values are fill values)")


def test_crossings_stage_reports_nonphysical_values(mag: dict[str, Path],
                                                    tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from epnml.ingest.registry import make_stage
    from epnml.ingest.stage import RunContext

    lines = _mag_csv_lines(mag)
    for r, v in zip(range(1000, 1400, 100), ("inf", "-inf", "1e308", "-1e308"), strict=True):
        lines[r] = _set_field(lines[r], 4, v)
    path = tmp_path / "simulated_bad_bx.csv"
    path.write_text("\n".join(lines) + "\n")
    stage = make_stage("crossings")
    ctx = RunContext(run_id="t", files_base_url="http://localhost/files",
                     started=datetime.now(UTC).replace(tzinfo=None), make_quicklooks=False)
    (granule,) = stage.granules([path])
    out = stage.process(granule, ctx)
    assert out.invalid_values == {"bx": 4}
    assert out.rows, "the cleaned orbit must still give crossings"
    for row in out.rows:
        assert row["processing_level_desc"].endswith(
            "; 4 non-physical input value(s) treated as missing (bx 4)")
