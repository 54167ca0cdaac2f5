"""The coherence of the same-date height change with its window (``dh_evidence.coherent_dh``):
a height change the size of a building is kept, corners included, also where its heights vary
(rubble); a false peak's streak is not; the kernel matches a slow obvious twin; the result does
not depend on the tiling."""

import numpy as np
import pytest

from offnadir.change.dh_evidence import coherent_dh, coherent_mask, coherent_min_share, dh_answer
from offnadir.change.tileio import MemoryIO
from offnadir.cube.plan import Tile
from offnadir.cube.sweep_kernels import coherent_share


def _share_slow(dh, r, tol):
    ny, nx = dh.shape
    out = np.full(dh.shape, np.nan)
    for y in range(ny):
        for x in range(nx):
            if np.isnan(dh[y, x]):
                continue
            w = dh[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1]
            with np.errstate(invalid="ignore"):
                out[y, x] = np.sum(np.abs(w - dh[y, x]) <= tol) / w.size
    return out


@pytest.mark.parametrize("r", [1, 3])
def test_kernel_matches_its_slow_twin_with_nans(r):
    rng = np.random.default_rng(4)
    dh = rng.normal(0.0, 3.0, (23, 31))
    dh[rng.random(dh.shape) < 0.2] = np.nan
    out = np.empty(dh.shape)
    coherent_share(dh, r, 2.0, out)
    np.testing.assert_allclose(out, _share_slow(dh, r, 2.0), equal_nan=True)


def test_min_share_is_the_window_quadrant():
    assert coherent_min_share(6) == pytest.approx(49 / 169)
    assert coherent_min_share(1) == pytest.approx(4 / 9)


def _scene(seed=0):
    """Unchanged ground (dh 0 with noise, 5 % not measured), a raised roof (a 20x20 block, +6 m)
    and rubble (16x20, 3 to 15 m lower), both measured everywhere, and a false peak's streak along the baseline (2 cells wide, dh
    drifting from 6 to 30 m: beyond a storey from the ground)."""
    rng = np.random.default_rng(seed)
    dh = rng.normal(0.0, 0.2, (60, 80))
    dh[10:30, 10:30] = 6.0 + rng.normal(0.0, 0.3, (20, 20))
    dh[45:47, 5:75] = np.linspace(6.0, 30.0, 70)[None, :]
    dh[12:28, 40:60] = rng.uniform(-15.0, -3.0, (16, 20))  # rubble of a demolished building
    holes = rng.random(dh.shape) < 0.05
    holes[8:32, 8:62] = False  # a roof measured everywhere (holes lower the share: see the docstring)
    dh[holes] = np.nan
    return dh


def test_a_building_sized_change_is_kept_corners_included_and_a_streak_is_not():
    dh = _scene()
    keep = coherent_mask(dh_answer(dh, 2.5), tol=0.5)
    # every cell of the roof and of the rubble, corners included (a quadrant of the window inside)
    assert keep[10:30, 10:30].all() and keep[12:28, 40:60].all()
    level = coherent_mask(dh)  # the values within a storey: rubble is not level
    assert level[10:30, 10:30].all() and not level[12:28, 40:60].all()
    streak = dh[45:47, 5:75]
    assert not keep[45:47, 5:75][np.isfinite(streak)].any()
    ground = np.isfinite(dh)
    ground[5:35, 5:65] = False
    ground[40:52, :] = False
    assert keep[ground].mean() > 0.99
    assert not keep[np.isnan(dh)].any()  # no measurement stays none


def test_an_isolated_peak_in_unchanged_ground_is_dropped():
    dh = np.zeros((40, 40))
    dh[20, 20] = 12.0
    dh[5:8, 30:33] = -9.0  # 9 cells: far less than a window quadrant
    keep = coherent_mask(dh_answer(dh, 2.5), tol=0.5)
    assert not keep[20, 20] and not keep[5:8, 30:33].any()
    assert keep[0, 0] and keep[39, 39]


@pytest.mark.parametrize("size", [16, 23])
def test_coherent_dh_does_not_depend_on_the_tiling(size):
    dh = np.stack([np.full((60, 80), np.nan), _scene(1), _scene(2)]).astype(np.float32)
    io = MemoryIO({"dh": dh})
    whole = coherent_dh(io, Tile(0, 0, 0, 60, 0, 80), (60, 80), 2.5)
    assert np.isnan(whole[0]).all()
    assert np.isfinite(whole[1]).sum() < np.isfinite(dh[1]).sum()  # the streak went
    tiled = np.full(dh.shape, -1.0)
    for a, i0 in enumerate(range(0, 60, size)):
        for b, j0 in enumerate(range(0, 80, size)):
            t = Tile(a, b, i0, min(i0 + size, 60), j0, min(j0 + size, 80))
            tiled[:, t.i0:t.i1, t.j0:t.j1] = coherent_dh(io, t, (60, 80), 2.5)
    np.testing.assert_array_equal(tiled, whole)
    kept = np.isfinite(whole)
    np.testing.assert_array_equal(whole[kept], dh[kept].astype(np.float64))


def _stereo_cube(n=96):
    """An unchanged surface seen at two dates (other radiometry), with a same-date dh that shows
    a raised 30x30 block (+9 m) and a false peak's streak (2 cells wide, +9 m) on unchanged ground."""
    import rioxarray  # noqa: F401
    import xarray as xr
    from affine import Affine
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    g = 100 + 40 * ndi.gaussian_filter(rng.standard_normal((n, n)), 1.5)
    val = np.stack([g + rng.normal(0, 0.5, g.shape), 20 + 0.6 * g + rng.normal(0, 0.5, g.shape)])
    tr = Affine(0.5, 0, 500000.0, 0, -0.5, 4800000.0)
    dh = np.full((2, n, n), np.nan, np.float32)
    dh[1] = 0.0
    dh[1, 30:60, 30:60] = 9.0
    dh[1, 75:77, 10:86] = 9.0
    ds = xr.Dataset({"value": (("image", "band", "y", "x"), val[:, None].astype(np.float32)),
                     "visible": (("image", "y", "x"), np.ones((2, n, n), np.uint8)),
                     "dsm": (("y", "x"), np.full((n, n), 100.0, np.float32)),
                     "dh": (("image", "y", "x"), dh),
                     "dh_sigma": (("image", "y", "x"), np.full((2, n, n), 0.5, np.float32))},
                    coords={"image": ["base", "target"], "band": [1], "x": tr.c + 0.5 * (np.arange(n) + 0.5),
                            "y": tr.f - 0.5 * (np.arange(n) + 0.5),
                            "azimuth": ("image", [90.0, 270.0]), "off_nadir": ("image", [5.0, 20.0])})
    ds = ds.rio.write_crs("EPSG:32631").rio.write_transform(tr)
    ds.attrs["tile_size"] = 48
    return ds


def test_the_change_stage_keeps_the_block_and_drops_the_streak():
    import json
    import warnings

    import dask

    from offnadir.change import detect

    with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
        warnings.simplefilter("ignore")
        out = detect(_stereo_cube(), chunk=48, shadows=False)  # tiles of 48: the streak crosses a border
    ch = out["change"].values[1]
    assert (ch[30:60, 30:60] == 1).mean() > 0.95
    assert (ch[75:77, 10:86] == 1).mean() < 0.05  # without the coherence test: every cell (dh 9 m, sigma 0.5)
    rule = json.loads(out.attrs["change_calibration"])["dh_coherence"]
    assert rule["radius_cells"] >= 1 and rule["min_share"] == pytest.approx(coherent_min_share(rule["radius_cells"]), abs=1e-4)
