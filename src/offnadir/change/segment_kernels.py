"""numba kernels of the segment pass: ground estimate (running minimum), connected components,
merging of small superpixel pieces; grid-anchored SLIC is :mod:`offnadir.change.slic_kernels`
(re-exported here). numpy and numba only.

Every kernel works on a *window* of the DSM grid whose first cell has global position
``(gi0, gj0)``; the results the stage keeps depend on global positions and on data within a
bounded distance only (stated per kernel), so they never depend on where a tile starts. Each
kernel has a slow, obvious twin in ``tests/test_change_kernels.py``.

Label IDs are **1 + the smallest global linear index** ``gi * NX + gj`` of the cells of a
component: unique across the whole grid, and the same whatever the tiling. Loops run over
contiguous rows (runs of cells that share their candidates) so that LLVM can keep them tight.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from offnadir.change.slic_kernels import slic_blocks, slic_features  # noqa: F401  (re-exported)

_NB = dict(cache=True, nogil=True, error_model="numpy")


# ----------------------------------------------------------------------------- running min/max
@njit(**_NB)
def _running_min_1d(p, n, r, g, h, out):
    """out[k] = min(x[k-r .. k+r]) (van Herk / Gil-Werman, O(n)) of the row ``x`` given padded:
    ``p[q] = x[q - r]``, +inf in the ``r`` cells each side (``m = n + 2r``). g: running min from
    each block start, h: running min to each block end (blocks of ``w = 2r + 1`` from 0). Block by
    block, so no index arithmetic or test per cell (the same minima in the same order)."""
    w = 2 * r + 1
    m = n + 2 * r
    for s in range(0, m, w):
        e = min(s + w, m)
        v = p[s]
        g[s] = v
        for q in range(s + 1, e):
            v = min(v, p[q])
            g[q] = v
        v = p[e - 1]
        h[e - 1] = v
        for q in range(e - 2, s - 1, -1):
            v = min(v, p[q])
            h[q] = v
    for k in range(n):
        # window in padded coordinates: [k, k + 2r]
        out[k] = min(h[k], g[k + 2 * r])


@njit(**_NB)
def _rows_min(src, mode, r, tmp, off):
    """``tmp[off + i]`` = the running minimum (:func:`_running_min_1d`) of row ``i`` of ``src``
    taken as is (mode 0), with NaN as +inf (mode 1), or negated with non-finite as +inf (mode 2)."""
    ny, nx = src.shape
    m = nx + 2 * r
    bg = np.empty(m)
    bh = np.empty(m)
    p = np.full(m, np.inf)
    row = p[r:r + nx]
    for i in range(ny):
        s = src[i]
        if mode == 0:
            for j in range(nx):
                row[j] = s[j]
        elif mode == 1:
            for j in range(nx):
                v = s[j]
                row[j] = v if np.isfinite(v) else np.inf
        else:
            for j in range(nx):
                v = s[j]
                row[j] = -v if np.isfinite(v) else np.inf
        _running_min_1d(p, nx, r, bg, bh, tmp[off + i])


@njit(**_NB)
def _cols_min(tp, r, out):
    """Column running minima into ``out`` (ny, nx) of ``tp`` (ny + 2r, nx): the rows padded by
    ``r`` rows of +inf each side. The van Herk recursion (the minima of :func:`_running_min_1d`
    in the same order) block by block on strips of B columns, so that every step reads and writes
    contiguous row pieces (a column at a time strides through the window) and pads are rows like
    any other (no test per row)."""
    m, nx = tp.shape
    ny = m - 2 * r
    w = 2 * r + 1
    B = 64
    G = np.empty((m, B))
    H = np.empty((m, B))
    for j0 in range(0, nx, B):
        nb = min(B, nx - j0)
        for s in range(0, m, w):
            e = min(s + w, m)
            src = tp[s, j0:j0 + nb]
            gq = G[s]
            for b in range(nb):
                gq[b] = src[b]
            for q in range(s + 1, e):
                src = tp[q, j0:j0 + nb]
                gp = G[q - 1]
                gq = G[q]
                for b in range(nb):
                    gq[b] = min(gp[b], src[b])
            src = tp[e - 1, j0:j0 + nb]
            hq = H[e - 1]
            for b in range(nb):
                hq[b] = src[b]
            for q in range(e - 2, s - 1, -1):
                src = tp[q, j0:j0 + nb]
                hp = H[q + 1]
                hq = H[q]
                for b in range(nb):
                    hq[b] = min(hp[b], src[b])
        for k in range(ny):
            o = out[k, j0:j0 + nb]
            hk = H[k]
            gk = G[k + 2 * r]
            for b in range(nb):
                o[b] = min(hk[b], gk[b])


@njit(**_NB)
def running_min_2d(a, r, out):
    """Square (2r+1)² moving minimum of ``a`` (float64), +inf beyond the array (separable)."""
    ny = a.shape[0]
    tp = np.full((ny + 2 * r, a.shape[1]), np.inf)
    _rows_min(a, 0, r, tp, r)
    _cols_min(tp, r, out)


def ground_estimate(h, r):
    """Grey opening of the height window ``h`` (float64, NaN = nodata) by a (2r+1)² square:
    ``max-filter(min-filter(h))``. A plane is reproduced exactly; anything narrower than the
    square (buildings, trees) is cut down to its surroundings. NaN cells are ignored by the
    minimum and give NaN. A cell's result depends on heights within ``2r`` cells."""
    h = np.ascontiguousarray(h, dtype=np.float64)
    g = np.empty_like(h)
    _opening(h, r, g)
    return g


@njit(**_NB)
def _opening(h, r, out):
    """:func:`ground_estimate` in one kernel: min filter with NaN as +inf, then max filter as the
    min filter of the negated erosion (cells whose whole window is nodata stay out), NaN back.
    The +inf and negation are applied as each row enters the row pass (no whole-array passes or
    copies for them; minima are exact, so the numbers are those of the separate passes)."""
    ny, nx = h.shape
    tp = np.full((ny + 2 * r, nx), np.inf)  # the row passes' output, padded for the column passes
    ero = np.empty((ny, nx))
    _rows_min(h, 1, r, tp, r)
    _cols_min(tp, r, ero)
    _rows_min(ero, 2, r, tp, r)
    _cols_min(tp, r, out)
    for i in range(ny):
        for j in range(nx):
            out[i, j] = -out[i, j] if np.isfinite(h[i, j]) else np.nan


# ----------------------------------------------------------------------------- labelling
@njit(inline="always", **_NB)
def _find(par, a):
    while par[a] != a:
        par[a] = par[par[a]]
        a = par[a]
    return a


@njit(**_NB)
def label_components(key, h, dz, use_h, gi0, gj0, NX, out):
    """4-connected components of cells with equal ``key`` (int64, 0 = no cell) and, when ``use_h``,
    height steps ``|h_a - h_b| <= dz`` between neighbours. ``out`` (int64) gets 1 + the smallest
    global linear index of each component's cells, 0 where key == 0."""
    ny, nx = key.shape
    par = np.arange(ny * nx)
    for i in range(ny):
        for j in range(nx):
            k = key[i, j]
            if k == 0:
                continue
            a = i * nx + j
            if j + 1 < nx and key[i, j + 1] == k and (not use_h or abs(h[i, j] - h[i, j + 1]) <= dz):
                ra = _find(par, a)
                rb = _find(par, a + 1)
                if ra != rb:
                    if ra < rb:
                        par[rb] = ra
                    else:
                        par[ra] = rb
            if i + 1 < ny and key[i + 1, j] == k and (not use_h or abs(h[i, j] - h[i + 1, j]) <= dz):
                ra = _find(par, a)
                rb = _find(par, a + nx)
                if ra != rb:
                    if ra < rb:
                        par[rb] = ra
                    else:
                        par[ra] = rb
    # roots are the smallest local linear index of each component; local order = global order.
    # Components come in runs along a row: the root's global ID (a division) once per run
    last_r = -1
    last_id = 0
    for i in range(ny):
        for j in range(nx):
            if key[i, j] == 0:
                out[i, j] = 0
            else:
                r = _find(par, i * nx + j)
                if r != last_r:
                    ri = r // nx
                    rj = r - ri * nx
                    last_id = (gi0 + ri) * NX + (gj0 + rj) + 1
                    last_r = r
                out[i, j] = last_id


@njit(**_NB)
def merge_small_pieces(blk, comp, min_size, gi0, gj0, NX):
    """Give the pieces ``comp`` (labels of :func:`label_components` on ``blk`` for the window at
    global ``(gi0, gj0)``, grid width ``NX``) of fewer than ``min_size`` cells the ``blk`` label
    they share the most 4-neighbour contacts with (ties: the smallest label), in place on ``blk``;
    all targets are chosen from the labels before any move. Returns whether anything moved.
    O(cells): a piece's ID gives its root cell, so no sort of the window is needed."""
    ny, nx = comp.shape
    n = ny * nx
    size = np.zeros(n, np.int64)  # cells per piece, at its root's local index
    last_c = 0
    r = 0
    for i in range(ny):
        for j in range(nx):
            c = comp[i, j]
            if c > 0:
                if c != last_c:  # pieces come in runs along a row: one division per run
                    r = ((c - 1) // NX - gi0) * nx + ((c - 1) % NX - gj0)
                    if r < 0 or r >= n or comp[r // nx, r - (r // nx) * nx] != c:
                        raise ValueError("merge_small_pieces: piece IDs are not label_components IDs of "
                                         "this window (check gi0, gj0, NX)")
                    last_c = c
                size[r] += 1
    # the small pieces: ordinal per root, their cells grouped by piece (counting sort)
    pid = np.full(n, -1, np.int64)
    n_pieces = 0
    n_cells = 0
    biggest = 0
    for r in range(n):
        if 0 < size[r] < min_size:
            pid[r] = n_pieces
            n_pieces += 1
            n_cells += size[r]
            biggest = max(biggest, size[r])
    if n_pieces == 0:
        return False
    start = np.zeros(n_pieces + 1, np.int64)
    for r in range(n):
        if pid[r] >= 0:
            start[pid[r] + 1] = size[r]
    for k in range(n_pieces):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    cells = np.empty(n_cells, np.int64)
    last_c = 0
    k = -1
    for i in range(ny):
        for j in range(nx):
            c = comp[i, j]
            if c > 0:
                if c != last_c:
                    k = pid[((c - 1) // NX - gi0) * nx + ((c - 1) % NX - gj0)]
                    last_c = c
                if k >= 0:
                    cells[fill[k]] = i * nx + j
                    fill[k] += 1
    target = np.zeros(n_pieces, np.int64)
    buf = np.empty(4 * biggest, np.int64)
    moved = False
    for k in range(n_pieces):
        q0 = cells[start[k]]
        c = comp[q0 // nx, q0 % nx]
        m = 0
        for q in range(start[k], start[k + 1]):
            i = cells[q] // nx
            j = cells[q] - i * nx
            if j + 1 < nx and comp[i, j + 1] > 0 and comp[i, j + 1] != c:
                buf[m] = blk[i, j + 1]
                m += 1
            if i + 1 < ny and comp[i + 1, j] > 0 and comp[i + 1, j] != c:
                buf[m] = blk[i + 1, j]
                m += 1
            if j > 0 and comp[i, j - 1] > 0 and comp[i, j - 1] != c:
                buf[m] = blk[i, j - 1]
                m += 1
            if i > 0 and comp[i - 1, j] > 0 and comp[i - 1, j] != c:
                buf[m] = blk[i - 1, j]
                m += 1
        if m == 0:
            continue
        if m > 64:
            buf[:m] = np.sort(buf[:m])
        else:  # insertion sort in place: most pieces have a few contacts (no allocation per piece)
            for q in range(1, m):
                v = buf[q]
                p = q - 1
                while p >= 0 and buf[p] > v:
                    buf[p + 1] = buf[p]
                    p -= 1
                buf[p + 1] = v
        lab = buf
        best, best_n, run = lab[0], 0, 0
        for q in range(m):
            run = run + 1 if q > 0 and lab[q] == lab[q - 1] else 1
            if run > best_n:  # strictly more: the smallest label keeps a tie (sorted ascending)
                best_n = run
                best = lab[q]
        target[k] = best
        moved = True
    for k in range(n_pieces):  # all targets were chosen from the labels before any move
        if target[k] == 0:
            continue
        for q in range(start[k], start[k + 1]):
            i = cells[q] // nx
            blk[i, cells[q] - i * nx] = target[k]
    return moved
