"""The sun of each image: vendor metadata readers (on real vendor files), config/CLI, the almanac
against vendor-stated angles, and the estimate from the image and the DSM on scenes whose sun is
known (shadows cast by the simulator's own ray tracer, an independent code path)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from synthetic import random_boxes

from offnadir.errors import ConfigError
from offnadir.io import acquisition as acq

REAL = Path("/work/shared/data/real")
needs_real = pytest.mark.skipif(not REAL.exists(), reason="real test data not present")


# --------------------------------------------------------------------------- metadata readers
@needs_real
@pytest.mark.parametrize("rel, az, el, field", [
    # DIMAP v1.4: five located headers (strip start/centre/end, two scenes); values read off the file
    ("shareloc/tests/data/rpc/PHRDIMAP_P1BP--2017030824934340CP.XML", 139.08, 55.97, "SUN_AZIMUTH"),
    ("shareloc/tests/data/rpc/PHRDIMAP_P1BP--2018122638935449CP.XML", 162.42, 33.69, "SUN_AZIMUTH"),
    ("rpcm/tests/test_rpc_files/rpc_WV1.xml", 228.9, 52.4, "MEANSUNAZ"),
    ("rpcm/tests/test_rpc_files/rpc_WV2.xml", 162.1, 40.3, "MEANSUNAZ"),
    ("rpcm/tests/test_rpc_files/JAX_068_001_RGB.json", 150.3, 50.8, "sun_azimuth"),
    ("gdal/autotest/gcore/data/rpc.vrt", 170.1, 39.7, "IMAGE_1.sunAz"),
])
def test_vendor_sun_angles_are_read(rel, az, el, field):
    s = acq.sun_from_file(REAL / rel)
    assert s is not None and s.source == "metadata"
    assert s.azimuth == pytest.approx(az, abs=0.01) and s.elevation == pytest.approx(el, abs=0.01)
    assert field in s.detail and Path(rel).name in s.detail


@needs_real
def test_files_without_sun_give_none():
    assert acq.sun_from_file(REAL / "rpcm/tests/test_rpc_files/rpc_PLEIADES.xml") is None
    assert acq.sun_from_metadata(REAL / "picanteo/docs/tutorials/data/pre_event_img1.tif",
                                 REAL / "picanteo/docs/tutorials/data/pre_event_img1.geom") is None


@needs_real
@pytest.mark.parametrize("rel, time, lonlat", [
    # acquisition time and scene centre of the same vendor files (centre from their corner
    # coordinates); the vendor's own sun angles are the reference for the almanac
    ("rpcm/tests/test_rpc_files/rpc_WV1.xml", "2017-05-25T13:37:39.99Z", (4.37, 50.95)),
    ("rpcm/tests/test_rpc_files/rpc_WV2.xml", "2015-09-30T10:56:56.97Z", (-0.32, 45.65)),
    ("gdal/autotest/gcore/data/rpc.vrt", "2006-10-20T02:50:52.25Z", (125.75, 39.78)),
])
def test_almanac_agrees_with_vendor_sun(rel, time, lonlat):
    vendor = acq.sun_from_file(REAL / rel)
    alm = acq.sun_from_time(time, *lonlat)
    assert alm.source == "almanac"
    # vendors round to 0.1 deg; the scene centres above are known to ~0.05 deg
    assert abs((alm.azimuth - vendor.azimuth + 180) % 360 - 180) < 0.6
    assert abs(alm.elevation - vendor.elevation) < 0.6


def test_stac_item_and_time_without_hour(tmp_path):
    p = tmp_path / "item.json"
    p.write_text(json.dumps({"type": "Feature", "properties": {"view:sun_azimuth": 121.5,
                                                               "view:sun_elevation": 61.25}}))
    s = acq.sun_from_json(p)
    assert (s.azimuth, s.elevation) == (121.5, 61.25) and "properties.view:sun_azimuth" in s.detail
    img = tmp_path / "scene.tif"
    img.write_bytes(b"")
    (tmp_path / "scene.json").write_text(p.read_text())
    assert acq.sun_from_metadata(img).azimuth == 121.5  # a STAC item next to the image is found
    assert acq.sun_from_time("2021-06-01", 5.0, 43.0) is None  # a date alone places no sun
    assert acq.sun_from_time("2021-06-01T00:00:00.000000000", 5.0, 43.0) is None


def test_config_and_cli_sun():
    import argparse

    from offnadir.cli import coregister as cli

    p = argparse.ArgumentParser()
    cli.add_cube_arguments(p)
    args = p.parse_args(["--dsm", "d.tif", "--image", "a.tif", "--image", "b.tif", "-o", "o.zarr",
                         "--sun", "150.3,50.8", "--sun", "none"])
    cfg = cli.config_from_args(args, args.images)
    assert (cfg["images"][0]["sun_azimuth"], cfg["images"][0]["sun_elevation"]) == (150.3, 50.8)
    assert cfg["images"][1]["sun_azimuth"] is None
    args = p.parse_args(["--dsm", "d.tif", "--image", "a.tif", "-o", "o.zarr", "--sun", "150"])
    with pytest.raises(ConfigError, match="AZIMUTH,ELEVATION"):
        cli.config_from_args(args, args.images)
    with pytest.raises(ConfigError, match="both sun_azimuth and sun_elevation"):
        acq.sun_from_config(150.0, None, "images[0]")
    given = acq.sun_from_config(-30.0, 45.0, "images[0]")
    assert given.azimuth == 330.0 and given.source == "config"


# --------------------------------------------------------------------------- estimate
def _shadowed_image(h, az_grid, el, cell=0.5, seed=2):
    """An image whose dark cells are the cast shadows of the simulator's ray tracer (box DSM),
    with albedo texture, noise and a non-linear (gamma) radiometry."""
    from offnadir.simulate.sun import sun_vector
    from offnadir.simulate.views import cast_shadows

    sh = cast_shadows(h, sun_vector(el, az_grid), cell, 0.3)
    rng = np.random.default_rng(seed)
    radiance = np.where(sh == 1, 0.3, 1.0) * rng.uniform(0.5, 1.0, h.shape)
    return 40.0 + 900.0 * radiance ** 1.7 + rng.normal(0, 10, h.shape)


@pytest.mark.parametrize("az, el", [(210.0, 30.0), (62.0, 55.0)])
def test_estimate_recovers_a_known_sun(az, el):
    from offnadir.change.sun_estimate import estimate_sun

    h = random_boxes(200, 1)
    north = 1.5  # grid azimuth of true north: the estimate is returned as a true azimuth
    img = _shadowed_image(h, az + north, el)
    fit = estimate_sun(h, img, np.ones(h.shape, bool), 0.5, north)
    assert fit is not None and fit.z >= 3
    assert abs((fit.azimuth - az + 180) % 360 - 180) < 2.0
    assert abs(fit.elevation - el) < 2.0
    assert 0 < fit.sigma_azimuth < 5 and 0 < fit.sigma_elevation < 5


def test_estimate_refuses_without_evidence():
    from offnadir.change.sun_estimate import estimate_sun

    rng = np.random.default_rng(0)
    h = random_boxes(200, 1)
    noise = rng.normal(0, 1, h.shape)  # no shadows in the image: nothing fits
    assert estimate_sun(h, noise, np.ones(h.shape, bool), 0.5) is None
    flat = np.full(h.shape, 100.0)  # no relief: no shadows to predict
    assert estimate_sun(flat, _shadowed_image(h, 200.0, 40.0), np.ones(h.shape, bool), 0.5) is None


def test_resolve_suns_reads_the_cube_and_estimates_the_rest():
    """The change stage's sun: a cube image with a known sun keeps it and its source; an image
    without one gets the estimate (the cube's own samples and visibility), said in the record."""
    import rioxarray  # noqa: F401
    import xarray as xr

    from offnadir.change.illumination import resolve_suns

    h = random_boxes(200, 1)
    n = h.shape[0]
    img = _shadowed_image(h, 140.0, 45.0)
    ds = xr.Dataset(
        {"dsm": (("y", "x"), h.astype(np.float32)),
         "value": (("image", "band", "y", "x"), np.stack([img, img])[:, None].astype(np.float32)),
         "visible": (("image", "y", "x"), np.ones((2, n, n), np.uint8))},
        coords={"image": ["a", "b"], "x": 500000.25 + 0.5 * np.arange(n), "y": 4790000.0 - 0.25 - 0.5 * np.arange(n),
                "sun_azimuth": ("image", [150.0, np.nan]), "sun_elevation": ("image", [50.0, np.nan]),
                "sun_source": ("image", ["config: images[0] (a)", "none"])})
    ds = ds.rio.write_crs("EPSG:32631")
    suns = resolve_suns(ds)
    assert suns[0]["source"] == "config" and suns[0]["azimuth"] == 150.0
    assert suns[1]["source"] == "estimated" and "score" in suns[1]
    grid_az = suns[1]["azimuth"] + suns[1]["grid_north_deg"]
    assert abs((grid_az - 140.0 + 180) % 360 - 180) < 2.0 and abs(suns[1]["elevation"] - 45.0) < 2.0
    assert math.isfinite(suns[1]["grid_north_deg"])
    # the same images as one date group (a stereo pair): the mate shares the known sun, no estimate
    same = resolve_suns(ds.assign_coords(date_group=("image", [0, 0])))
    assert same[1]["source"] == "same-date image" and same[1]["azimuth"] == 150.0 and "config of a" in same[1]["detail"]
    assert "score" not in same[1]
