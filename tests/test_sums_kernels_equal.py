"""The change stage's sums pass in numba gives the numbers of the numpy definitions it replaced,
exactly (same cells, added in the same order): the missing-shadow caster sums
(:func:`offnadir.change.missing_shadow.tile_sums` against :func:`~offnadir.change.missing_shadow.shadow_casters`
+ :func:`~offnadir.change.shadow_observed.training_classes` + :func:`~offnadir.change.missing_shadow.caster_log_lr_sums`
over the whole window), the masked caster march (against the blocked passes of
:func:`~offnadir.change.sun_kernels.caster_distances`) and the outline sums
(:func:`offnadir.change.outline.patch_sums` against :func:`~offnadir.change.outline.cell_steps` + bincount)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offnadir.change import missing_shadow as MS
from offnadir.change import outline as OL
from offnadir.change import shadow_observed as SO
from offnadir.change.sun_kernels import caster_distances, caster_distances_at, illumination

CELL = 0.5


def _city(rng, n=96):
    """Ground with gentle relief and random boxes 4-20 m high (a few NaN heights)."""
    yy, xx = np.mgrid[0:n, 0:n]
    h = 100.0 + 0.02 * xx + 0.5 * np.sin(yy / 9.0)
    lab = np.zeros((n, n), np.int64)
    for k in range(1, 16):
        i, j = rng.integers(0, n - 12, 2)
        a, b = rng.integers(4, 12, 2)
        h[i:i + a, j:j + b] = 100.0 + rng.uniform(4, 20)
        lab[i:i + a, j:j + b] = k
    h[rng.integers(0, n, 5), rng.integers(0, n, 5)] = np.nan
    return h, lab


@pytest.mark.parametrize("az_deg,el_deg", [(150.0, 40.0), (90.0, 25.0), (213.7, 55.0), (0.0, 30.0)])
def test_masked_march_equals_the_blocked_passes(az_deg, el_deg):
    h, _ = _city(np.random.default_rng(int(az_deg)))
    az, el = math.radians(az_deg), math.radians(el_deg)
    di, dj, rise = -math.cos(az), math.sin(az), math.tan(el) * CELL
    full = np.empty(h.shape)
    caster_distances(h, rise, di, dj, 0.3, 60.0, full)
    mask = np.random.default_rng(1).random(h.shape) < 0.5
    at = np.empty(h.shape)
    caster_distances_at(h, rise, di, dj, 0.3, 60.0, mask, at)
    assert (full[mask] > 0).sum() > 100  # shadows were marched
    assert np.array_equal(at[mask], full[mask]) and np.all(at[~mask] == -1.0)


def _reference_tile_sums(io, ctx, tile):
    """The HEAD a2bbb42 definition: every cell of the window marched, classes on the whole window."""
    from offnadir.change.tileio import Window

    sh = max(ctx.sun_halo(), SO.MARGIN + 1)
    w = Window.around(tile, sh, ctx.shape)
    h = np.ascontiguousarray(io.read("dsm", w.yx), np.float64)
    lit = io.read("illumination", (slice(None),) + w.yx)
    lab = np.where(io.read("elevated", w.yx) == 1, io.read("patch", w.yx), 0)
    a0, a1, b0, b1 = w.core
    core = np.zeros(h.shape, bool)
    core[a0:a1, b0:b1] = True
    vis = io.read("visible", (slice(None),) + w.yx)
    val = io.read("value", (slice(None), slice(None), slice(tile.i0, tile.i1), slice(tile.j0, tile.j1)))
    parts = []
    for k in range(ctx.n_images):
        x = np.full(h.shape, np.nan)
        x[a0:a1, b0:b1] = np.where(vis[k][a0:a1, b0:b1] == 1, val[k].astype(np.float64).mean(axis=0), np.nan)
        sure, _ = SO.training_classes(lit[k], vis[k] == 1)
        ci, cj = MS.shadow_casters(h, lit[k], ctx.cell, *ctx.sun[k], float(ctx.opts.sun_tolerance), float(sh))
        ids, n, s = MS.caster_log_lr_sums(lab, ci, cj, sure & core, x, ctx.shadow_classes[k])
        rn, rs = np.zeros((len(ids), ctx.n_images)), np.zeros((len(ids), ctx.n_images))
        rn[:, k], rs[:, k] = n, s
        parts.append({"ids": ids, "rows": {"msh_n": rn, "msh_llr": rs}})
    return MS.add_sums(*parts)


def test_tile_sums_equal_the_window_definition():
    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    rng = np.random.default_rng(5)
    h, lab = _city(rng)
    h = np.where(np.isfinite(h), h, 100.0)
    n = h.shape[0]
    suns = ((math.radians(150.0), math.radians(40.0)), (math.radians(120.0), math.radians(35.0)))
    codes = []
    for az, el in suns:
        c = np.empty(h.shape, np.uint8)
        illumination(h, CELL, az, el, 0.3, 1.0, 200.0, c)
        codes.append(c)
    vis = (rng.random((2, n, n)) > 0.03).astype(np.uint8)  # scattered occlusions
    lit_val = rng.normal(100.0, 10.0, (2, 3, n, n))
    val = np.where(np.stack(codes)[:, None] == 0, rng.normal(40.0, 8.0, (2, 3, n, n)), lit_val)
    val[1, :, 60:80, 10:40] = lit_val[1, :, 60:80, 10:40]  # a strip lit at the new date, shadow or not
    val[0, 1, 3, 3] = np.nan
    clfs = tuple(SO.calibrate(val[k].mean(axis=0), codes[k], vis[k] == 1) for k in range(2))
    arrays = {"dsm": h.astype(np.float32), "illumination": np.stack(codes), "patch": lab,
              "elevated": (lab > 0).astype(np.uint8), "visible": vis, "value": val.astype(np.float32)}
    ctx = Context(shape=(n, n), n_images=2, n_bands=3, cell=CELL, opts=ChangeOptions(), targets=(1,),
                  h_range=(100.0, 120.0), sun=suns, shadow_classes=clfs)
    io = MemoryIO(arrays)
    step = 40
    for a in range(0, n, step):
        for b in range(0, n, step):
            tile = Tile(a // step, b // step, a, min(a + step, n), b, min(b + step, n))
            new, ref = MS.tile_sums(io, ctx, tile), _reference_tile_sums(io, ctx, tile)
            assert np.array_equal(new["ids"], ref["ids"])
            for k in ("msh_n", "msh_llr"):
                assert np.array_equal(new["rows"][k], ref["rows"][k])
    whole = MS.tile_sums(io, ctx, Tile(0, 0, 0, n, 0, n))
    assert whole["rows"]["msh_n"][:, 1].sum() > 50  # casters were found


def _reference_patch_sums(lab, elevated, xb, xt, ok, step, core, rowmap, n, lit_base=None, lit_target=None):
    out = np.zeros((n, OL.N_COLUMNS))
    pair, edge, db, dt = OL.cell_steps(lab, elevated, xb, xt, ok, step)
    i0, i1, j0, j1 = core
    sl = (slice(i0, i1), slice(j0, j1))
    rm = rowmap[sl]
    lb, lt = OL.one_light(lit_base, step), OL.one_light(lit_target, step)
    cols = ((pair, None), (pair, db), (pair, dt), (edge, None), (edge, db), (edge, dt),
            (pair & lb, None), (pair & lb, db), (edge & lb, None), (edge & lb, db),
            (pair & lt, None), (pair & lt, dt), (edge & lt, None), (edge & lt, dt))
    for col, (m, w) in enumerate(cols):
        sel = m[sl] & (rm >= 0)
        out[:, col] = np.bincount(rm[sel], weights=None if w is None else w[sl][sel], minlength=n)[:n]
    return out


@pytest.mark.parametrize("step", [(0, -1), (1, 1), (-1, 0), (1, -1)])
def test_outline_sums_equal_the_numpy_definition(step):
    rng = np.random.default_rng(7)
    _, lab = _city(rng, 80)
    elev = rng.random(lab.shape) > 0.05
    xb, xt = rng.normal(0.5, 0.1, (2,) + lab.shape)
    xt[rng.random(lab.shape) < 0.02] = np.nan
    ok = rng.random(lab.shape) > 0.05
    core = (6, 70, 3, 77)
    ids, inv = np.unique(lab[6:70, 3:77][lab[6:70, 3:77] > 0], return_inverse=True)
    rowmap = np.full(lab.shape, -1, np.int64)
    rowmap[6:70, 3:77][lab[6:70, 3:77] > 0] = inv
    new = OL.patch_sums(lab, elev, xb, xt, ok, step, core, rowmap, len(ids))
    ref = _reference_patch_sums(lab, elev, xb, xt, ok, step, core, rowmap, len(ids))
    assert new[:, 3].sum() > 20 and new[:, 0].sum() > 500
    assert np.array_equal(new, ref)
    # with predicted illumination codes (0 shadow, 1..254 lit, 255 unknown): each image's pairs across its own
    # shadow edge out of its one-light columns
    codes = [rng.choice(np.array([0, 0, 37, 200, 255], np.uint8), lab.shape) for _ in range(2)]
    new = OL.patch_sums(lab, elev, xb, xt, ok, step, core, rowmap, len(ids), codes[0], codes[1])
    ref = _reference_patch_sums(lab, elev, xb, xt, ok, step, core, rowmap, len(ids), codes[0], codes[1])
    assert np.array_equal(new, ref)
    assert 20 < new[:, 6].sum() < new[:, 0].sum() and 20 < new[:, 10].sum() < new[:, 0].sum()
    assert not np.array_equal(new[:, 6], new[:, 10])  # the two images' own pairs


@pytest.mark.parametrize("radius", [0, 1, 2, 3])
def test_all_within_is_the_square_minimum_filter(radius):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    for shape in [(1, 1), (1, 6), (6, 1), (2, 2), (3, 7), (4, 9), (60, 45)]:
        for share in (0.0, 0.5, 0.9, 0.99, 1.0):
            g = rng.random(shape) < share
            want = ndi.minimum_filter(g.astype(np.uint8), size=2 * radius + 1, mode="nearest") == 1
            assert np.array_equal(SO.all_within(g, radius), want)
    g = np.ones((5, 5), bool)
    g[2, 2] = False
    assert SO.all_within(g, 1).sum() == 25 - 9  # one dark cell takes its 3 x 3 neighbourhood out


def test_roof_references_equal_the_whole_box_definition():
    """The lit references read over the receiving roofs' box (a table look-up of the IDs, the 3 x 3
    test as shifted ANDs, float64 of the read cells only) equal the numpy form: ``np.isin``, a
    ``minimum_filter`` and the mean of the box's float64 copy."""
    from types import SimpleNamespace

    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    n, bands = 70, 4
    lab = np.zeros((n, n), np.int64)
    for k in range(1, 12):
        i, j = rng.integers(0, n - 10, 2)
        lab[i:i + rng.integers(3, 10), j:j + rng.integers(3, 10)] = k
    lab[0:4, 60:70] = 40  # a roof at the window's edge, an ID above the others
    lit = rng.choice(np.array([0, 7, 128, 255], np.uint8), size=(2, n, n), p=[0.1, 0.1, 0.75, 0.05])
    vis = (rng.random((2, n, n)) < 0.97).astype(np.uint8)
    val = rng.normal(500, 80, (2, bands, n, n)).astype(np.float32)
    val[1, 2, 5:9, 5:9] = np.nan
    arrays = {"illumination": lit, "visible": vis, "value": val}
    io = SimpleNamespace(read=lambda name, key: arrays[name][key])
    w = SimpleNamespace(i0=0, j0=0)
    sure = ((np.array([1, 2, 30, 50]), np.array([61, 3, 30, 50])), None)  # (rows, columns) per image
    got = MS.roof_references(io, w, lab, sure)
    ids = np.unique(lab[sure[0][0], sure[0][1]])
    ids = ids[ids > 0]
    assert len(ids) >= 1
    m = np.isin(lab, ids)
    good = ((lit[0] > 0) & (lit[0] < 255) & (vis[0] == 1)).astype(np.uint8)
    ri, rj = np.nonzero((ndi.minimum_filter(good, size=3, mode="nearest") == 1) & m)
    want_x = val.astype(np.float64)[0][:, ri, rj].mean(axis=0)
    assert got[1] is None
    assert np.array_equal(got[0][1], lab[ri, rj])
    assert np.array_equal(got[0][0], want_x, equal_nan=True) and len(want_x) > 0
