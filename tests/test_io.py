"""Lazy xarray views of inputs keep their metadata (CRS, datum, camera)."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import rasterio
from conftest import real

from offnadir.io.dsm import open_dsm
from offnadir.io.image import open_image

IMG = real("s2p/tests/data/input_triplet/img_01.tif")


def test_open_image_is_lazy_and_keeps_its_camera():
    img = open_image(IMG, chunks=256)
    assert isinstance(img.data, da.Array) and img.data.chunksize[1:] == (256, 256)
    cam = img.attrs["camera"]
    with rasterio.open(IMG) as src:
        assert img.shape == (src.count, src.height, src.width)
        np.testing.assert_array_equal(img.isel(band=0, y=slice(10, 20), x=slice(30, 40)).values,
                                      src.read(1)[10:20, 30:40])
    # the camera in the attrs is the one read_camera gives (with the acquisition time of the Airbus
    # dataset name the s2p crop carries: offnadir.io.acquisition_time), and the GDAL dict round-trips
    from offnadir import RPC, read_camera
    from offnadir.io.acquisition_time import with_acquisition_time

    assert cam == with_acquisition_time(read_camera(IMG), IMG)
    assert cam.acquired == "2013-04-17T10:36:44.8Z" and read_camera(IMG).acquired is None
    assert RPC.from_dict(img.attrs["rpc"]) == cam.rpc


def test_open_dsm_lazy_with_crs_and_datum():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dsm = open_dsm(real("s2p/tests/data/expected_output/triplet/dsm.tif"), chunks=256)
    assert isinstance(dsm.data, da.Array) and dsm.dims == ("y", "x")
    assert dsm.rio.crs.to_epsg() == 32631 and dsm.attrs["vertical_datum"] == "ellipsoid"
    assert np.isnan(dsm.values).any() and np.nanmax(dsm.values) > 200
