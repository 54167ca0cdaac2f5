"""Acquisition times read from Airbus dataset and product names (offnadir.io.acquisition_time),
checked against times other tools wrote into the same products (OSSIM .geom, DIMAP v1.4)."""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
import pytest
from conftest import REAL

from offnadir.io import acquisition as acq
from offnadir.io import acquisition_time as AT

needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="real data not checked out")
S2P = REAL / "s2p/tests/data"
SHARELOC = REAL / "shareloc/tests/data"


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@needs_real
@pytest.mark.parametrize("rel, expect", [
    # what `gdalinfo FILE | grep DS_` shows, as ISO UTC
    ("input_pair/img_01.tif", "2013-06-29T06:37:14.4Z"),
    ("input_pair/img_02.tif", "2013-06-29T06:37:38.9Z"),
    ("input_triplet/img_01.tif", "2013-04-17T10:36:44.8Z"),
    ("input_triplet/img_02.tif", "2013-04-17T10:36:55.4Z"),
    ("input_triplet/img_03.tif", "2013-04-17T10:37:05.7Z"),
])
def test_s2p_crops_time_from_their_gml_dataset_name(rel, expect):
    at = AT.acquisition_time(S2P / rel, None)
    assert at is not None and at.time == expect
    assert "gml.root-instance" in at.source and "DS_PHR1" in at.source


@needs_real
@pytest.mark.parametrize("image, geom", [
    ("image/phr_ventoux/left_image.tif", "rpc/phr_ventoux/left_image.geom"),
    ("image/phr_ventoux/right_image.tif", "rpc/phr_ventoux/right_image.geom"),
])
def test_dataset_name_is_the_strip_start_shortly_before_the_geom_image_date(image, geom):
    """The crops' dataset name against the image time CNES's .geom gives (OSSIM reader): the
    datastrip starts before the image, by less than a minute (the sun moves < 0.25 deg)."""
    from offnadir.camera.readers import read_camera

    ds = AT.acquisition_time(SHARELOC / image, None)  # no camera: the tags only
    cam = read_camera(SHARELOC / geom)
    lag = (_t(cam.acquired) - _t(ds.time)).total_seconds()
    assert 0.0 <= lag < 60.0
    # with the camera, its time wins and the source names the model file
    with_cam = AT.acquisition_time(SHARELOC / image, cam)
    assert with_cam.time == cam.acquired and geom.rsplit("/", 1)[1] in with_cam.source


@needs_real
@pytest.mark.parametrize("rel", ["rpc/PHRDIMAP_P1BP--2017030824934340CP.XML",
                                 "rpc/PHRDIMAP_P1BP--2018122638935449CP.XML"])
def test_dimap_v1_dataset_name_against_its_first_line_time(rel):
    import re

    from offnadir.camera.readers import read_camera

    text = (SHARELOC / rel).read_text()
    name = re.search(r"<DATASET_NAME>([^<]+)<", text).group(1)
    t = AT.time_from_dataset_name(name, rel)
    lag = (_t(read_camera(SHARELOC / rel).acquired) - _t(t)).total_seconds()
    assert 0.0 <= lag < 60.0


@needs_real
def test_product_name_in_the_file_name_equals_the_geom_image_date():
    from offnadir.camera.readers import read_camera

    img = SHARELOC / "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.tif"
    at = AT.acquisition_time(img, None)
    geom = read_camera(SHARELOC / "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.geom")
    assert abs((_t(geom.acquired) - _t(at.time)).total_seconds()) < 0.1
    assert "product name" in at.source


def test_bad_names_are_ignored_with_a_log_line(caplog, tmp_path):
    with caplog.at_level(logging.INFO, logger="offnadir.io.acquisition_time"):
        assert AT.time_from_dataset_name("DS_PHR1A_201313450000001_FR1_PX", "x") is None  # month 13
        assert AT.time_from_dataset_name("DS_PHR1A_200506290637144_FR1_PX", "x") is None  # before launch
        assert AT.time_from_dataset_name("DS_PHR1A_209906290637144_FR1_PX", "x") is None  # future
    assert sum("ignored" in r.getMessage() for r in caplog.records) == 3
    # a good name after a bad one is still found; other missions; digits inside a longer word are not a name
    text = "<gml:name>DS_PHR1A_201302300000001_X</gml:name> <gml:name>DS_SPOT7_201506011030125_FR1_X</gml:name>"
    assert AT.time_from_dataset_name(text, "x") == "2015-06-01T10:30:12.5Z"
    assert AT.time_from_dataset_name("XDS_PHR1A_201306290637144_FR1", "x") is None
    assert AT.time_from_product_name("IMG_PNEO3_P_202204011012345_SEN_1.tif", "x") == "2022-04-01T10:12:34.5Z"
    assert AT.time_from_product_name("PHR1B_P_20170928103839_SEN.tif", "x") is None  # tenth missing
    # tags given directly; nothing at all -> None
    at = AT.acquisition_time(tmp_path / "crop.tif", None,
                             tags={"DATASET_NAME": "DS_PHR1B_201703080654573_FR1_PX_E057N22_0501_02239"})
    assert at.time == "2017-03-08T06:54:57.3Z" and "DATASET_NAME" in at.source
    assert AT.acquisition_time(tmp_path / "crop.tif", None, tags={}) is None


@needs_real
def test_image_suns_use_the_dataset_name_and_say_so(caplog):
    """The sun of an s2p crop is the almanac's at its dataset-name time, logged and recorded in
    the cube's ``sun_source`` (what the change stage copies into ``change_sun``)."""
    from offnadir.pipeline import load_images
    from offnadir.sun import sun_position

    ims = load_images([str(S2P / "input_triplet/img_01.tif"), str(S2P / "input_triplet/img_02.tif")])
    lonlat = (5.443, 43.262)
    with caplog.at_level(logging.INFO, logger="offnadir.io.acquisition"):
        suns = acq.image_suns(ims, None, lonlat)
    for s, t in zip(suns, ("2013-04-17T10:36:44.8Z", "2013-04-17T10:36:55.4Z")):
        el, az = sun_position(t, *lonlat)
        assert s.source == "almanac" and (s.azimuth, s.elevation) == (az, el)
        assert "Airbus dataset name" in s.detail
    assert sum("Airbus dataset name" in r.getMessage() for r in caplog.records) == 2
    coords = acq.sun_coords(suns)
    assert all(str(v).startswith("almanac: acquisition time 2013-04-17T10:3") for v in coords["sun_source"][1])
    # a sun given in the config still wins over the time
    given = acq.image_suns(ims[:1], [{"sun_azimuth": 10.0, "sun_elevation": 20.0}], lonlat)[0]
    assert given.source == "config"


def test_almanac_reads_zones_and_ignores_impossible_times(caplog):
    from offnadir.sun import sun_position

    ref = sun_position("2013-04-17T10:36:44.8Z", 5.44, 43.26)
    assert sun_position("2013-04-17T12:36:44.8+02:00", 5.44, 43.26) == pytest.approx(ref, abs=1e-9)
    assert sun_position("2013-04-17T07:36:44.8-0300", 5.44, 43.26) == pytest.approx(ref, abs=1e-9)
    assert sun_position("2013-04-17T10:36:44.800000000", 5.44, 43.26) == pytest.approx(ref, abs=1e-9)
    with caplog.at_level(logging.INFO, logger="offnadir.io.acquisition"):
        assert acq.sun_from_time("2013-02-30T10:00:00Z", 5.44, 43.26, source="x.tif tags") is None
    assert any("not a valid date" in r.getMessage() and "x.tif" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ dates from the same times
@needs_real
def test_s2p_pair_gets_its_date_group_from_the_dataset_names(caplog):
    """The Réunion pair's crops carry no time in their metadata, only Airbus dataset names: the
    camera takes that time (with where it was read), so both crops form one date group, and the
    almanac's sun and the date come from the same time."""
    from offnadir.cube.dataset import date_groups
    from offnadir.pipeline import load_images

    paths = [str(S2P / "input_pair/img_01.tif"), str(S2P / "input_pair/img_02.tif")]
    with caplog.at_level(logging.INFO):
        ims = load_images(paths)
        groups = date_groups(ims)
    assert [im.camera.acquired for im in ims] == ["2013-06-29T06:37:14.4Z", "2013-06-29T06:37:38.9Z"]
    assert list(groups) == [0, 0]
    for im in ims:
        assert im.date is None and im.date_source.startswith("from the Airbus dataset name DS_PHR1B_2013062906")
        assert AT.acquisition_time(im.path, im.camera).source == im.camera.acquired_from
    said = [r.getMessage() for r in caplog.records]
    assert any("img_01: date 2013-06-29 (from the Airbus dataset name" in m for m in said)
    assert any("date group 0 (2013-06-29): img_01, img_02" in m for m in said)
    # a date given per image still wins over the name's
    given = load_images([{"path": paths[0], "date": "2013-06-30"}, paths[1]])
    assert given[0].date_source == "given" and list(date_groups(given, say=False)) == [0, 1]


@needs_real
def test_a_camera_with_its_own_time_is_left_alone():
    from offnadir.camera.readers import read_camera

    cam = read_camera(SHARELOC / "rpc/phr_ventoux/left_image.geom", image=SHARELOC / "image/phr_ventoux/left_image.tif")
    assert AT.with_acquisition_time(cam, SHARELOC / "image/phr_ventoux/left_image.tif") is cam
    assert cam.acquired == "2013-08-05T10:42:19.4Z" and "left_image.geom (ossim-geom)" in cam.acquired_from


@needs_real
def test_tiff_datetime_is_not_an_acquisition_time(caplog):
    """picanteo's post_event_img1.tif holds its production time in TIFFTAG_DATETIME (that of its
    mate's DATASET_PRODUCTION_DATE, 26 days after the imaging): no date, and the log says why."""
    from offnadir.pipeline import load_images

    img = REAL / "picanteo/docs/tutorials/data/post_event_img1.tif"
    with caplog.at_level(logging.INFO, logger="offnadir.io.acquisition_time"):
        im, = load_images([str(img)])
    assert im.camera.acquired is None and im.date_source == "none"
    assert any("TIFFTAG_DATETIME '20230511 10:46:49' is the file's creation time" in r.getMessage()
               for r in caplog.records)


def test_tiff_datetime_in_the_standard_form_is_not_read_either(tmp_path):
    """Even in the TIFF form (YYYY:MM:DD hh:mm:ss) the creation time gives no date; GDAL's
    acquisition field (IMAGERY domain) does."""
    import rasterio
    import rasterio.rpc
    from synthetic import affine_rpc

    from offnadir.pipeline import load_images

    def write(name, **tags):
        p = tmp_path / name
        with rasterio.open(p, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8") as dst:
            dst.write(np.zeros((1, 64, 64), np.uint8))
            dst.rpcs = rasterio.rpc.RPC.from_gdal(affine_rpc(10.0, 60.0, rows=64, cols=64).to_gdal())
            dst.update_tags(TIFFTAG_DATETIME="2023:05:11 10:46:49")
            if tags:
                dst.update_tags(ns="IMAGERY", **tags)
        return str(p)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = load_images([write("a.tif"), write("b.tif", ACQUISITIONDATETIME="2023-04-15T08:34:39")])
    assert a.camera.acquired is None and a.date_source == "none"
    assert b.camera.acquired == "2023-04-15T08:34:39" and b.date_source == "from the camera model b.tif (gdal-raster:GTiff)"


@needs_real
def test_image_by_url_is_dated_from_the_dataset_name_in_its_tags(tmp_path):
    """An image given by URL (served on 127.0.0.1 with range requests) is dated from the Airbus
    dataset name in its tags, as the same file is locally: before, only the URL's file name was
    looked at, and this crop's name (img_01.tif) holds no time."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from offnadir.io.image import open_image_source

    src = S2P / "input_pair/img_01.tif"
    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(src, www / "img_01.tif")
    log = tmp_path / "requests.jsonl"
    log.touch()
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("range_server.py")), str(www), str(log)],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        remote = open_image_source(f"http://127.0.0.1:{port}/img_01.tif")
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()
    local = open_image_source(src)
    assert remote.camera.acquired == local.camera.acquired == "2013-06-29T06:37:14.4Z"
    assert "DS_PHR1B_2013062906" in remote.camera.acquired_from and "gml.root-instance" in remote.camera.acquired_from
    assert remote.camera.acquired_from == local.camera.acquired_from
