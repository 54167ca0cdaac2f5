"""The same-date height change ``dh`` plugs into the change stage: where the store has it, it is
evidence (|dh| against elevated_height with its sigma) on top of the cross-date structure."""

from __future__ import annotations

import warnings

import dask
import numpy as np
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine
from scipy import ndimage as ndi

from offnadir.change import detect


def _cube(n=96, with_dh=True):
    rng = np.random.default_rng(0)
    g = 100 + 40 * ndi.gaussian_filter(rng.standard_normal((n, n)), 1.5)
    base = g + rng.normal(0, 0.5, g.shape)
    target = 20 + 0.6 * g + rng.normal(0, 0.5, g.shape)  # unchanged surface, other radiometry
    val = np.stack([base, target])[:, None].astype(np.float32)
    tr = Affine(0.5, 0, 500000.0, 0, -0.5, 4800000.0)
    xs = tr.c + 0.5 * (np.arange(n) + 0.5)
    ys = tr.f - 0.5 * (np.arange(n) + 0.5)
    ds = xr.Dataset({"value": (("image", "band", "y", "x"), val),
                     "visible": (("image", "y", "x"), np.ones((2, n, n), np.uint8)),
                     "dsm": (("y", "x"), np.full((n, n), 100.0, np.float32))},
                    coords={"image": ["base", "target"], "band": [1], "x": xs, "y": ys,
                            "azimuth": ("image", [90.0, 270.0]), "off_nadir": ("image", [5.0, 20.0])})
    if with_dh:
        dh = np.full((2, n, n), np.nan, np.float32)
        dh[1] = 0.0
        dh[1, 30:60, 30:60] = 9.0  # a storey block raised, measured by the sweep
        ds["dh"] = (("image", "y", "x"), dh)
        ds["dh_sigma"] = (("image", "y", "x"), np.full((2, n, n), 0.5, np.float32))
    ds = ds.rio.write_crs("EPSG:32631").rio.write_transform(tr)
    ds.attrs["tile_size"] = 48
    return ds


def _detect(ds):
    with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
        warnings.simplefilter("ignore")
        return detect(ds, chunk=48, shadows=False)


def test_dh_raises_the_probability_where_the_height_changed():
    out = _detect(_cube())
    p, ch = out["probability"].values[1], out["change"].values[1]
    assert np.all((p >= 0) & (p <= 1))
    obs = ch != 2  # the stored probability gives the change map's decision, ties included
    np.testing.assert_array_equal(ch[obs] == 1, p[obs] >= 0.5)
    assert (ch[32:58, 32:58] == 1).mean() > 0.95
    outside = np.ones(p.shape, bool)
    outside[28:62, 28:62] = False
    assert (ch[outside] == 1).mean() < 0.02
    assert '"dh_used": true' in out.attrs["change_calibration"]
    # without dh the same unchanged surface is not flagged there
    ref = _detect(_cube(with_dh=False))
    assert (ref["change"].values[1][32:58, 32:58] == 1).mean() < 0.05
    assert '"dh_used": false' in ref.attrs["change_calibration"]


def test_patch_probability_is_the_mean_of_its_cells():
    out = _detect(_cube())
    lab, p = out["patch"].values, out["probability"].values[1]
    ids = out["patch_id"].values
    pp = out["patch_probability"].values[1]
    for k in (0, len(ids) // 2, len(ids) - 1):
        m = (lab == ids[k]) & np.isfinite(p)
        assert pp[k] == np.float32(p[m].mean()) or abs(pp[k] - p[m].mean()) < 1e-5
    assert np.nanmax(pp) > 0.9 and np.nanmin(pp) < 0.1
