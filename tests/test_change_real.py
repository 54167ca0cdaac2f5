"""Real same-date stereo pairs: the truth is "no change", so at most 2 % of the observable cells
may be flagged (s2p Marseille triplet img_01/img_02 with its DSM, s2p Réunion pair with its DSM,
shareloc Ventoux left/right with SRTM + EGM96)."""

from __future__ import annotations

import warnings

import dask
import numpy as np
import pytest
from conftest import real

from offnadir.change import detect
from offnadir.pipeline import coregister

S2P = real("s2p/tests/data")
SHARELOC = real("shareloc/tests/data")


def _ventoux_dsm(tmp_path):
    """SRTM is a 90 m grid and the two Pleiades crops overlap over about 250 x 100 m: resample it
    (cubic, GDAL through rasterio) onto a 1 m UTM 31N grid over the overlap. Heights stay above
    EGM96 (tagged so), and offnadir converts them with the EGM96 grid."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject

    tr = Transformer.from_crs("EPSG:4326", "EPSG:32631", always_xy=True)
    x0, y0 = tr.transform(5.1915, 44.2085)
    x1, y1 = tr.transform(5.1985, 44.2035)
    x0, y1 = np.floor(x0), np.floor(y1)
    nx, ny = int(x1 - x0), int(y0 - y1)
    transform = from_origin(x0, y1 + ny, 1.0, 1.0)
    dst = np.zeros((ny, nx), np.float32)
    with rasterio.open(SHARELOC / "dtm/srtm_ventoux/srtm90_non_void_filled/N44E005.hgt") as src:
        reproject(rasterio.band(src, 1), dst, dst_transform=transform, dst_crs="EPSG:32631",
                  resampling=Resampling.cubic)
    path = tmp_path / "ventoux_srtm_1m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=nx, height=ny, count=1, dtype="float32", crs="EPSG:32631",
                       transform=transform) as out:
        out.write(dst, 1)
        out.update_tags(VERTICAL_DATUM="egm96")
    return path


def _pairs(tmp_path):
    return {
        "marseille triplet img_01/img_02": (S2P / "expected_output/triplet/dsm.tif",
                                            [S2P / "input_triplet/img_01.tif", S2P / "input_triplet/img_02.tif"], {}),
        "reunion pair": (S2P / "expected_output/pair/dsm.tif",
                         [S2P / "input_pair/img_01.tif", S2P / "input_pair/img_02.tif"], {}),
        "ventoux left/right": (_ventoux_dsm(tmp_path),
                               [{"path": SHARELOC / "image/phr_ventoux/left_image.tif",
                                 "model": SHARELOC / "rpc/phr_ventoux/left_image.geom"},
                                {"path": SHARELOC / "image/phr_ventoux/right_image.tif",
                                 "model": SHARELOC / "rpc/phr_ventoux/right_image.geom"}],
                               {"geoid": SHARELOC / "dtm/geoid/egm96_15.gtx"}),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["marseille triplet img_01/img_02", "reunion pair", "ventoux left/right"])
def test_same_date_pairs_flag_at_most_two_percent(tmp_path, real_data, name):
    dsm, images, kw = _pairs(tmp_path)[name]
    with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
        warnings.simplefilter("ignore")  # s2p DSMs declare no vertical datum (they are ellipsoidal)
        cube = coregister(dsm, images, chunk=256, **kw).compute()
        out = detect(cube, chunk=256)
    ch = out["change"].values[1]
    obs = ch != 2
    flagged = float((ch[obs] == 1).mean())
    ortho = out["change_ortho"].values[1]
    flagged_ortho = float((ortho[ortho != 2] == 1).mean())
    print(f"{name}: {obs.sum()} observable cells, {100 * flagged:.2f} % flagged "
          f"(ortho baseline {100 * flagged_ortho:.1f} %), {len(out['patch_id'])} patches")
    assert obs.sum() > 10_000
    assert flagged <= 0.02
