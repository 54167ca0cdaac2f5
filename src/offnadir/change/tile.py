"""One tile of change detection, in numpy: what each dask task runs.

A task reads its tile (plus a halo where a kernel needs neighbours) from a :class:`TileIO`
(the Zarr store of the cube, or arrays in memory), computes, and either writes its own region or
returns small sums that a tree reduction adds up. No dask here.
"""

from __future__ import annotations

import numpy as np

from offnadir.change import irmad, segment
from offnadir.change import kernels as K
from offnadir.change.tileio import (  # noqa: F401  (re-exported: the tasks' shared types)
    SUN_HALO_CAP,
    Context,
    MemoryIO,
    StoreIO,
    Window,
    parallax_offsets,
)


# ----------------------------------------------------------------------------- pass 0: statistics
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
    val = io.read("value", (slice(None), slice(None)) + yx).astype(np.float64)
    fin = np.isfinite(h)
    out = {"h_min": float(np.min(h[fin])) if fin.any() else np.inf,
           "h_max": float(np.max(h[fin])) if fin.any() else -np.inf,
           "n": np.zeros(n_images), "s": np.zeros((n_images, n_bands)), "ss": np.zeros((n_images, n_bands)),
           "above": above}
    for t in range(n_images):
        ok = (vis[t] == 1) & np.all(np.isfinite(val[t]), axis=0)
        v = val[t][:, ok]
        out["n"][t] = ok.sum()
        out["s"][t] = v.sum(axis=1)
        out["ss"][t] = (v * v).sum(axis=1)
    return out


def add_stats(*parts):
    out = dict(parts[0])
    for p in parts[1:]:
        out = {"h_min": min(out["h_min"], p["h_min"]), "h_max": max(out["h_max"], p["h_max"]),
               "above": max(out.get("above", -np.inf), p.get("above", -np.inf)),
               "n": out["n"] + p["n"], "s": out["s"] + p["s"], "ss": out["ss"] + p["ss"]}
    return out


# ----------------------------------------------------------------------------- pass A: segmentation
def segment_tile(io, ctx, tile):
    """Write ``patch`` (provisional elevated IDs), ``elevated`` and ``illumination``."""
    opts = ctx.opts
    halo = max(segment.segment_halo(opts, ctx.cell), ctx.sun_halo())
    w = Window.around(tile, halo, ctx.shape)
    h = io.read("dsm", w.yx).astype(np.float64)
    vis0 = io.read("visible", (0,) + w.yx)
    base = io.read("value", (0, slice(None)) + w.yx).astype(np.float64)
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
        for t in range(ctx.n_images):
            az, el = ctx.sun[t]
            K.illumination(np.ascontiguousarray(hs), ctx.cell, az, el, float(opts.sun_tolerance), 1.0, float(sh),
                           buf)
            lit[t] = buf[a0:a1, b0:b1]
    io.write("illumination", (slice(None),) + core, lit)
    return tile.ti, tile.tj


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
def _usable(vis, val, lit, t, use_sun):
    """(usable mask, stratum, illumination-changed mask) of target t for the patch method.

    Cells are compared when visible in both images with finite values and, when the sun is
    known, the same direct-sun state at both dates: lit at both (stratum 0, also when unknown)
    or without direct sun at both (stratum 1); each stratum gets its own IR-MAD model. Cells lit
    at one date only (a cast shadow that moved, a face turned away from a lower sun) are not
    compared: their radiometric change is illumination, not change. (Changes of incidence on lit
    sloped faces are left to the criteria: setting those cells aside too lost more changed roofs
    than it saved false alarms on the simulator scenes.)"""
    ok = (vis[0] == 1) & (vis[t] == 1) & np.all(np.isfinite(val[0]), axis=0) & np.all(np.isfinite(val[t]), axis=0)
    stratum = np.zeros(ok.shape, np.int64)
    moved = np.zeros(ok.shape, bool)
    if use_sun:
        known = (lit[0] != K.UNKNOWN) & (lit[t] != K.UNKNOWN)
        b, g = lit[0] == K.SHADED, lit[t] == K.SHADED
        moved = ok & known & (b != g)
        stratum[known & b & g] = 1
        ok &= ~moved
    return ok, stratum, moved


def _ortho_usable(vis, val, t):
    from offnadir.change.ortho import usable

    return usable(vis, val, t)


N_STRATA = 2


def _mad_cells(models, x, y, stratum):
    """Standardised MAD variates of cells with per-cell stratum models (fallback: stratum 0)."""
    M = np.full(x.shape, np.nan)
    for k in range(N_STRATA):
        m = models[k] if models[k] is not None else models[0]
        sel = stratum == k
        if m is None or not sel.any():
            continue
        M[sel] = m.mad(x[sel], y[sel])
    return M


# ----------------------------------------------------------------------------- pass C: IR-MAD sums
def irmad_tile(io, ctx, tile, models, ortho_models, want_patch, want_ortho):
    """IR-MAD sums of the tile for every target: patch method (strata) and ortho baseline."""
    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    vis = io.read("visible", (slice(None),) + yx)
    val = io.read("value", (slice(None), slice(None)) + yx).astype(np.float64)
    lit = io.read("illumination", (slice(None),) + yx) if (want_patch and ctx.use_sun) else None
    p = ctx.p
    out = {}
    for t in ctx.targets:
        if want_patch:
            ok, st, _ = _usable(vis, val, lit, t, ctx.use_sun)
            x, y, s = val[0][:, ok].T, val[t][:, ok].T, st[ok]
            ms = models[t] if models else None
            w = np.ones(len(x)) if ms is None else _weights_strata(ms, x, y, s)
            out[("patch", t)] = irmad.accumulate(irmad.empty_sums(N_STRATA, p), x, y, w, s,
                                                 ctx.band_mean[0], ctx.band_mean[t])
        if want_ortho:
            ok = _ortho_usable(vis, val, t)
            x, y = val[0][:, ok].T, val[t][:, ok].T
            m = ortho_models[t] if ortho_models else None
            w = irmad.weights(m, x, y)
            out[("ortho", t)] = irmad.accumulate(irmad.empty_sums(1, p), x, y, w, np.zeros(len(x), np.int64),
                                                 ctx.band_mean[0], ctx.band_mean[t])
    return out


def _weights_strata(ms, x, y, s):
    w = np.ones(len(x))
    for k in range(N_STRATA):
        sel = s == k
        if sel.any():
            m = ms[k] if ms[k] is not None else ms[0]
            w[sel] = irmad.weights(m, x[sel], y[sel])
    return w


def add_irmad(*parts):
    out = dict(parts[0])
    for p in parts[1:]:
        for key, v in p.items():
            out[key] = irmad.add_sums(out[key], v) if key in out else v
    return out


# ----------------------------------------------------------------------------- pass C': robust scales
def scale_tile(io, ctx, tile, models, ortho_models, want_patch, want_ortho):
    """Histograms of |M_i| (IR-MAD-standardised) per target and stratum, and for the baseline."""
    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    vis = io.read("visible", (slice(None),) + yx)
    val = io.read("value", (slice(None), slice(None)) + yx).astype(np.float64)
    lit = io.read("illumination", (slice(None),) + yx) if (want_patch and ctx.use_sun) else None
    out = {}
    for t in ctx.targets:
        if want_patch:
            ok, st, _ = _usable(vis, val, lit, t, ctx.use_sun)
            M = _mad_cells(models[t], val[0][:, ok].T, val[t][:, ok].T, st[ok])
            if ctx.red is not None and ctx.nir is not None:
                for name, img in (("ndvi_base", 0), ("ndvi_target", t)):
                    nd = _ndvi(val[img][ctx.red][ok], val[img][ctx.nir][ok])
                    out[(name, t)] = np.histogram(nd, bins=NDVI_BINS, range=(-1.0, 1.0))[0].astype(np.float64)
            for k in range(N_STRATA):
                sel = st[ok] == k
                if sel.any():
                    out[("patch", t, k)] = irmad.histogram(np.abs(M[sel]))
        if want_ortho:
            ok = _ortho_usable(vis, val, t)
            M = ortho_models[t].mad(val[0][:, ok].T, val[t][:, ok].T)
            out[("ortho", t)] = irmad.histogram(np.abs(M))
    return out


NDVI_BINS = 200


def add_hist(*parts):
    out = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out[k] + v if k in out else v
    return out


#: per-cell levels of the robust MAD magnitude m_c = sqrt(mean_i (M_i / s_i)^2) counted per patch
#: (0.5 .. 32, factor sqrt 2): the patch median of m_c is interpolated from these counts
LEVELS = 2.0 ** (np.arange(-2, 11) / 2.0)


def _robust_cells(models, scales, x, y, stratum):
    """MAD variates of cells in the robust scale of their stratum."""
    M = _mad_cells(models, x, y, stratum)
    for k in range(N_STRATA):
        sc = scales[k] if scales[k] is not None else scales[0]
        sel = stratum == k
        if sc is not None and sel.any():
            M[sel] = M[sel] / sc
    return M


# ----------------------------------------------------------------------------- pass D: patch sums
def patch_tile(io, ctx, tile, models, scales):
    """Per-patch sums of the tile, grouped by patch ID (see :mod:`offnadir.change.criteria`)."""
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
    labc = lab[cy, cx]
    inp = labc > 0
    ids, inv = np.unique(labc[inp], return_inverse=True)
    n = len(ids)
    rows = {"n_cells": np.bincount(inv, minlength=n).astype(np.float64),
            "n_elev": np.bincount(inv, elev[cy, cx][inp].astype(np.float64), minlength=n)}
    interior = _interior(lab)
    rowmap = np.full(lab.shape, -1, np.int64)
    rowmap[cy, cx][inp] = inv
    # elevated patches get parallax profiles: rows of a second table
    is_el = rows["n_elev"] > 0.5 * rows["n_cells"]
    erow_of = np.full(n, -1, np.int64)
    erow_of[is_el] = np.arange(is_el.sum())
    erows = {}
    for t in ctx.targets:
        ok, st, moved = _usable(vis, val, lit, t, ctx.use_sun)
        ms = models[t]
        okc = ok[cy, cx] & inp
        x = val[0][:, cy, cx][:, okc].T
        y = val[t][:, cy, cx][:, okc].T
        M = _robust_cells(ms, scales[t], x, y, st[cy, cx][okc])
        mc = np.sqrt(np.mean(M * M, axis=1))
        r = rowmap[cy, cx][okc]
        rows[f"used_{t}"] = np.bincount(r, minlength=n).astype(np.float64)
        rows[f"M_{t}"] = K.group_sums(r, n, np.nan_to_num(M))
        rows[f"levels_{t}"] = K.group_sums(r, n, (mc[:, None] > LEVELS[None, :]).astype(np.float64))
        rows[f"illum_{t}"] = np.bincount(rowmap[cy, cx][moved[cy, cx] & inp], minlength=n).astype(np.float64)
        if ctx.use_sun:  # relative change of direct irradiance on lit cells (sloped faces, new sun)
            lb = lit[0][cy, cx][okc].astype(np.float64)
            lt = lit[t][cy, cx][okc].astype(np.float64)
            both_lit = (lb > 0) & (lb < 255) & (lt > 0) & (lt < 255)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(both_lit, np.abs(lt / lb - 1.0), 0.0)
            rows[f"incid_{t}"] = K.group_sums(r, n, np.stack([both_lit.astype(np.float64), rel], 1))
        if ctx.red is not None and ctx.nir is not None:
            rows[f"ndvi_b_{t}"] = K.group_sums(r, n, _ndvi(x[:, ctx.red], x[:, ctx.nir]))
            rows[f"ndvi_t_{t}"] = K.group_sums(r, n, _ndvi(y[:, ctx.red], y[:, ctx.nir]))
        # structural: first canonical variates of the stratum-0 model, over the window
        m0 = ms[0]
        u = np.full(lab.shape, np.nan)
        v = np.full(lab.shape, np.nan)
        if m0 is not None:
            u[ok], v[ok] = m0.canonical(val[0][:, ok].T, val[t][:, ok].T)
        # structure is compared on patch interiors: cells at a patch edge mix neighbours in the
        # resampled images (walls, rooftop structures), which is not the patch's own texture
        u[~interior] = np.nan
        v[~interior] = np.nan
        uc, vc = u[cy, cx][okc], v[cy, cx][okc]
        okc_i = np.isfinite(uc) & np.isfinite(vc)
        uc, vc = np.where(okc_i, uc, 0.0), np.where(okc_i, vc, 0.0)
        one = okc_i.astype(np.float64)
        rows[f"c0_{t}"] = K.group_sums(r, n, np.stack([one, uc, vc, uc * uc, vc * vc, uc * vc], 1))
        di, dj, _ = ctx.shifts[t]
        if len(di) and is_el.any():
            prof = np.zeros((int(is_el.sum()), len(di), 6))
            erow_map = np.where(rowmap >= 0, erow_of[np.maximum(rowmap, 0)], -1)
            K.parallax_sums(lab, erow_map, u, v, di, dj, ci0, ci1, cj0, cj1, prof)
            erows[f"prof_{t}"] = prof
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


def _ndvi(red, nir):
    with np.errstate(all="ignore"):
        d = nir + red
        return np.where(d > 0, (nir - red) / np.where(d > 0, d, 1.0), 0.0)


def add_patch(*parts):
    """Tree-reduction step of :func:`patch_tile` results."""
    ids, rows = K.merge_grouped([p["ids"] for p in parts], [p["rows"] for p in parts])
    eparts = [p for p in parts if len(p["erows"])]
    eids, erows = K.merge_grouped([p["eids"] for p in eparts], [p["erows"] for p in eparts])
    return {"ids": ids, "rows": rows, "eids": eids, "erows": erows}


# ----------------------------------------------------------------------------- pass E: maps
def write_tile(io, ctx, tile, decisions, ortho, want_patch, want_ortho):
    """Write change/score maps (and the ortho baseline's) for the tile.

    ``decisions``: {t: (sorted patch ids, change uint8, score float32)}; ``ortho``: {t: (model,
    scale, threshold)} of the baseline (:mod:`offnadir.change.ortho`)."""
    from offnadir.change.ortho import cell_scores

    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    vis = io.read("visible", (slice(None),) + yx)
    val = io.read("value", (slice(None), slice(None)) + yx).astype(np.float64)
    shp = (ctx.n_images,) + vis.shape[1:]
    fin = np.all(np.isfinite(val), axis=1)
    if want_patch:
        lab = io.read("patch", yx)
        ch = np.full(shp, 2, np.uint8)
        sc = np.full(shp, np.nan, np.float32)
        ch[0][vis[0] == 1] = 0
        sc[0][vis[0] == 1] = 0.0
        for t in ctx.targets:
            ids, dch, dsc = decisions[t]
            obs = (vis[0] == 1) & (vis[t] == 1) & fin[0] & fin[t] & (lab > 0)
            idx = np.searchsorted(ids, lab[obs])
            idx = np.minimum(idx, max(len(ids) - 1, 0))
            hit = (ids[idx] == lab[obs]) if len(ids) else np.zeros(idx.shape, bool)
            c = np.zeros(idx.shape, np.uint8)
            s = np.zeros(idx.shape, np.float32)
            c[hit] = dch[idx[hit]]
            s[hit] = dsc[idx[hit]]
            ch[t][obs] = c
            sc[t][obs] = s
        io.write("change", (slice(None),) + yx, ch)
        io.write("score", (slice(None),) + yx, sc)
    if want_ortho:
        name = "change_ortho" if want_patch else "change"
        sname = "score_ortho" if want_patch else "score"
        ch = np.full(shp, 2, np.uint8)
        sc = np.full(shp, np.nan, np.float32)
        ch[0][(vis[0] != 2) & fin[0]] = 0
        sc[0][(vis[0] != 2) & fin[0]] = 0.0
        for t in ctx.targets:
            model, scale, z_thr = ortho[t]
            ok = _ortho_usable(vis, val, t)
            s = cell_scores(model, scale, z_thr, val[0][:, ok].T, val[t][:, ok].T)
            ch[t][ok] = (s >= 0.5).astype(np.uint8)
            sc[t][ok] = s
        io.write(name, (slice(None),) + yx, ch)
        io.write(sname, (slice(None),) + yx, sc)
    return tile.ti, tile.tj


def sigma_score(v, thr):
    """0-1 confidence of a non-negative statistic against its threshold: ``1 - 2^-(v/thr)^2``
    (0 at 0, 0.5 at the threshold, -> 1 above)."""
    v = np.asarray(v, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        s = 1.0 - np.exp2(-np.square(np.maximum(v, 0.0) / thr))
    return np.where(np.isfinite(s), s, 0.0).astype(np.float32)
