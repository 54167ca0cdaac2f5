"""Camera-model readers: every real model file loads with the right format, sensor, size and time;
the same model stored in different formats projects identically; pixel conventions (DIMAP 1-based
offsets, CNES sensor-geometry crops) are checked against the references that ship with the data;
errors are typed and say what to do.

References we did not write: GDAL reading the same files (or sidecar copies of them) itself, the
two models (direct and inverse) stored in each DIMAP file, CNES's own ``.geom``/GeoTIFF copies of
the DIMAP XML, and shareloc's test values.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import REAL, real

from offnadir.camera.camera import IDENTITY, Camera
from offnadir.camera.readers import READERS, read_camera
from offnadir.camera.readers import dimap_v1, dimap_v2, enmap
from offnadir.camera.readers._common import A_TO_B, rpc00a_to_b, sensor_crop
from offnadir.errors import (
    ConfigError, InputFileError, InvalidModelError, NoCameraModelError, UnsupportedFormatError,
)

GD = "gdal/autotest/gcore/data/"
RP = "rpcm/tests/test_rpc_files/"
SL = "shareloc/tests/data/"
ENMAP = RP + "ENMAP01-____L1B-DT0000001011_20220609T081225Z_001_V010111_20230119T143357Z-METADATA.XML"
SKYSAT = RP + "20191015_073816_ssc1d3_0011_basic_l1a_panchromatic_dn_RPC.TXT"

#: every file under data/real holding a camera model: path -> (format, sensor, shape, acquired)
MODELS: dict[str, tuple] = {
    GD + "alos/RPC-md_alos.txt": ("alos-rpc", None, None, None),
    GD + "md_dg.RPB": ("rpb", "WV03", None, None),
    GD + "md_ge_rgb_0010000_rpc.txt": ("rpc-txt", None, None, None),
    GD + "md_ov_rpc.txt": ("rpc-txt", None, None, None),
    GD + "rpc.vrt": ("gdal-raster:VRT", "QB02", (2920, 2220), "2006-10-20T02:50:52.250677Z"),
    GD + "rpc_5395.vrt": ("gdal-raster:VRT", None, (1, 1), None),
    GD + "test_rpc.txt": ("rpc-txt", None, None, None),
    "golden/gdal_transformer_11_rpc_and_golden.json": ("rpc-json", None, (4400, 6600), None),
    "orthority/tests/data/rpc/qb2_basic1b.tif": ("gdal-raster:GTiff", None, (1450, 850), None),
    "orthority/tests/data/rpc/rpc_param.yaml": ("orthority-yaml", None, (1450, 850), None),
    SKYSAT: ("rpc-txt", None, None, None),
    ENMAP: ("enmap-xml", "EnMAP", (1024, 1000), "2022-06-09T08:12:25.038918Z"),
    RP + "JAX_068_001_RGB.json": ("rpc-json", None, (815, 746), "2014-10-05T16:01:38"),
    RP + "rpc_IKONOS.txt": ("rpc-txt", None, None, None),
    RP + "rpc_PLANET_L1A.txt": ("rpc-txt", None, None, None),
    RP + "rpc_PLANET_L1B.txt": ("rpc-txt", None, None, None),
    RP + "rpc_PLEIADES.xml": ("dimap-v2", "PHR", None, None),
    RP + "rpc_SPOT6.xml": ("dimap-v2", "SPOT 6", None, None),
    RP + "rpc_WV1.xml": ("maxar-xml", "WV01", (26828, 35180), "2017-05-25T13:37:39.990313Z"),
    RP + "rpc_WV2.xml": ("maxar-xml", "WV02", (20289, 28244), "2015-09-30T10:56:56.973685Z"),
    RP + "rpc_WV3.xml": ("maxar-xml", "WV01", (23969, 35180), "2012-02-12T05:33:43.088646Z"),
    # a GDAL VRT holding a complete RPC under a .xml name: rpcm cannot parse it (hence its name in
    # rpcm's tests), GDAL can, and offnadir dispatches by content -> read through GDAL
    RP + "rpc_unsupported.xml": ("gdal-raster:VRT", None, (1349, 3199), None),
    "s2p/tests/data/input_pair/img_01.tif": ("gdal-raster:GTiff", None, (1024, 1024), None),
    "s2p/tests/data/input_pair/img_02.tif": ("gdal-raster:GTiff", None, (1102, 1031), None),
    "s2p/tests/data/input_triplet/img_01.tif": ("gdal-raster:GTiff", None, (1024, 1024), None),
    "s2p/tests/data/input_triplet/img_02.tif": ("gdal-raster:GTiff", None, (1040, 1028), None),
    "s2p/tests/data/input_triplet/img_03.tif": ("gdal-raster:GTiff", None, (1032, 1021), None),
    SL + "rpc/PHR1B_P_201709281038045_SEN_PRG_FC_178608-001.geom":
        ("ossim-geom", "PHR 1B", (22940, 40000), "2017-09-28T10:38:04.5Z"),
    SL + "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.geom":
        ("ossim-geom", "PHR 1B", (22940, 40000), "2017-09-28T10:38:39.3Z"),
    SL + "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.tif": ("gdal-raster:GTiff", None, (128, 128), None),
    SL + "rpc/PHRDIMAP_P1BP--2017030824934340CP.XML":
        ("dimap-v1", "PHR 1B", (49826, 39951), "2017-03-08T06:55:34.3242135Z"),
    SL + "rpc/PHRDIMAP_P1BP--2018122638935449CP.XML":
        ("dimap-v1", "PHR 1B", (38248, 40000), "2018-12-26T10:48:55.4342009Z"),
    SL + "rpc/RPC_PHR1B_P_201709281038045_SEN_PRG_FC_178608-001.XML":
        ("dimap-v2", "PHR 1B", None, "2017-09-28T10:38:04.5Z"),
    SL + "rpc/RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML":
        ("dimap-v2", "PHR 1B", None, "2017-09-28T10:38:39.3Z"),
    SL + "rpc/phr_gizeh/img1.geom": ("ossim-geom", None, (13644, 40000), None),
    SL + "rpc/phr_gizeh/img2.geom": ("ossim-geom", None, (14452, 40000), None),
    SL + "rpc/phr_oise/RPC_PHR1A_P_202503191043438_SEN_7342362101-1.XML":
        ("dimap-v2", "PHR 1A", None, "2025-03-19T10:43:43.8Z"),
    SL + "rpc/phr_ventoux/RPC_PHR1B_P_201308051042194_SEN_690908101-001.XML":
        ("dimap-v2", "PHR 1B", None, "2013-08-05T10:42:19.4Z"),
    SL + "rpc/phr_ventoux/left_image.geom": ("ossim-geom", "PHR 1B", (41801, 39182), "2013-08-05T10:42:19.4Z"),
    SL + "rpc/phr_ventoux/lowres_color_image.geom":
        ("ossim-geom", "PHR 1B", (10451, 9796), "2013-08-05T10:42:19.4Z"),
    SL + "rpc/phr_ventoux/right_image.geom": ("ossim-geom", "PHR 1B", (40845, 38987), "2013-08-05T10:42:52.3Z"),
    SL + "rpc/phr_ventoux/right_image_bias.geom":
        ("ossim-geom", "PHR 1B", (40845, 38987), "2013-08-05T10:42:52.3Z"),
    SL + "rpc/wv3_20.NTF": ("gdal-raster:NITF", None, (500, 500), None),
    SL + "rpc/wv3_30.NTF": ("gdal-raster:NITF", None, (500, 500), None),
}

#: CNES crops without RPC tags: model file + image -> (shape, full-scene native (row, col) of the
#: crop's first pixel centre). The GeoTransform origin gives the crop position (PROVENANCE.md).
CROPS: dict[str, tuple] = {
    SL + "image/phr_ventoux/left_image.tif": (SL + "rpc/phr_ventoux/left_image.geom", (500, 500), (5000.0, 5000.0)),
    SL + "image/phr_ventoux/left_image_pixsize_2.tif":
        (SL + "rpc/phr_ventoux/left_image.geom", (250, 250), (5000.5, 5000.5)),
    SL + "image/phr_ventoux/right_image.tif": (SL + "rpc/phr_ventoux/right_image.geom", (495, 498), (5162.0, 4915.0)),
    SL + "image/phr_ventoux/right_image_pixsize_2.tif":
        (SL + "rpc/phr_ventoux/right_image.geom", (247, 249), (5162.5, 4915.5)),
    SL + "image/phr_ventoux/lowres_color_image.tif":
        (SL + "rpc/phr_ventoux/lowres_color_image.geom", (145, 145), (1240.0, 1240.0)),
    SL + "image/phr_gizeh/img1.tif": (SL + "rpc/phr_gizeh/img1.geom", (801, 800), (5000.0, 20500.0)),
    SL + "image/phr_gizeh/img2.tif": (SL + "rpc/phr_gizeh/img2.geom", (801, 795), (5476.0, 20501.0)),
    # 2x downsampled, transform scale 2.0025 (rows) / 2.0025189 (cols): first centre = origin + scale/2 - 0.5
    SL + "image/phr_gizeh/img1.0.5.tif": (SL + "rpc/phr_gizeh/img1.geom", (400, 400), (5000.50125, 20500.5)),
    SL + "image/phr_gizeh/img2.0.5.tif":
        (SL + "rpc/phr_gizeh/img2.geom", (400, 397), (5476.50125, 20501.0 + 2.0025188916876573 / 2 - 0.5)),
}

PIC = "picanteo/docs/tutorials/data/"
PIC_CARS = "picanteo/derived/cars_1.3.0/"
#: Kahramanmaras crops: the full-scene OSSIM .geom sits beside each crop with the same stem, so the
#: image alone finds it (as a sidecar) and applies the crop from its geotransform
SIDECAR_CROPS = {PIC + f"{n}.tif": PIC + f"{n}.geom"
                 for n in ("pre_event_img1", "pre_event_img2", "post_event_img1", "post_event_img2")}
MODELS.update({geom: ("ossim-geom", None, None, None) for geom in SIDECAR_CROPS.values()})

#: files under data/real that hold no camera model (rasters without RPC, JSON/GeoJSON, text)
NO_MODEL = [
    SL + "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001_nogeo.tif",
    "orthority/tests/data/ngi/dem.tif",
    "s2p/tests/data/expected_output/pair/dsm.tif",
    "s2p/tests/data/expected_output/plyflatten/dsm_40cm.tiff",
    "s2p/tests/data/expected_output/triplet/dsm.tif",
    "s2p/tests/data/expected_output/triplet/height_map.tif",
    SL + "dtm/dtm_philondenx_32630_nan.tif",
    SL + "dtm/dtm_philondenx_32630_nan_no_nodata.tif",
    SL + "dtm/srtm_ventoux/N44E005_big_hole.tif",
    SL + "dtm/srtm_ventoux/srtm90_resampled_UTM31/N44E005_UTM.tif",
    SL + "dtm/srtm_ventoux/srtm90_non_void_filled/N44E005.hgt",
    SL + "dtm/geoid/egm96_15.gtx",
    "golden/golden_values.json",
    "orthority/tests/data/rpc/gcps.geojson",
    "rpcm/tests/aoi.geojson",
    "s2p/tests/data/input_pair/config.json",
    "s2p/tests/data/input_triplet/config.json",
] + list(CROPS) + [  # the crops' models live elsewhere (see CROPS): alone they hold none
    PIC_CARS + f for f in ("diff_post_minus_pre.tif", "flat_dem_700m_ellipsoid_egm96.tif", "quality_stats.json",
                           "reference_change.tif", "reference_change_measured_only.tif")
] + [PIC_CARS + f"{d}/{f}" for d in ("pre", "post") for f in (f"config_{d}.json", "dsm.tif", "filling.tif",
                                                                  "image.tif", "invalidity_mask.tif",
                                                                  "performance_map.tif")]

#: text files that are not camera models at all
NOT_A_MODEL = [
    "PROVENANCE.md", "rpcm/LICENSE.txt", "shareloc/LICENSE", "shareloc/NOTICE", "orthority/LICENSE",
    "golden/s2p_pair_matches_from_rpc_with_alt.csv", SL + "triangulation/README",
    "s2p/tests/data/expected_output/units/matches_on_rpc_roi.txt",
    "s2p/tests/data/expected_output/units/unit_matches_from_rpc.txt",
    SL + "dtm/srtm_ventoux/N44E005.omd", SL + "dtm/geoid/egm96.grd.hdr",
    "picanteo/LICENSE", PIC + "open-licence-etalab-v2.0-en.pdf", "picanteo/docs/tutorials/data_readiness.md",
]
#: binary grids GDAL opens as rasters without RPC (reported as holding no model)
NO_MODEL_BINARY_GRID = [SL + "dtm/geoid/egm96.grd"]


def _all_real_files() -> list[str]:
    out = []
    for root, _, files in os.walk(REAL):
        for f in files:
            out.append(str((Path(root) / f).relative_to(REAL)))
    return sorted(out)


def test_every_real_file_is_classified():
    """Nothing under data/real escapes this suite: a new model file must be added to MODELS."""
    known = set(MODELS) | set(NO_MODEL) | set(NOT_A_MODEL) | set(NO_MODEL_BINARY_GRID) | set(SIDECAR_CROPS)
    missing = [f for f in _all_real_files() if f not in known]
    assert not missing, f"files under data/real not classified in tests/test_readers.py: {missing}"


@pytest.mark.parametrize("rel", sorted(MODELS))
def test_model_file_loads(rel):
    fmt, sensor, shape, acquired = MODELS[rel]
    cam = read_camera(real(rel))
    assert isinstance(cam, Camera)
    assert cam.model_format == fmt
    assert cam.sensor == sensor
    assert cam.shape == shape
    assert cam.acquired == acquired
    assert cam.source == str(real(rel))
    assert cam.crop == IDENTITY and cam.bias == IDENTITY
    lon0, lon1, lat0, lat1, h0, h1 = cam.rpc.domain
    assert lon0 < cam.rpc.lon_off < lon1 and lat0 < cam.rpc.lat_off < lat1 and h0 <= cam.rpc.height_off <= h1
    r, c = cam.project(cam.rpc.lon_off, cam.rpc.lat_off, cam.rpc.height_off)
    assert np.isfinite(r) and np.isfinite(c)


@pytest.mark.parametrize("rel", NO_MODEL + NO_MODEL_BINARY_GRID)
def test_file_without_model_raises_no_camera_model(rel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NoCameraModelError) as ei:
            read_camera(real(rel))
    assert Path(rel).name in str(ei.value)


@pytest.mark.parametrize("rel", [f for f in NOT_A_MODEL if not f.endswith((".md", ".pdf"))])
def test_text_that_is_not_a_model_is_unsupported(rel):
    with pytest.raises(UnsupportedFormatError) as ei:
        read_camera(real(rel))
    msg = str(ei.value)
    assert Path(rel).name in msg and "Supported:" in msg


def test_image_without_rpc_names_the_fix():
    with pytest.raises(NoCameraModelError) as ei:
        read_camera(real(SL + "image/phr_ventoux/left_image.tif"))
    assert "image=" in str(ei.value)


def test_readers_list_matches_modules():
    for name in READERS:
        mod = __import__(f"offnadir.camera.readers.{name}", fromlist=["FORMAT"])
        assert isinstance(mod.FORMAT, str) and callable(mod.sniff) and callable(mod.read)


def test_dispatch_is_by_content_not_name(tmp_path):
    """A model under a misleading name is still read by the right reader."""
    for rel, fmt in [(GD + "md_dg.RPB", "rpb"), (RP + "rpc_WV2.xml", "maxar-xml"),
                     (SL + "rpc/phr_gizeh/img1.geom", "ossim-geom"), (GD + "alos/RPC-md_alos.txt", "alos-rpc"),
                     (RP + "rpc_PLEIADES.xml", "dimap-v2"), (RP + "rpc_IKONOS.txt", "rpc-txt")]:
        dst = tmp_path / f"model_{fmt}.dat"
        shutil.copy(real(rel), dst)
        a, b = read_camera(dst), read_camera(real(rel))
        assert a.model_format == fmt and a.rpc == b.rpc


# --------------------------------------------------------------------- same model, many formats

def _grid(cam: Camera, n=4000, seed=0):
    lon0, lon1, lat0, lat1, h0, h1 = cam.rpc.domain
    rng = np.random.default_rng(seed)
    return rng.uniform(lon0, lon1, n), rng.uniform(lat0, lat1, n), rng.uniform(h0, h1, n)


def _max_px(a: Camera, b: Camera, seed=0) -> float:
    lon, lat, h = _grid(a, seed=seed)
    ra, ca = a.project(lon, lat, h)
    rb, cb = b.project(lon, lat, h)
    return float(max(np.abs(ra - rb).max(), np.abs(ca - cb).max()))


@pytest.mark.parametrize("files", [
    (SL + "rpc/RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML",
     SL + "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.geom",
     SL + "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.tif"),
    (SL + "rpc/RPC_PHR1B_P_201709281038045_SEN_PRG_FC_178608-001.XML",
     SL + "rpc/PHR1B_P_201709281038045_SEN_PRG_FC_178608-001.geom"),
    (SL + "rpc/phr_ventoux/RPC_PHR1B_P_201308051042194_SEN_690908101-001.XML",
     SL + "rpc/phr_ventoux/left_image.geom"),
    ("orthority/tests/data/rpc/rpc_param.yaml", "orthority/tests/data/rpc/qb2_basic1b.tif"),
])
def test_same_model_in_different_formats_projects_identically(files):
    """CNES wrote the .geom and the GeoTIFF tags from the DIMAP XML with the 1-based offsets made
    0-based; orthority exported the GeoTIFF tags to YAML. All must agree to 1e-6 px."""
    cams = [read_camera(real(f)) for f in files]
    for other in cams[1:]:
        assert _max_px(cams[0], other) <= 1e-6


def test_dimap_v2_offsets_are_one_based():
    """native = XML - 1: the XML's LINE_OFF/SAMP_OFF exceed the .geom's (CNES, 0-based) by exactly 1."""
    xml = real(SL + "rpc/RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML")
    raw = xml.read_text()
    xml_line = float(re.search(r"<LINE_OFF>([^<]+)</LINE_OFF>", raw).group(1))
    xml_samp = float(re.search(r"<SAMP_OFF>([^<]+)</SAMP_OFF>", raw).group(1))
    cam = read_camera(xml)
    geom = read_camera(real(SL + "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.geom"))
    assert cam.rpc.line_off == xml_line - 1 == geom.rpc.line_off
    assert cam.rpc.samp_off == xml_samp - 1 == geom.rpc.samp_off
    # and the shareloc golden (col 100.5, row 200.5 in its corner convention) needs the shift
    r, c = cam.project(7.04866266073777, 43.72774839443546, 0.0)
    assert abs(r - 200.0) < 0.01 and abs(c - 100.0) < 0.01


def test_pleiades_neo_offsets_are_not_shifted(tmp_path):
    """PNEO RPC XML (GroundtoImage_Values, profile PNEO_SENSOR): offsets used as given, like rpcm.
    No real Neo file was available: the Pleiades file is relabelled."""
    raw = real(RP + "rpc_PLEIADES.xml").read_text()
    neo = (raw.replace("PHR_SENSOR", "PNEO_SENSOR").replace("<Inverse_Model>", "<GroundtoImage_Values>")
           .replace("</Inverse_Model>", "</GroundtoImage_Values>"))
    p = tmp_path / "RPC_PNEO3_P_202201011200000_SEN_X.XML"
    p.write_text(neo)
    phr, pneo = read_camera(real(RP + "rpc_PLEIADES.xml")), read_camera(p)
    assert pneo.rpc.line_off == phr.rpc.line_off + 1 and pneo.rpc.samp_off == phr.rpc.samp_off + 1
    assert pneo.sensor == "PNEO 3" and pneo.acquired == "2022-01-01T12:00:00.0Z"


@pytest.mark.parametrize("rel,mod", [
    (SL + "rpc/RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML", dimap_v2),
    (SL + "rpc/phr_ventoux/RPC_PHR1B_P_201308051042194_SEN_690908101-001.XML", dimap_v2),
    (RP + "rpc_PLEIADES.xml", dimap_v2),
    (RP + "rpc_SPOT6.xml", dimap_v2),
    (SL + "rpc/PHRDIMAP_P1BP--2018122638935449CP.XML", dimap_v1),
    (SL + "rpc/PHRDIMAP_P1BP--2017030824934340CP.XML", dimap_v1),
])
def test_dimap_direct_and_inverse_models_agree(rel, mod):
    """Each DIMAP file stores image->ground and ground->image models fitted by the vendor; going
    through one and back through the other (the one offnadir uses) returns the pixel to within the
    vendor's fit precision (~1e-3 px). This pins which block is which and the term order."""
    cam = read_camera(real(rel))
    f = mod.direct_model(real(rel))
    rng = np.random.default_rng(3)
    nr, nc = cam.shape or (2 * cam.rpc.line_off + 1, 2 * cam.rpc.samp_off + 1)
    row, col = rng.uniform(0, nr - 1, 3000), rng.uniform(0, nc - 1, 3000)
    h = rng.uniform(cam.rpc.domain[4], cam.rpc.domain[5], 3000)
    lon, lat = f(row, col, h)
    r2, c2 = cam.project(lon, lat, h)
    assert max(np.abs(r2 - row).max(), np.abs(c2 - col).max()) < 0.02


def test_dimap_v1_term_order_is_rpc00b():
    """Read as RPC00A, the direct model of the same file misses by pixels: the test above would fail."""
    rel = SL + "rpc/PHRDIMAP_P1BP--2018122638935449CP.XML"
    cam = read_camera(real(rel))
    fa = dimap_v1.direct_model(real(rel), order="A")
    row, col, h = np.array([200.0, 20000.0]), np.array([600.0, 30000.0]), np.array([500.0, 600.0])
    r2, c2 = cam.project(*fa(row, col, h), h)
    assert max(np.abs(r2 - row).max(), np.abs(c2 - col).max()) > 5.0


def test_dimap_v1_shareloc_round_trip():
    """shareloc tests/geomodels/test_rpc.py::test_rpc_phrdimap: direct then inverse at
    (col 600, row 200, h 125) returns within 2e-2 px (h=125 is far below the model's 490..660 m)."""
    rel = SL + "rpc/PHRDIMAP_P1BP--2018122638935449CP.XML"
    cam = read_camera(real(rel))
    lon, lat = dimap_v1.direct_model(real(rel))(200.0, 600.0, 125.0)
    r, c = cam.project(lon, lat, 125.0)
    assert abs(r - 200.0) < 2e-2 and abs(c - 600.0) < 2e-2
    # and offnadir's own inverse agrees with the file's direct model there
    lon2, lat2 = cam.localize(200.0, 600.0, 125.0)
    assert abs(lon2 - lon) < 1e-6 and abs(lat2 - lat) < 1e-6


def test_dimap_validity_domain_used_and_swapped_box_repaired():
    pleiades = read_camera(real(RP + "rpc_PLEIADES.xml"))
    assert pleiades.rpc.validity[:4] == pytest.approx((-56.28888075471173, -56.050875231979,
                                                       -34.95165661791351, -34.77387315319408))
    # rpc_SPOT6.xml stores FIRST_LON=18.39.., FIRST_LAT=-72.44.. for a scene at 72.27W 18.58N
    spot = read_camera(real(RP + "rpc_SPOT6.xml"))
    lon0, lon1, lat0, lat1, _, _ = spot.rpc.validity
    assert (lon0, lon1, lat0, lat1) == pytest.approx((-72.4395036093, -72.0984267043, 18.3932164171, 18.7570975666))
    lon, lat = spot.localize([0.0, 24000.0], [0.0, 21000.0], [500.0, 500.0])
    assert np.all((lon > lon0 - 0.05) & (lon < lon1 + 0.05) & (lat > lat0 - 0.05) & (lat < lat1 + 0.05))


def test_rpc00a_reordering():
    names_b = ["1", "L", "P", "H", "LP", "LH", "PH", "LL", "PP", "HH", "PLH", "LLL", "LPP", "LHH", "LLP",
               "PPP", "PHH", "LLH", "PPH", "HHH"]
    names_a = ["1", "L", "P", "H", "LP", "LH", "PH", "PLH", "LL", "PP", "HH", "LLL", "LPP", "LHH", "LLP",
               "PPP", "PHH", "LLH", "PPH", "HHH"]
    assert rpc00a_to_b(names_a) == names_b and sorted(A_TO_B) == list(range(20))


def test_ossim_geom_rpc00a_and_prefixed_keys(tmp_path):
    """The same .geom rewritten in RPC00A term order, with image0.-prefixed keys, gives the same camera."""
    src = real(SL + "rpc/phr_gizeh/img1.geom")
    text = src.read_text()
    kv = dict(re.findall(r"^(\w+_coeff_\d\d):\s*(\S+)", text, re.M))
    b_of_a = {a: b for b, a in enumerate(A_TO_B)}  # RPC00A position -> RPC00B position
    out = []
    for line in text.splitlines():
        m = re.match(r"^(line_num|line_den|samp_num|samp_den)_coeff_(\d\d):", line)
        if m:
            poly, j = m.group(1), int(m.group(2))
            line = f"{poly}_coeff_{j:02d}:  {kv[f'{poly}_coeff_{b_of_a[j]:02d}']}"
        elif line.startswith("polynomial_format:"):
            line = "polynomial_format:  A"
        out.append("image0." + line if line and not line.startswith("adjustment") else line)
    p = tmp_path / "a_order.geom"
    p.write_text("\n".join(out) + "\n")
    a, b = read_camera(p), read_camera(src)
    assert a.rpc == b.rpc
    assert "polynomial_format:  A" in p.read_text()


# ------------------------------------------------------------------------ GDAL reads it itself

def _dummy_tif(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no georeferencing on purpose
        with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as ds:
            ds.write(np.zeros((1, 8, 8), "uint8"))


@pytest.mark.parametrize("rel,tif,sidecar", [
    (GD + "md_dg.RPB", "x.tif", "x.RPB"),
    (GD + "md_ge_rgb_0010000_rpc.txt", "x.tif", "x_rpc.txt"),
    (GD + "md_ov_rpc.txt", "x.tif", "x_rpc.txt"),
    (GD + "test_rpc.txt", "x.tif", "x_rpc.txt"),
    (RP + "rpc_IKONOS.txt", "x.tif", "x_rpc.txt"),
    (SKYSAT, "x.tif", "x_RPC.TXT"),
    (GD + "alos/RPC-md_alos.txt", "IMG-md_alos.tif", "RPC-md_alos.txt"),
])
def test_sidecar_parsed_like_gdal(tmp_path, rel, tif, sidecar):
    """GDAL loads .RPB / _rpc.txt / ALOS RPC sidecars of a GeoTIFF itself: its numbers are ours."""
    _dummy_tif(tmp_path / tif)
    shutil.copy(real(rel), tmp_path / sidecar)
    if "alos" in rel:  # GDAL's ALOS reader wants the product summary next to it
        (tmp_path / "summary.txt").write_text(
            'Lbi_Satellite="ALOS"\nLbi_Sensor="PRISM"\nImg_SceneCenterDateTime="20070320 01:02:03.456"\n')
    with rasterio.open(tmp_path / tif) as ds:
        gdal_tags = ds.tags(ns="RPC")
        imagery = ds.tags(ns="IMAGERY")
    assert gdal_tags, "GDAL did not load the sidecar"
    ours = read_camera(real(rel))
    from offnadir.camera.rpc import RPC
    theirs = RPC.from_dict(gdal_tags)
    assert ours.rpc.norm == pytest.approx(theirs.norm, rel=0, abs=0)
    assert np.array_equal(ours.rpc.coefs, theirs.coefs)
    # the raster reader finds the same model through GDAL, with the image size
    via_tif = read_camera(tmp_path / tif)
    assert via_tif.rpc == theirs and via_tif.shape == (8, 8)
    if "alos" in rel:
        side = read_camera(tmp_path / sidecar)
        assert side.sensor == imagery["SATELLITEID"] == "ALOS PRISM"
        assert side.acquired.startswith(imagery["ACQUISITIONDATETIME"].replace(" ", "T"))


def test_imd_sidecar_adds_time_and_size(tmp_path):
    shutil.copy(real(GD + "md_dg.RPB"), tmp_path / "scene.RPB")
    (tmp_path / "scene.IMD").write_text(
        'version = "AA";\nnumRows = 1877;\nnumColumns = 1703;\nBEGIN_GROUP = IMAGE_1\n'
        '\tsatId = "WV03";\n\tfirstLineTime = 2015-05-06T10:12:13.123456Z;\nEND_GROUP = IMAGE_1\nEND;\n')
    cam = read_camera(tmp_path / "scene.RPB")
    assert cam.shape == (1877, 1703) and cam.acquired == "2015-05-06T10:12:13.123456Z" and cam.sensor == "WV03"


# ---------------------------------------------------------------- CNES crops in sensor geometry

@pytest.mark.parametrize("image", sorted(CROPS))
def test_crop_camera_projects_to_crop_pixels(image):
    model, shape, first_centre_full = CROPS[image]
    cam = read_camera(real(model), image=real(image))
    full = read_camera(real(model))
    assert cam.shape == shape and cam.crop != IDENTITY
    assert cam.rpc == full.rpc
    # the crop's first pixel centre (0, 0) is the full-scene native pixel given by the GeoTransform
    lon, lat = full.localize(*first_centre_full, 200.0)
    r, c = cam.project(lon, lat, 200.0)
    assert abs(r) < 1e-6 and abs(c) < 1e-6
    # localize in crop pixels = localize at the corresponding full-scene pixels
    rc = np.array([[0.0, 0.0], [shape[0] - 1.0, shape[1] - 1.0], [10.5, 3.25]])
    lon_c, lat_c = cam.localize(rc[:, 0], rc[:, 1], 300.0)
    with rasterio.open(real(image)) as ds:
        T = ds.transform
    cols_full = T.a * (rc[:, 1] + 0.5) + T.b * (rc[:, 0] + 0.5) + T.c - 0.5
    rows_full = T.d * (rc[:, 1] + 0.5) + T.e * (rc[:, 0] + 0.5) + T.f - 0.5
    lon_f, lat_f = full.localize(rows_full, cols_full, 300.0)
    assert np.allclose(lon_c, lon_f, atol=1e-11, rtol=0) and np.allclose(lat_c, lat_f, atol=1e-11, rtol=0)


def test_ventoux_left_first_pixel_is_full_native_5000():
    """golden_values.json (shareloc): the first pixel centre of phr_ventoux/left_image.tif is the
    full-scene native pixel (5000, 5000); its DEM intersection projects there to within 0.007 px."""
    cam = read_camera(real(SL + "rpc/phr_ventoux/left_image.geom"), image=real(SL + "image/phr_ventoux/left_image.tif"))
    r, c = cam.project(5.193406151946084, 44.20805807814395, 503.51202179)
    assert abs(r) < 0.007 and abs(c) < 0.007
    assert cam.sensor == "PHR 1B"


def test_sensor_crop_affine_with_rotation():
    """General GeoTransform (rotation/shear terms): crop is the exact inverse of
    full_native = M (crop_native + 0.5) - 0.5 with M the transform on (row, col)."""
    from affine import Affine

    T = Affine(1.5, 0.2, 1000.0, -0.1, 2.0, 300.0)
    crop = np.vstack([np.reshape(sensor_crop(T), (2, 3)), [0, 0, 1]])
    rng = np.random.default_rng(0)
    for row, col in rng.uniform(-5, 50, (20, 2)):
        x, y = T * (col + 0.5, row + 0.5)
        back = crop @ np.array([y - 0.5, x - 0.5, 1.0])
        assert back[:2] == pytest.approx([row, col], abs=1e-9)


def test_image_metadata_fills_sensor_and_time():
    cam = read_camera(real(SL + "rpc/phr_gizeh/img1.geom"), image=real(SL + "image/phr_gizeh/img1.tif"))
    assert cam.sensor == "PHR 1B" and cam.acquired == "2013-02-08T08:36:09.1Z"
    assert read_camera(real(SL + "rpc/phr_gizeh/img1.geom")).sensor is None


def test_image_with_own_rpc_gets_no_crop():
    """An image with RPC tags is never read as a sensor-geometry crop, whatever its transform."""
    tif = real(SL + "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.tif")
    cam = read_camera(real(SL + "rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.geom"), image=tif)
    assert cam.crop == IDENTITY and cam.shape == (128, 128)


def test_image_with_crs_gets_no_crop():
    cam = read_camera(real(GD + "md_dg.RPB"), image=real("s2p/tests/data/expected_output/pair/dsm.tif"))
    assert cam.crop == IDENTITY and cam.shape == (739, 721)


def test_missing_image_is_input_error(tmp_path):
    with pytest.raises(InputFileError):
        read_camera(real(GD + "md_dg.RPB"), image=tmp_path / "nope.tif")


# ------------------------------------------------------------------------ sidecar discovery

def test_raster_finds_geom_sidecar_and_applies_crop(tmp_path):
    shutil.copy(real(SL + "image/phr_ventoux/left_image.tif"), tmp_path / "left_image.tif")
    shutil.copy(real(SL + "rpc/phr_ventoux/left_image.geom"), tmp_path / "left_image.geom")
    cam = read_camera(tmp_path / "left_image.tif")
    ref = read_camera(real(SL + "rpc/phr_ventoux/left_image.geom"), image=real(SL + "image/phr_ventoux/left_image.tif"))
    assert cam.model_format == "ossim-geom" and cam.crop == ref.crop and cam.shape == (500, 500)


def test_gdal_reads_dimap_rpc_with_the_same_one_based_shift(tmp_path):
    """GDAL's Pleiades metadata reader loads RPC_<id>.XML for IMG_<id>_R1C1.TIF and also applies
    the -1: an independent confirmation of the DIMAP v2 convention."""
    rpc_name = "RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML"
    img = tmp_path / "IMG_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001_R1C1.TIF"
    _dummy_tif(img)
    shutil.copy(real(SL + "rpc/" + rpc_name), tmp_path / rpc_name)
    with rasterio.open(img) as ds:
        gdal_tags = ds.tags(ns="RPC")
    from offnadir.camera.rpc import RPC
    ours = read_camera(real(SL + "rpc/" + rpc_name))
    assert gdal_tags and RPC.from_dict(gdal_tags).key()[:-1] == ours.rpc.key()[:-1]  # all but validity
    assert read_camera(img).shape == (8, 8)


def test_raster_finds_a_lone_dimap_rpc(tmp_path):
    """A raster without RPC metadata next to a single RPC_*.XML (a name GDAL does not pair) uses it."""
    _dummy_tif(tmp_path / "crop.tif")
    shutil.copy(real(SL + "rpc/RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML"),
                tmp_path / "RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cam = read_camera(tmp_path / "crop.tif")
    assert cam.model_format == "dimap-v2" and cam.shape == (8, 8) and cam.sensor == "PHR 1B"


def test_unusable_sidecar_is_reported(tmp_path):
    _dummy_tif(tmp_path / "a.tif")
    (tmp_path / "a_rpc.txt").write_text("LINE_OFF: 1\nLINE_NUM_COEFF_1: 1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NoCameraModelError) as ei:
            read_camera(tmp_path / "a.tif")
    assert "a_rpc.txt" in str(ei.value)


def test_dim_document_follows_its_rpc_reference(tmp_path):
    rpc_name = "RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML"
    shutil.copy(real(SL + "rpc/" + rpc_name), tmp_path / rpc_name)
    dim = tmp_path / "DIM_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML"
    dim.write_text(f"""<?xml version="1.0"?>
<Dimap_Document>
 <Metadata_Identification><METADATA_FORMAT version="2.0">DIMAP</METADATA_FORMAT>
  <METADATA_PROFILE>PHR_SENSOR</METADATA_PROFILE></Metadata_Identification>
 <Dataset_Content><Dataset_Components><Component>
   <COMPONENT_TITLE>RPC Model</COMPONENT_TITLE><COMPONENT_PATH href="{rpc_name}"/></Component>
 </Dataset_Components></Dataset_Content>
 <Raster_Data><Raster_Dimensions><NROWS>22940</NROWS><NCOLS>40000</NCOLS></Raster_Dimensions></Raster_Data>
 <Dataset_Sources><Source_Identification><Strip_Source><MISSION>PHR</MISSION><MISSION_INDEX>1B</MISSION_INDEX>
   <IMAGING_DATE>2017-09-28</IMAGING_DATE><IMAGING_TIME>10:38:39.3Z</IMAGING_TIME></Strip_Source>
 </Source_Identification></Dataset_Sources>
</Dimap_Document>
""")
    via_dim = read_camera(dim)
    via_rpc = read_camera(tmp_path / rpc_name)  # also picks up the sibling DIM for size
    direct = read_camera(real(SL + "rpc/" + rpc_name))
    assert via_dim.rpc == direct.rpc == via_rpc.rpc
    assert via_dim.shape == via_rpc.shape == (22940, 40000)
    assert via_dim.sensor == "PHR 1B" and via_dim.acquired == "2017-09-28T10:38:39.3Z"
    # the time is the DIM_ document's IMAGING_DATE/TIME either way, and the camera says so
    for cam in (via_dim, via_rpc):
        assert cam.acquired_from.startswith(f"the product document {dim.name} (IMAGING_DATE")
    assert direct.acquired_from.startswith("the product name")  # no DIM_ beside the shared copy


# ------------------------------------------------------------------------------- EnMAP bands

def test_enmap_bands():
    p = real(ENMAP)
    assert enmap.band_count(p) == 224
    b1, default = read_camera(p, band=1), read_camera(p)
    assert b1.rpc == default.rpc and "band 1" in b1.rpc.source
    assert read_camera(p, band=91).rpc == b1.rpc  # VNIR bands share one RPC in this product
    swir = read_camera(p, band=150)
    assert swir.rpc != b1.rpc and swir.shape == (1024, 1000)
    # L1B VNIR and SWIR cubes are not co-registered: ~20 rows apart for the same ground point
    lon, lat, h = b1.rpc.lon_off, b1.rpc.lat_off, b1.rpc.height_off
    (rv, cv), (rs, cs) = b1.project(lon, lat, h), swir.project(lon, lat, h)
    assert 15 < abs(rv - rs) < 25 and abs(cv - cs) < 2
    assert read_camera(p, band=151).rpc != swir.rpc  # SWIR bands differ slightly from each other
    for bad in (0, 225):
        with pytest.raises(ConfigError) as ei:
            read_camera(p, band=bad)
        assert "1..224" in str(ei.value)


# ------------------------------------------------------------------------------------ errors

def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputFileError) as ei:
        read_camera(tmp_path / "missing_rpc.txt")
    assert "missing_rpc.txt" in str(ei.value)
    with pytest.raises(InputFileError):
        read_camera(tmp_path)


def test_unsupported_xml(tmp_path):
    p = tmp_path / "other.xml"
    p.write_text('<?xml version="1.0"?><Product><Name>x</Name></Product>')
    with pytest.raises(UnsupportedFormatError) as ei:
        read_camera(p)
    assert "other.xml" in str(ei.value)


def _corrupt(tmp_path, rel, name, pattern, repl, count=1):
    text = real(rel).read_text(encoding="latin-1")
    new, n = re.subn(pattern, repl, text, count=count)
    assert n, f"pattern {pattern} not found in {rel}"
    p = tmp_path / name
    p.write_text(new, encoding="latin-1")
    return p


@pytest.mark.parametrize("rel,name,pattern,repl,count,words", [
    (RP + "rpc_IKONOS.txt", "nan_rpc.txt", r"(LINE_NUM_COEFF_3:\s*)\S+", r"\g<1>NaN", 1, ["line_num", "non-finite"]),
    (RP + "rpc_IKONOS.txt", "zero_rpc.txt", r"(LINE_DEN_COEFF_\d+:\s*)\S+", r"\g<1>0", 0, ["line_den", "all zeros"]),
    (RP + "rpc_IKONOS.txt", "scale_rpc.txt", r"(LAT_SCALE:\s*)\S+", r"\g<1>0", 1, ["lat_scale", "0"]),
    (RP + "rpc_IKONOS.txt", "short_rpc.txt", r"SAMP_DEN_COEFF_20:[^\n]*\n", "", 1, ["SAMP_DEN_COEFF_20"]),
    (RP + "rpc_PLEIADES.xml", "RPC_nan.XML", r"<LINE_NUM_COEFF_2>[^<]*<", "<LINE_NUM_COEFF_2>nan<", 2,
     ["line_num", "non-finite"]),
    (RP + "rpc_PLEIADES.xml", "RPC_text.XML", r"<LAT_OFF>[^<]*<", "<LAT_OFF>north<", 1, ["LAT_OFF", "not a number"]),
    (RP + "rpc_PLEIADES.xml", "RPC_cut.XML", r"<SAMP_SCALE>[^<]*</SAMP_SCALE>", "", 1, ["SAMP_SCALE", "missing"]),
    (RP + "rpc_PLEIADES.xml", "RPC_broken.XML", r"</Dimap_Document>", "", 1, ["not well-formed"]),
    (RP + "rpc_WV2.xml", "wv_zero.xml", r"<SAMPDENCOEF>[^<]*<", "<SAMPDENCOEF>" + " ".join(["0"] * 20) + "<", 1,
     ["samp_den", "all zeros"]),
    (GD + "md_dg.RPB", "nan.RPB", r"(lineOffset = )\d+", r"\g<1>nan", 1, ["line_off"]),
    (SL + "rpc/phr_gizeh/img1.geom", "inf.geom", r"(samp_num_coeff_07:\s*)\S+", r"\g<1>inf", 1, ["samp_num", "[8]"]),
    (SL + "rpc/phr_gizeh/img1.geom", "fmt.geom", r"polynomial_format:\s*B", "polynomial_format:  C", 1,
     ["polynomial_format"]),
    (GD + "alos/RPC-md_alos.txt", "RPC-short.txt", r".{40}$", "", 1, ["truncated"]),
    (RP + "JAX_068_001_RGB.json", "jax_nan.json", r'("row_scale": )[0-9.]+', r"\g<1>NaN", 1, ["line_scale"]),
])
def test_corrupt_models_raise_invalid_model(tmp_path, rel, name, pattern, repl, count, words):
    p = _corrupt(tmp_path, rel, name, pattern, repl, count)
    with pytest.raises(InvalidModelError) as ei:
        read_camera(p)
    msg = str(ei.value)
    assert name in msg
    for w in words:
        assert w in msg, msg


def test_maxar_xml_without_rpb_has_no_model(tmp_path):
    p = tmp_path / "norpb.xml"
    p.write_text(re.sub(r"<RPB>.*</RPB>", "", real(RP + "rpc_WV2.xml").read_text(), flags=re.S))
    with pytest.raises(NoCameraModelError) as ei:
        read_camera(p)
    assert "RPB" in str(ei.value)


def test_multi_image_orthority_file_needs_image(tmp_path):
    text = real("orthority/tests/data/rpc/rpc_param.yaml").read_text()
    p = tmp_path / "two.yaml"
    p.write_text(text + text.replace("qb2_basic1b.tif:", "other.tif:"))
    with pytest.raises(ConfigError) as ei:
        read_camera(p)
    assert "image=" in str(ei.value)
    cam = read_camera(p, image=real("orthority/tests/data/rpc/qb2_basic1b.tif"))
    assert cam.shape == (1450, 850)


def test_jpeg2000_rpc_through_gdal(tmp_path):
    """No vendor JP2 is in the data: GDAL writes the WV3 NITF's RPC into a small JP2, and the
    generic raster path reads it back (same projection to 1e-9 px)."""
    src = real(SL + "rpc/wv3_20.NTF")
    with rasterio.open(src) as ds:
        rpcs = ds.rpcs
    jp2 = tmp_path / "scene.jp2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(jp2, "w", driver="JP2OpenJPEG", width=64, height=48, count=1, dtype="uint16") as ds:
            ds.write(np.zeros((1, 48, 64), "uint16"))
            ds.rpcs = rpcs
    for aux in tmp_path.glob("*.aux.xml"):
        aux.unlink()  # the RPC must come from the JP2 itself
    cam = read_camera(jp2)
    assert cam.model_format == "gdal-raster:JP2OpenJPEG" and cam.shape == (48, 64)
    assert _max_px(cam, read_camera(src)) < 1e-9


@pytest.mark.parametrize("tags,expected", [
    ({"NITF_IDATIM": "20021216151629", "NITF_ISORCE": "Unknown"}, (None, None)),  # GDAL's placeholder
    ({"NITF_IDATIM": "20150412103045", "NITF_ISORCE": "WV03"}, ("WV03", "2015-04-12T10:30:45")),
    ({"MISSION": "PHR", "MISSION_INDEX": "1A", "IMAGING_DATE": "2014-01-02", "IMAGING_TIME": "10:11:12.5Z"},
     ("PHR 1A", "2014-01-02T10:11:12.5Z")),
    ({"IMD:IMAGE_1.satId": '"QB02"', "IMD:IMAGE_1.firstLineTime": "2006-10-20T02:50:52.250677Z"},
     ("QB02", "2006-10-20T02:50:52.250677Z")),
    ({"IMAGERY:SATELLITEID": "ALOS PRISM", "IMAGERY:ACQUISITIONDATETIME": "2007-03-20 01:02:03"},
     ("ALOS PRISM", "2007-03-20T01:02:03")),
    # the TIFF DateTime tag is the file's creation time (TIFF 6.0), not an acquisition time
    ({"TIFFTAG_DATETIME": "2022:05:01 10:00:00"}, (None, None)),
    ({"IMAGERY:ACQUISITIONDATETIME": "2007-03-20 01:02:03", "TIFFTAG_DATETIME": "2022:05:01 10:00:00"},
     (None, "2007-03-20T01:02:03")),
])
def test_sensor_and_time_from_raster_tags(tags, expected):
    from offnadir.camera.readers._common import sensor_time_from_tags

    assert sensor_time_from_tags(tags) == expected


@pytest.mark.parametrize("image", sorted(SIDECAR_CROPS))
def test_crop_finds_its_geom_sidecar(image):
    """The image alone gives the same camera as its .geom read with the image's crop."""
    alone = read_camera(real(image))
    ref = read_camera(real(SIDECAR_CROPS[image]), image=real(image))
    assert alone.shape == ref.shape == (1000, 1000)
    r = np.array([0.0, 500.0, 999.0])
    lon, lat = ref.localize(r, r[::-1], np.full(3, 700.0))
    np.testing.assert_allclose(np.array(alone.project(lon, lat, np.full(3, 700.0))), np.array([r, r[::-1]]),
                               atol=1e-6)
