"""One tile of change detection, in numpy: what each dask task runs.

A task reads its tile (plus a halo where a kernel needs neighbours) from a :class:`TileIO`
(the Zarr store of the cube, or arrays in memory), computes, and either writes its own region or
returns small sums that a tree reduction adds up. No dask here.
"""

from __future__ import annotations

import numpy as np

from offnadir.change import irmad
from offnadir.change import kernels as K
from offnadir.change import segment, shadow
from offnadir.change import evidence as EV
from offnadir.change import outline as OL
from offnadir.change import rim_profile as RP
from offnadir.change import crown as CR
from offnadir.change import crown_shadow as CS
from offnadir.change import crown_texture as CT
from offnadir.change.fit import N_STRATA, ndvi, usable
from offnadir.change.tileio import (  # noqa: F401  (re-exported: the tasks' shared types)
    SUN_HALO_CAP,
    Context,
    MemoryIO,
    StoreIO,
    Window,
    parallax_offsets,
)


# ----------------------------------------------------------------------------- statistics
def stats(io, ctx_shape, n_images, n_bands, tile, ground_radius: int = 0):
    """Height range, the height above the local ground (99.9th percentile: the tallest objects,
    not a spike; the opening of :func:`kernels.ground_estimate` within the tile) and band sums over
    visible cells, per image."""
    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    h = io.read("dsm", yx).astype(np.float64)
    above = -np.inf
    if ground_radius > 0 and np.isfinite(h).any():
        a = h - K.ground_estimate(h, ground_radius)
        a = a[np.isfinite(a)]
        above = float(np.percentile(a, 99.9)) if a.size else -np.inf
    vis = io.read("visible", (slice(None),) + yx)
    val = io.read("value", (slice(None), slice(None)) + yx)  # widened per visible cell below, not whole
    fin = np.isfinite(h)
    out = {"h_min": float(np.min(h[fin])) if fin.any() else np.inf,
           "h_max": float(np.max(h[fin])) if fin.any() else -np.inf,
           "n": np.zeros(n_images), "s": np.zeros((n_images, n_bands)), "ss": np.zeros((n_images, n_bands)),
           "above": above}
    for t in range(n_images):
        # numpy's sums of val[t][:, ok] widened to float64 (ok: visible, every band finite), in one pass
        out["n"][t], out["s"][t], out["ss"][t] = K.visible_band_sums(val[t], vis[t])
    return out


def add_stats(*parts):
    out = dict(parts[0])
    for p in parts[1:]:
        out = {"h_min": min(out["h_min"], p["h_min"]), "h_max": max(out["h_max"], p["h_max"]),
               "above": max(out.get("above", -np.inf), p.get("above", -np.inf)),
               "n": out["n"] + p["n"], "s": out["s"] + p["s"], "ss": out["ss"] + p["ss"]}
    return out


# ----------------------------------------------------------------------------- segmentation
def segment_tile(io, ctx, tile):
    """Write ``patch`` (provisional elevated IDs), ``elevated`` and ``illumination``; return the
    tile's :func:`border_strips` (what :func:`tile_border_pairs` would read back from the store)."""
    opts = ctx.opts
    halo = max(segment.segment_halo(opts, ctx.cell), ctx.sun_halo())
    w = Window.around(tile, halo, ctx.shape)
    h = io.read("dsm", w.yx).astype(np.float64)
    vis0 = io.read("visible", (0,) + w.yx)
    base = io.read("value", (0, slice(None)) + w.yx)  # widened to float64 inside the SLIC features
    patch, elev = segment.segment_window(h, base, vis0, (w.i0, w.j0), w.core, ctx.shape, opts, ctx.cell,
                                         np.asarray(ctx.band_std, np.float64))
    core = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    io.write("patch", core, patch)
    io.write("elevated", core, elev)
    lit = np.full((ctx.n_images, tile.i1 - tile.i0, tile.j1 - tile.j0), K.UNKNOWN, np.uint8)
    if ctx.use_sun:
        sh = ctx.sun_halo()
        sw = Window.around(tile, sh, ctx.shape)
        hs = h[sw.i0 - w.i0:sw.i1 - w.i0, sw.j0 - w.j0:sw.j1 - w.j0]
        a0, a1, b0, b1 = sw.core
        buf = np.empty(hs.shape, np.uint8)
        hsc = np.ascontiguousarray(hs)  # one copy for every image
        for t in range(ctx.n_images):
            az, el = ctx.sun[t]
            K.illumination(hsc, ctx.cell, az, el, float(opts.sun_tolerance), 1.0, float(sh), buf)
            lit[t] = _widened(hs, buf, ctx, t, sh)[a0:a1, b0:b1]
    io.write("illumination", (slice(None),) + core, lit)
    a0, a1, b0, b1 = w.core
    return border_strips(patch, elev, h[a0:a1, b0:b1])


def border_strips(lab, elev, h) -> dict:
    """The first and last row and column of a tile's core ``patch``, ``elevated`` and height (float64):
    the cells :func:`segment.border_pairs` compares across the tile's borders."""
    lab, elev, h = np.asarray(lab), np.asarray(elev), np.asarray(h, np.float64)
    return {side: tuple(np.array(a[sl]) for a in (lab, elev, h))
            for side, sl in (("top", (0, slice(None))), ("bottom", (-1, slice(None))),
                             ("left", (slice(None), 0)), ("right", (slice(None), -1)))}


def strip_pairs(strips: dict, tiles, dz: float):
    """:func:`tile_border_pairs` of every tile of ``tiles`` from the tiles' :func:`border_strips`
    (``strips``: (ti, tj) -> strips): the same pairs, in the same order, without reading the store."""
    out = []
    for t in tiles:
        below, right = strips.get((t.ti + 1, t.tj)), strips.get((t.ti, t.tj + 1))
        if below is not None:
            out.append(segment.border_pairs(*_pair_args(strips[(t.ti, t.tj)]["bottom"], below["top"]), dz))
        if right is not None:
            out.append(segment.border_pairs(*_pair_args(strips[(t.ti, t.tj)]["right"], right["left"]), dz))
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)


def _pair_args(a, b):
    return a[0], b[0], a[1], b[1], a[2], b[2]


def _widened(hs, buf, ctx, t, sh):
    """Image ``t``'s predicted shadows widened by the sun's uncertainty (:mod:`.shadow`)."""
    return shadow.widened(hs, buf, ctx.cell, ctx.sun[t][0], ctx.sun[t][1], float(ctx.opts.sun_tolerance), float(sh),
                          ctx.shadow_error(t))


def tile_border_pairs(io, ctx, tile):
    """ID pairs of elevated patches joined across this tile's bottom and right borders."""
    ny, nx = ctx.shape
    dz = float(ctx.opts.roof_step)
    out = []
    if tile.i1 < ny:  # bottom border: rows i1-1 | i1
        sl = (slice(tile.i1 - 1, tile.i1 + 1), slice(tile.j0, tile.j1))
        lab, el, h = io.read("patch", sl), io.read("elevated", sl), io.read("dsm", sl).astype(np.float64)
        out.append(segment.border_pairs(lab[0], lab[1], el[0], el[1], h[0], h[1], dz))
    if tile.j1 < nx:  # right border: cols j1-1 | j1
        sl = (slice(tile.i0, tile.i1), slice(tile.j1 - 1, tile.j1 + 1))
        lab, el, h = io.read("patch", sl), io.read("elevated", sl), io.read("dsm", sl).astype(np.float64)
        out.append(segment.border_pairs(lab[:, 0], lab[:, 1], el[:, 0], el[:, 1], h[:, 0], h[:, 1], dz))
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)


def relabel_tile(io, ctx, tile, old, new):
    core = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    lab = io.read("patch", core)
    io.write("patch", core, segment.relabel(lab, old, new))
    return tile.ti, tile.tj


# ----------------------------------------------------------------------------- shared per-tile arrays
_usable = usable  # the patch method's usable cells and IR-MAD strata (offnadir.change.fit)


#: per-cell levels of the robust MAD magnitude m_c = sqrt(mean_i (M_i / s_i)^2) counted per patch
#: (0.5 .. 32, factor sqrt 2): the patch median of m_c is interpolated from these counts
LEVELS = 2.0 ** (np.arange(-2, 11) / 2.0)


def _robust_cells(models, scales, x, y, stratum):
    """MAD variates of cells in the robust scale of their stratum (:func:`irmad.mad_strata`: the
    numbers of :func:`~offnadir.change.fit.mad_cells` divided per stratum, in one pass)."""
    return irmad.mad_strata(list(models)[:N_STRATA], list(scales)[:N_STRATA], x, y, stratum)


# ----------------------------------------------------------------------------- patch sums
def patch_tile(io, ctx, tile, models, scales, keep=None):
    """Per-patch sums of the tile, grouped by patch ID (see :mod:`offnadir.change.criteria`).
    ``keep``: a dict that receives the core's ``visible``, ``value`` and ``elevated`` arrays read
    here (the ortho baseline's test of the same pass uses them instead of reading them again)."""
    out = {}
    halo = ctx.max_shift()
    w = Window.around(tile, halo, ctx.shape)
    ci0, ci1, cj0, cj1 = w.core
    cy, cx = slice(ci0, ci1), slice(cj0, cj1)
    vis = io.read("visible", (slice(None),) + w.yx)
    val = io.read("value", (slice(None), slice(None)) + w.yx).astype(np.float64)
    lab = io.read("patch", w.yx)
    elev = io.read("elevated", w.yx)
    lit = io.read("illumination", (slice(None),) + w.yx)
    if keep is not None:
        keep.update(visible=vis[:, cy, cx], value=val[:, :, cy, cx], elevated=elev[cy, cx])
    labc = lab[cy, cx]
    inp = labc > 0
    ids, inv = K.group_index(labc[inp])
    n = len(ids)
    rows = {"n_cells": np.bincount(inv, minlength=n).astype(np.float64),
            "n_elev": np.bincount(inv, elev[cy, cx][inp].astype(np.float64), minlength=n)}
    interior = _interior(lab)
    rowmap = np.full(lab.shape, -1, np.int64)
    rowmap[cy, cx][inp] = inv
    # the patch's DSM plane fit (offnadir.change.crown: is it a rigid surface for the parallax test)
    rows["plane"] = CR.plane_sums_rows(io.read("dsm", (slice(w.i0 + ci0, w.i0 + ci1), slice(w.j0 + cj0, w.j0 + cj1))),
                                       rowmap[cy, cx], n, w.i0 + ci0, w.j0 + cj0)
    # elevated patches get parallax profiles: rows of a second table
    is_el = rows["n_elev"] > 0.5 * rows["n_cells"]
    erow_of = np.full(n, -1, np.int64)
    erow_of[is_el] = np.arange(is_el.sum())
    erows = {}
    erow_map = None
    crowns_tex, elev_inner = CS.wanted(ctx), None
    for t in ctx.targets:
        ok, st, moved = _usable(vis, val, lit, t, ctx.use_sun, shaded_both=False)  # radiance: lit at both
        ms = models[t]
        okc = ok[cy, cx] & inp
        x = K.masked_cells(val[0][:, cy, cx], okc).T  # val[0][:, cy, cx][:, okc].T, the same array
        y = K.masked_cells(val[t][:, cy, cx], okc).T
        M = _robust_cells(ms, scales[t], x, y, st[cy, cx][okc])
        r = rowmap[cy, cx][okc]
        rows[f"used_{t}"] = np.bincount(r, minlength=n).astype(np.float64)
        # sums of M (NaN as 0) and the level counts of m_c = sqrt(mean_i M_i^2), in one pass
        rows[f"M_{t}"], rows[f"levels_{t}"] = K.mad_group_sums(r, n, np.ascontiguousarray(M, np.float64), LEVELS)
        rows[f"illum_{t}"] = np.bincount(rowmap[cy, cx][moved[cy, cx] & inp], minlength=n).astype(np.float64)
        if ctx.use_sun:  # relative change of direct irradiance on lit cells (sloped faces, new sun)
            lb = lit[0][cy, cx][okc].astype(np.float64)
            lt = lit[t][cy, cx][okc].astype(np.float64)
            both_lit = (lb > 0) & (lb < 255) & (lt > 0) & (lt < 255)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(both_lit, np.abs(lt / lb - 1.0), 0.0)
            rows[f"incid_{t}"] = K.group_sums(r, n, np.stack([both_lit.astype(np.float64), rel], 1))
        if ctx.red is not None and ctx.nir is not None:
            rows[f"ndvi_b_{t}"] = K.group_sums(r, n, ndvi(x[:, ctx.red], x[:, ctx.nir]))
            rows[f"ndvi_t_{t}"] = K.group_sums(r, n, ndvi(y[:, ctx.red], y[:, ctx.nir]))
        # structural: first canonical variates of the stratum-0 model, over the window
        # structure is compared on patch interiors: cells at a patch edge mix neighbours in the
        # resampled images (walls, rooftop structures), which is not the patch's own texture
        m0 = ms[0]
        # canonical_window writes every cell (NaN off its mask): no fill first
        u = np.full(lab.shape, np.nan) if m0 is None else np.empty(lab.shape)
        v = np.full(lab.shape, np.nan) if m0 is None else np.empty(lab.shape)
        if m0 is not None:  # m0.canonical's numbers, over the window in one pass (kernels.canonical_window)
            a0, b0 = np.ascontiguousarray(m0.A[:, 0], np.float64), np.ascontiguousarray(m0.B[:, 0], np.float64)
            K.canonical_window(val[0], val[t], ok & interior, a0, float(m0.mean_x @ m0.A[:, 0]), b0,
                               float(m0.mean_y @ m0.B[:, 0]), u, v)
        # per patch (n, Σu, Σv, Σu², Σv², Σuv) over the used core cells where both are finite
        rows[f"c0_{t}"] = K.canonical_sums(u, v, okc, rowmap, ci0, cj0, n)
        if crowns_tex and m0 is not None:  # a cut crown's texture: these variates on crowns' inner cells
            if elev_inner is None:
                elev_inner = CT.inner(elev)
            # the same variates on these cells: taken from u, v where computed, else computed here
            rows[CT.row(t)] = K.canonical_sums_on(val[0], val[t], u, v, okc, elev_inner, a0,
                                                  float(m0.mean_x @ m0.A[:, 0]), b0,
                                                  float(m0.mean_y @ m0.B[:, 0]), rowmap, ci0, cj0, n)
        # the roofs' near-sensor rim at both dates (offnadir.change.outline, criterion "outline")
        if t == ctx.targets[0]:
            base_intensity = EV.intensity(val[0])  # the base's, once for every target
        target_intensity = EV.intensity(val[t])
        rows[f"outline_{t}"] = OL.patch_sums(lab, elev == 1, base_intensity, target_intensity,
                                             (vis[0] == 1) & (vis[t] == 1), OL.sensor_step(*ctx.shifts[t]),
                                             (ci0, ci1, cj0, cj1), rowmap, n,
                                             *((lit[0], lit[t]) if ctx.use_sun else ()))
        di, dj, _ = ctx.shifts[t]
        if len(di) and is_el.any():
            prof = np.zeros((int(is_el.sum()), len(di), 6))
            if erow_map is None:  # the same for every target
                erow_map = np.where(rowmap >= 0, erow_of[np.maximum(rowmap, 0)], -1)
            K.parallax_sums(lab, erow_map, u, v, di, dj, ci0, ci1, cj0, cj1, prof)
            erows[f"prof_{t}"] = sparse_profile(ids[is_el], prof)
            # where the near-sensor rim went: the step profile inwards (offnadir.change.rim_profile)
            erows[f"rimprof_{t}"] = RP.sparse(ids[is_el], RP.depth_sums(
                lab, elev == 1, base_intensity, target_intensity, (vis[0] == 1) & (vis[t] == 1),
                OL.sensor_step(*ctx.shifts[t]), int(np.max(np.maximum(np.abs(di), np.abs(dj)))),
                (ci0, ci1, cj0, cj1), erow_map, int(is_el.sum()), *((lit[0], lit[t]) if ctx.use_sun else ())))
    out["ids"], out["rows"] = ids, rows
    out["eids"], out["erows"] = (ids[is_el] if erows else np.zeros(0, np.int64)), erows
    return out


def _interior(lab):
    """Cells whose four neighbours belong to the same patch (window edges count as other)."""
    out = lab > 0
    out[1:] &= lab[1:] == lab[:-1]
    out[:-1] &= lab[:-1] == lab[1:]
    out[:, 1:] &= lab[:, 1:] == lab[:, :-1]
    out[:, :-1] &= lab[:, :-1] == lab[:, 1:]
    out[0] = out[-1] = False
    out[:, 0] = out[:, -1] = False
    return out


def add_patch(*parts):
    """Tree-reduction step of :func:`patch_tile` results."""
    ids, rows = K.merge_grouped([p["ids"] for p in parts], [p["rows"] for p in parts])
    eparts = [p for p in parts if len(p["erows"])]
    eids = np.unique(np.concatenate([p["eids"] for p in eparts])) if eparts else np.zeros(0, np.int64)
    erows = {}
    for name in (eparts[0]["erows"] if eparts else ()):
        keys, vals = K.merge_grouped([p["erows"][name][0] for p in eparts], [{"v": p["erows"][name][1]} for p in eparts])
        erows[name] = (keys, vals["v"], eparts[0]["erows"][name][2])
    return {"ids": ids, "rows": rows, "eids": eids, "erows": erows}


def sparse_profile(eids, prof):
    """The parallax sums ``prof`` (len(eids), nk, 6) of the patches ``eids`` as (keys, sums, nk)
    of their (patch, offset) pairs with any cell pair (``key = id * nk + k``): a few percent of
    the dense table (a small roof has no pair at long offsets), what the tiles send to be summed."""
    nk = prof.shape[1]
    r, k = np.nonzero(prof[..., 0] > 0)  # row-major: keys ascending as eids are
    return np.asarray(eids, np.int64)[r] * nk + k, prof[r, k], nk


def dense_profile(eids, sparse):
    """:func:`sparse_profile` summed over tiles back to the (len(eids), nk, 6) table of ``eids``
    (pairs none of the tiles had are zero, as in the tiles' dense tables)."""
    keys, vals, nk = sparse
    out = np.zeros((len(eids), nk, 6))
    out[np.searchsorted(eids, keys // nk), keys % nk] = vals
    return out


def sigma_score(v, thr):
    """0-1 confidence of a non-negative statistic against its threshold: ``1 - 2^-(v/thr)^2``
    (0 at 0, 0.5 at the threshold, -> 1 above)."""
    v = np.asarray(v, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        s = 1.0 - np.exp2(-np.square(np.maximum(v, 0.0) / thr))
    return np.where(np.isfinite(s), s, 0.0).astype(np.float32)
