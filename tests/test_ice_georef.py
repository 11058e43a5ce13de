"""The simulated ice images' georeference: a chunk's size agrees with its outline (#18).

With the standard parallel left at 0, a 512 m chunk at 50 deg S spanned 0.33 km east-west
on the map while its row said landform_size 0.512 km.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from epnml.ingest.readers.images import read_image
from epnml.ingest.simulate.geotiff import MARS_R
from epnml.ingest.simulate.ice import simulate_ice_scene, write_ice_geotiff
from epnml.ingest.stages.outlines import box_outline, outline_geometry


@pytest.mark.parametrize("lat0", [-50.0, -70.0, 10.0])
def test_chunk_size_agrees_with_its_outline(tmp_path: Path, lat0: float) -> None:
    scene = simulate_ice_scene(3, chunks=(1, 2), pixel_m=4.0)  # 128 px chunks of 512 m
    path = write_ice_geotiff(tmp_path / "simulated_ice_3.tif", scene, 100.0, lat0)
    image = read_image(path)
    assert image.georef is not None
    side = scene.image.shape[0]
    assert side == 128 and scene.image.shape[1] == 256
    geo = outline_geometry(image.georef, box_outline(0.0, 0.0, float(side), float(side)),
                           float(side), side / 2)
    assert geo["size_km"] == pytest.approx(0.512, rel=1e-3)
    lat_mid = (geo["c2min"] + geo["c2max"]) / 2
    ew_km = math.radians(geo["c1max"] - geo["c1min"]) * MARS_R / 1000 * math.cos(
        math.radians(lat_mid))
    ns_km = math.radians(geo["c2max"] - geo["c2min"]) * MARS_R / 1000
    assert ew_km == pytest.approx(0.512, rel=2e-3)
    assert ns_km == pytest.approx(0.512, rel=1e-3)
    assert geo["c1min"] == pytest.approx(100.0, abs=1e-9)
    assert geo["c2max"] == pytest.approx(lat0, abs=1e-9)
