"""Append keeps the store's own tiles (its Zarr chunks), whatever tiles the plan's rule picks now
(stores written before the even tiles were cut regularly), and a resume of a store cut otherwise
is refused with a clear message."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

CHUNK = 64
OLD_TILES = (40, 56)  # not what tile_sizes gives for 96 x 96 cells and chunk 64 (48 x 64: rows evened)
NEW_TILES = (48, 64)


def _cfg(dsm, images, out):
    from offnadir.config import validate

    return validate({"dsm": {"path": str(dsm)}, "images": [str(p) for p in images], "output": {"path": str(out)},
                     "tiling": {"chunk": CHUNK}}, base=".", source="test")


def _open(p):
    return xr.open_zarr(str(p), consolidated=False, mask_and_scale=False)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Three dates; a one-shot detect of them (today's tiles) and a detect of the first two whose
    tiles are OLD_TILES (the rule patched, as an older version would have cut them)."""
    from distributed import Client

    from offnadir.cube import plan as plan_mod
    from offnadir.pipeline import detect_config
    from offnadir.simulate.series import DEFAULT_SERIES, simulate_series

    tmp = tmp_path_factory.mktemp("append_tiles")
    s = simulate_series(tmp / "data", seed=5, size=96, views=DEFAULT_SERIES[:3])
    assert plan_mod.tile_sizes((96, 96), CHUNK) == NEW_TILES
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        one = detect_config(_cfg(s.dsm, s.images, tmp / "one.zarr"), quiet=True, client=client)
        mp = pytest.MonkeyPatch()
        mp.setattr(plan_mod, "tile_sizes", lambda shape, chunk: OLD_TILES)
        try:
            two = detect_config(_cfg(s.dsm, s.images[:2], tmp / "two.zarr"), quiet=True, client=client)
        finally:
            mp.undo()
    shutil.copytree(two, tmp / "resume.zarr")  # before the append below grows ``two``
    return tmp, s, one, two


def test_append_writes_the_new_image_in_the_stores_tiles(stores):
    from offnadir.append import append_images

    tmp, s, one, two = stores
    assert _open(two)["row"].encoding["chunks"] == (1,) + OLD_TILES
    summary = append_images(two, [{"path": str(s.images[2])}])
    assert summary["cube_tiles"] == 3 * 2  # ceil(96 / 40) x ceil(96 / 56) tiles
    got, want = _open(two), _open(one)
    assert got["row"].encoding["chunks"] == (1,) + OLD_TILES and want["row"].encoding["chunks"] == (1,) + NEW_TILES
    assert got.attrs["tile_shape"] == list(OLD_TILES)
    for name in ("row", "col", "visible", "value", "dsm"):  # the cube does not depend on the tiles
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    flagged = (got["change"].values[1] == 1) | (want["change"].values[1] == 1)
    assert flagged.any()
    agree = (got["change"].values[1] == want["change"].values[1])[flagged].mean()
    print(f"change flags agreeing between the two tilings: {agree:.4f} of {flagged.sum()}")
    assert agree > 0.99  # the tiles change only the order of the float sums reduced across them


def test_resume_of_a_store_cut_into_other_tiles_is_refused(stores):
    import zarr

    from offnadir import store as S
    from offnadir.errors import ConfigError
    from offnadir.pipeline import detect_config

    tmp, s, one, two = stores
    old = tmp / "resume.zarr"
    zarr.open_group(str(old), mode="r+", use_consolidated=False).attrs[S.STATUS_ATTR] = S.INCOMPLETE
    cfg = _cfg(s.dsm, s.images[:2], old)
    cfg["output"] = {**cfg["output"], "resume": True}
    with pytest.raises(ConfigError, match=r"the store's tiles are 40 x 56 cells, this version cuts the grid into "
                                          r"48 x 64 \(chunk 64\).*--overwrite"):
        detect_config(cfg, quiet=True)
    assert _open(old)["row"].encoding["chunks"] == (1,) + OLD_TILES  # left as it was
