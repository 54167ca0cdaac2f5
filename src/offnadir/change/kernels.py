"""numba/numpy kernels of change detection: per-patch accumulations, and (re-exported from
:mod:`offnadir.change.group_kernels`, :mod:`offnadir.change.sun_kernels`,
:mod:`offnadir.change.segment_kernels` and :mod:`offnadir.change.parallax_kernels`) grouped sums by
patch ID, sun visibility, ground estimate, labelling, superpixels, parallax profiles. numpy and
numba only (no xarray, dask, zarr, scipy).

Every kernel works on a *window* of the DSM grid whose first cell has global position
``(gi0, gj0)``; results that the stage keeps (the window's core) are functions of global positions
and of data within a bounded distance only, so they never depend on where a tile starts (the
bounds are stated per kernel and the stage reads that much halo). Each kernel has a slow, obvious
twin in ``tests/test_change_kernels.py``.

Label IDs are **1 + the smallest global linear index** ``gi * NX + gj`` of the cells of a
component: unique across the whole grid, and the same whatever the tiling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# the segment pass's kernels (ground estimate, labelling, SLIC) live in their own module
from offnadir.change.group_kernels import (  # noqa: F401  (re-exported)
    group_index,
    group_sums,
    level_counts,
    merge_grouped,
    prob_group_sums,
    sorted_lookup,
)
from offnadir.change.parallax_kernels import parallax_sums  # noqa: F401  (re-exported)
from offnadir.change.segment_kernels import (  # noqa: F401  (re-exported)
    ground_estimate,
    label_components,
    merge_small_pieces,
    running_min_2d,
    slic_blocks,
    slic_features,
)
from offnadir.change.sun_kernels import (  # noqa: F401  (re-exported)
    ILLUM_SCALE,
    SHADED,
    UNKNOWN,
    caster_distances,
    illumination,
    ray_offsets,
)

_NB = dict(cache=True, nogil=True, error_model="numpy")


# ----------------------------------------------------------------------------- patch variates
@njit(**_NB)
def canonical_window(x, y, mask, a, ca, b, cb, u, v):
    """First canonical variates of the cells of a window: ``u = x a - ca``, ``v = y b - cb`` where
    ``mask`` (``x``, ``y``: (bands, H, W) float64), NaN elsewhere; the arithmetic of
    :meth:`offnadir.change.irmad.MadModel.canonical` (a float64 sum over the bands in order, then
    the constant), without the (cells, bands) copies of the masked cells."""
    p = x.shape[0]
    ny, nx = mask.shape
    for i in range(ny):
        for j in range(nx):
            if not mask[i, j]:
                u[i, j] = np.nan
                v[i, j] = np.nan
                continue
            su = 0.0
            sv = 0.0
            for q in range(p):
                su += x[q, i, j] * a[q]
                sv += y[q, i, j] * b[q]
            u[i, j] = su - ca
            v[i, j] = sv - cb


@njit(**_NB)
def mad_group_sums(inv, n_groups, M, levels):
    """Per group, the sums of the MAD variates ``M`` (rows: cells; NaN counted as 0 and +-inf as
    the largest finite float, as ``np.nan_to_num``) and the counts of :func:`level_counts` of the
    cells' magnitudes ``sqrt(mean_i M_i^2)``: the numbers of ``group_sums(inv, n,
    np.nan_to_num(M))`` and ``level_counts(inv, n, np.sqrt(np.mean(M * M, axis=1)), levels)`` in
    one pass (a row's mean: its squares added in order, divided by their number)."""
    p = M.shape[1]
    big = np.finfo(np.float64).max
    sums = np.zeros((n_groups, p))
    out = np.zeros((n_groups, levels.shape[0]))
    for r in range(inv.shape[0]):
        g = inv[r]
        s = 0.0
        for c in range(p):
            m = M[r, c]
            s += m * m
            if m != m:
                m = 0.0
            elif m == np.inf:
                m = big
            elif m == -np.inf:
                m = -big
            sums[g, c] += m
        x = math.sqrt(s / p)
        for q in range(levels.shape[0]):
            if not x > levels[q]:
                break
            out[g, q] += 1.0
    return sums, out


@njit(**_NB)
def canonical_sums(u, v, used, rowmap, ci0, cj0, n_groups):
    """Per-group sums (n, Σu, Σv, Σu², Σv², Σuv) of the canonical variates ``u``, ``v`` (window
    arrays) over the core cells ``used`` (core-shaped, the core starting at window cell (ci0,
    cj0)), a cell counting where both are finite (else it adds zeros): the numbers of
    ``group_sums(rowmap[core][used], n, np.stack([one, u, v, u*u, v*v, u*v], 1))`` over the same
    cells in the same (row-major) order, without the gathered copies and the six-column array."""
    out = np.zeros((n_groups, 6))
    for i in range(used.shape[0]):
        for j in range(used.shape[1]):
            if not used[i, j]:
                continue
            g = rowmap[ci0 + i, cj0 + j]
            a = u[ci0 + i, cj0 + j]
            b = v[ci0 + i, cj0 + j]
            if np.isfinite(a) and np.isfinite(b):
                one = 1.0
            else:
                one, a, b = 0.0, 0.0, 0.0
            out[g, 0] += one
            out[g, 1] += a
            out[g, 2] += b
            out[g, 3] += a * a
            out[g, 4] += b * b
            out[g, 5] += a * b
    return out


@njit(**_NB)
def canonical_sums_on(x, y, u, v, used, mask, a, ca, b, cb, rowmap, ci0, cj0, n_groups):
    """The numbers of ``canonical_window(x, y, ok & mask, ...)`` into fresh ``u2``, ``v2`` then
    ``canonical_sums(u2, v2, used, rowmap, ci0, cj0, n)``, where ``used`` implies ``ok`` and ``u``,
    ``v`` are the variates :func:`canonical_window` already wrote for the same model on another
    mask: a used core cell of ``mask`` takes ``u``, ``v`` where both are finite (the same arithmetic
    gave them) and computes its variates otherwise (a cell off the other mask, or NaN inputs, which
    give NaN again). One pass over the core's used cells, no window arrays, no second window pass
    (the crown texture's sums, :func:`offnadir.change.tile.patch_tile`)."""
    p = x.shape[0]
    out = np.zeros((n_groups, 6))
    for i in range(used.shape[0]):
        for j in range(used.shape[1]):
            wi = ci0 + i
            wj = cj0 + j
            if not used[i, j] or not mask[wi, wj]:
                continue
            g = rowmap[wi, wj]
            fu = u[wi, wj]
            fv = v[wi, wj]
            if not (np.isfinite(fu) and np.isfinite(fv)):
                su = 0.0
                sv = 0.0
                for q in range(p):
                    su += x[q, wi, wj] * a[q]
                    sv += y[q, wi, wj] * b[q]
                fu = su - ca
                fv = sv - cb
            if np.isfinite(fu) and np.isfinite(fv):
                one = 1.0
            else:
                one, fu, fv = 0.0, 0.0, 0.0
            out[g, 0] += one
            out[g, 1] += fu
            out[g, 2] += fv
            out[g, 3] += fu * fu
            out[g, 4] += fv * fv
            out[g, 5] += fu * fv
    return out


def band_mean(val):
    """(bands, y, x) float32/float64 -> (y, x) float64 band mean: the numbers of
    ``np.asarray(val, np.float64).mean(axis=0)`` (numpy adds the bands in order onto its identity
    0.0, then divides by their number; fewer than 8 bands, so no pairwise blocks) in one pass,
    without the widened copy and the sum's temporaries (tested equal, signed zeros and NaN too)."""
    v = np.ascontiguousarray(val)
    if v.ndim != 3 or v.shape[0] >= 8 or v.dtype not in (np.float32, np.float64):
        return np.asarray(val, np.float64).mean(axis=0)
    out = np.empty(v.shape[1:])
    _band_mean(v, out)
    return out


def bin_values(x, edges, values, add):
    """``values[clip(searchsorted(edges, x, side="right") - 1, 0, len(values) - 1)] + add``, NaN
    where ``x`` is not finite (float64, any shape), for strictly increasing ``edges`` (then the
    search is the count of edges ``<= x``, taken without branches); other edges: numpy's lines."""
    x = np.asarray(x, np.float64)
    e, v = np.asarray(edges, np.float64), np.asarray(values, np.float64)
    if e.ndim != 1 or v.ndim != 1 or not len(v) or not (len(e) < 2 or bool(np.all(e[1:] > e[:-1]))):
        k = np.clip(np.searchsorted(e, x, side="right") - 1, 0, len(v) - 1)
        return np.where(np.isfinite(x), v[k] + add, np.nan)
    return _bin_values(x.ravel(), e, v, np.float64(add)).reshape(x.shape)


@njit(**_NB)
def _bin_values(x, edges, values, add):
    out = np.empty(x.shape[0], np.float64)
    n, last = edges.shape[0], values.shape[0] - 1
    for q in range(x.shape[0]):
        v = x[q]
        c = 0
        for m in range(n):
            c += edges[m] <= v
        k = min(max(c - 1, 0), last)
        out[q] = values[k] + add if np.isfinite(v) else np.nan
    return out


@njit(**_NB)
def _band_mean(v, out):
    nb, ny, nx = v.shape
    d = np.float64(nb)
    for i in range(ny):
        o = out[i]
        for j in range(nx):
            o[j] = 0.0
        for b in range(nb):
            r = v[b, i]
            for j in range(nx):
                o[j] += np.float64(r[j])
        for j in range(nx):
            o[j] = o[j] / d


def masked_cells(a, mask):
    """``a[:, mask]`` of a (bands, H, W) array (any strides) and an (H, W) bool mask: the same
    array as numpy's boolean indexing makes, (bands, n) in memory order (n, bands), i.e. the
    transpose of a C-ordered (n, bands) copy with the cells in row-major order, in one pass over
    the mask (about half numpy's CPU)."""
    a = np.asarray(a)
    m = np.asarray(mask, np.bool_)
    out = np.empty((int(np.count_nonzero(m)), a.shape[0]), a.dtype)
    _masked_cells(a, m, out)
    return out.T


@njit(**_NB)
def _masked_cells(a, mask, out):
    nb, ny, nx = a.shape
    k = 0
    for i in range(ny):
        for j in range(nx):
            if mask[i, j]:
                for b in range(nb):
                    out[k, b] = a[b, i, j]
                k += 1


def second_differences(x, vis):
    """``|x[i, j] - x[i, j + 1] - x[i + 1, j] + x[i + 1, j + 1]|`` (the 2 x 2 second difference of
    a (y, x) float64 array) at the cells whose four corners are visible (``vis == 1``) and finite,
    in row-major order: the array numpy's
    ``np.abs(x[:-1, :-1] - x[:-1, 1:] - x[1:, :-1] + x[1:, 1:])[mm]`` makes (the same operations in the
    same order; tested equal), in one pass without its five window-sized temporaries and masks."""
    ny, nx = x.shape
    out = np.empty(max(ny - 1, 0) * max(nx - 1, 0))
    if out.size == 0:
        return out
    n = _second_differences(np.ascontiguousarray(x, np.float64), np.ascontiguousarray(vis), out)
    return out[:n]


@njit(**_NB)
def _second_differences(x, vis, out):
    ny, nx = x.shape
    ok = np.empty((2, nx), np.bool_)  # rows i and i + 1: visible and finite
    for j in range(nx):
        ok[0, j] = (vis[0, j] == 1) & np.isfinite(x[0, j])
    n = 0
    for i in range(ny - 1):
        a = ok[i & 1]
        b = ok[(i + 1) & 1]
        xr = x[i]
        xs = x[i + 1]
        vs = vis[i + 1]
        for j in range(nx):
            b[j] = (vs[j] == 1) & np.isfinite(xs[j])
        for j in range(nx - 1):
            if a[j] & b[j] & a[j + 1] & b[j + 1]:
                out[n] = abs(xr[j] - xr[j + 1] - xs[j] + xs[j + 1])
                n += 1
    return n


@njit(**_NB)
def sampled_cells(gi0, gj0, rate, out):
    """:func:`offnadir.change.fit.sampled`'s hash of the global cell (gi0 + i, gj0 + j), cell by cell
    (its uint64 operations, wrapping alike; ``(x >> 11)`` is below 2^53, so its float64 and the
    scaling by 2^-53 are exact): ``out[i, j]`` whether the cell is in the sample."""
    ny, nx = out.shape
    k1 = np.uint64(0x9E3779B97F4A7C15)
    c2 = np.uint64(0x632BE59BD9B4E019)
    k2 = np.uint64(0xBF58476D1CE4E5B9)
    k3 = np.uint64(0x94D049BB133111EB)
    s31, s29, s11 = np.uint64(31), np.uint64(29), np.uint64(11)
    scale = 1.0 / 2.0 ** 53
    for i in range(ny):
        a = np.uint64(gi0 + i) * k1
        for j in range(nx):
            x = a ^ ((np.uint64(gj0 + j) + c2) * k2)
            x ^= x >> s31
            x *= k3
            x ^= x >> s29
            out[i, j] = np.float64(x >> s11) * scale < rate


def visible_band_sums(val, vis):
    """(n, sums, sums of squares) of the bands of the cells visible (``vis == 1``) with every
    band finite: the numbers of ``v = val[:, ok].astype(np.float64); v.sum(axis=1), (v * v).sum(axis=1)``
    without numpy's fancy-indexed copy and the squares' temporary. That copy is (cells, bands) in
    memory, so numpy adds each band's values one after the other in cell order: so does this
    (tested equal)."""
    val = np.ascontiguousarray(val)
    if val.dtype not in (np.float32, np.float64):
        val = val.astype(np.float64)
    nb = val.shape[0]
    s, ss = np.zeros(nb), np.zeros(nb)
    n = _visible_band_sums(val, np.ascontiguousarray(vis), s, ss)
    return n, s, ss


@njit(**_NB)
def _visible_band_sums(val, vis, s, ss):
    nb, ny, nx = val.shape
    n = 0
    for i in range(ny):
        for j in range(nx):
            if vis[i, j] != 1:
                continue
            ok = True
            for b in range(nb):
                ok = ok and np.isfinite(val[b, i, j])
            if not ok:
                continue
            for b in range(nb):
                x = np.float64(val[b, i, j])
                s[b] += x
                ss[b] += x * x
            n += 1
    return n


def corr_sums(sums):
    """Pearson r from (..., 6) sums (n, Sx, Sy, Sxx, Syy, Sxy), clipped to [-1, 1]; NaN where
    fewer than 3 pairs or a variance is not above 1e-12. One numba pass over the rows, with the
    arithmetic of the numpy formula (``vx = Sxx/n - (Sx/n)^2``, ``r = (Sxy/n - Sx Sy/n^2) /
    sqrt(vx vy)``)."""
    a = np.ascontiguousarray(sums, np.float64)
    out = np.empty(a.shape[:-1])
    _corr_rows(a.reshape(-1, a.shape[-1]), out.reshape(-1))
    return out


@njit(**_NB)
def _corr_rows(a, out):
    for r in range(a.shape[0]):
        n, sx, sy, sxx, syy, sxy = a[r, 0], a[r, 1], a[r, 2], a[r, 3], a[r, 4], a[r, 5]
        mx = sx / n
        my = sy / n
        vx = sxx / n - mx * mx
        vy = syy / n - my * my
        if n >= 3 and vx > 1e-12 and vy > 1e-12:
            v = (sxy / n - sx * sy / (n * n)) / math.sqrt(vx * vy)
            out[r] = v if v != v else min(max(v, -1.0), 1.0)  # NaN stays NaN, as np.clip
        else:
            out[r] = np.nan


def smooth3(r):
    """Mean of each value of a 2-D array with its neighbours along the rows (NaN-aware; NaN where
    the value is not finite), in one pass: ``criteria._smooth3``'s numpy arithmetic, i.e. the
    ``nansum`` of (left, self, right) in that order (NaN terms 0) over the count of finite ones."""
    a = np.ascontiguousarray(r, np.float64)
    if a.ndim != 2:
        raise ValueError(f"smooth3 takes a 2-D array, got shape {a.shape}")
    out = np.empty_like(a)
    _smooth3_rows(a, out)
    return out


@njit(**_NB)
def _smooth3_rows(a, out):
    nk = a.shape[1]
    for i in range(a.shape[0]):
        for k in range(nk):
            c = a[i, k]
            if not np.isfinite(c):
                out[i, k] = np.nan
                continue
            cnt = 1
            lv = 0.0
            rv = 0.0
            if k > 0:
                v = a[i, k - 1]
                if v == v:  # nansum adds every non-NaN term; the count has the finite ones only
                    lv = v
                    cnt += np.isfinite(v)
            if k + 1 < nk:
                v = a[i, k + 1]
                if v == v:
                    rv = v
                    cnt += np.isfinite(v)
            out[i, k] = ((lv + c) + rv) / cnt
