"""The census codes of an image, packed (what :mod:`offnadir.change.census` sweeps): the eight
ternary codes of a cell against its neighbours at distance ``r`` in one ``uint32`` word, bits of
the directions whose code is -1 (byte 0), +1 (byte 1) and that are valid (byte 2).
:func:`census_words` builds the words from the samples in one numba pass (a direction at a time
along each row); :func:`pack` packs codes already computed (the numpy formula of
:func:`offnadir.change.evidence.census`, for checks and tools). numpy and numba only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


def pack(codes, valid):
    """(8, y, x) int8 codes and bool validity -> one (y, x) uint32 word per cell: bits of the
    directions whose code is -1 (byte 0), +1 (byte 1), and that are valid (byte 2)."""
    codes = np.ascontiguousarray(codes, np.int8)
    valid = np.ascontiguousarray(valid, np.bool_)
    out = np.empty(codes.shape[1:], np.uint32)
    _pack(codes.reshape(codes.shape[0], -1), valid.reshape(valid.shape[0], -1), out.reshape(-1))
    return out


@njit(**_NB)
def _pack(codes, valid, out):
    out[:] = 0
    for d in range(codes.shape[0]):
        cd, vd = codes[d], valid[d]
        neg, pos, val = np.uint32(1 << d), np.uint32(1 << (d + 8)), np.uint32(1 << (d + 16))
        for c in range(out.shape[0]):
            x = cd[c]
            out[c] |= (neg if x < 0 else np.uint32(0)) | (pos if x > 0 else np.uint32(0)) | (val if vd[c] else
                                                                                            np.uint32(0))


def same_label_word(labels, r: int, neigh):
    """(y, x) uint32 word in :func:`pack`'s layout: the -1, +1 and valid bits of direction ``d``
    (``neigh[d]`` times ``r``) set where the cell and its neighbour that way carry the same
    ``labels`` value, or the neighbour lies outside the array (those codes are invalid anyway).
    The word of :func:`offnadir.change.sun_pairs.pair_word`, in one pass (integer operations: the
    same words, tested against the numpy form)."""
    lab = np.ascontiguousarray(labels)
    out = np.zeros(lab.shape, np.uint32)
    nb = np.asarray(neigh, np.int64) * int(r)
    _same_label_word(lab, np.ascontiguousarray(nb[:, 0]), np.ascontiguousarray(nb[:, 1]), out)
    return out


@njit(**_NB)
def _same_label_word(lab, di, dj, out):
    ny, nx = lab.shape
    for i in range(ny):  # a row's eight directions while the row is in cache
        orow = out[i]
        lrow = lab[i]
        for d in range(di.shape[0]):
            a, b = di[d], dj[d]
            bits = np.uint32((1 << d) | (1 << (d + 8)) | (1 << (d + 16)))
            if not 0 <= i + a < ny:  # every neighbour that way is outside: kept
                for j in range(nx):
                    orow[j] |= bits
                continue
            nrow = lab[i + a]
            j0, j1 = min(max(0, -b), nx), max(min(nx, nx - b), 0)  # neighbours inside for j0 <= j < j1
            for j in range(0, j0):
                orow[j] |= bits
            for j in range(j0, j1):
                orow[j] |= bits if lrow[j] == nrow[j + b] else np.uint32(0)
            for j in range(max(j1, j0), nx):
                orow[j] |= bits


def census_words(x, mask, t, r: int, neigh):
    """The packed words (:func:`pack`) of the ternary census codes of ``x`` in one pass, without
    the (8, y, x) code and validity arrays: for direction ``d`` = ``neigh[d] * r``, the neighbour
    difference ``x[c + d] - x[c]`` (``x`` taken as 0 outside ``mask``) gives -1 / +1 where its
    magnitude exceeds ``t`` (else 0), valid where both cells are in ``mask``; directions leaving
    the array give code 0, invalid. Arithmetic in ``x``'s float type (``t`` rounded to it), as
    :func:`offnadir.change.evidence.census` computes it."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, np.uint32)
    mask = np.ascontiguousarray(mask, np.bool_)
    neigh = np.asarray(neigh, np.int64).reshape(-1, 2)
    t = x.dtype.type(t)
    _census_words_fast(x, mask, t, int(r), neigh, out)
    return out


@njit(**_NB)
def _census_words(x, mask, t, r, neigh, out):
    """The words of :func:`census_words` one cell at a time: the obvious twin that
    :func:`_census_words_fast` (what a run uses) is tested against."""
    ny, nx = x.shape
    zero = x.dtype.type(0)
    nt = -t
    for i in range(ny):
        for j in range(nx):
            out[i, j] = _word(x, mask, t, nt, r, neigh, i, j, zero)


@njit(**_NB, inline="always")
def _word(x, mask, t, nt, r, neigh, i, j, zero):
    """The word of cell (i, j): bits d, d + 8, d + 16 for neighbour d darker by more than ``t``,
    brighter by more than ``t``, both cells valid (|v| > t and v < 0  <=>  v < -t, exactly)."""
    ny, nx = x.shape
    mc = mask[i, j]
    xc = x[i, j] if mc else zero
    w = np.uint32(0)
    for d in range(neigh.shape[0]):
        a = i + neigh[d, 0] * r
        b = j + neigh[d, 1] * r
        if a < 0 or a >= ny or b < 0 or b >= nx:
            continue
        ma = mask[a, b]
        v = (x[a, b] if ma else zero) - xc
        w |= (np.uint32(v < nt) << np.uint32(d)) | (np.uint32(v > t) << np.uint32(d + 8)) \
            | (np.uint32(ma and mc) << np.uint32(d + 16))
    return w


@njit(**_NB)
def _census_words_fast(x, mask, t, r, neigh, out):
    """:func:`_census_words`, the same comparisons: cells near the edges (within ``R = max |neigh|
    r``) one at a time as there, the others a direction at a time along each row, without bounds
    checks, so that the loop over the row vectorises (about 3x less CPU, tested equal)."""
    ny, nx = x.shape
    R = 0
    for d in range(neigh.shape[0]):
        R = max(R, abs(neigh[d, 0]) * r, abs(neigh[d, 1]) * r)
    zero = x.dtype.type(0)
    nt = -t
    if ny <= 2 * R or nx <= 2 * R:
        for i in range(ny):
            for j in range(nx):
                out[i, j] = _word(x, mask, t, nt, r, neigh, i, j, zero)
        return
    for i in range(ny):
        if i < R or i >= ny - R:
            for j in range(nx):
                out[i, j] = _word(x, mask, t, nt, r, neigh, i, j, zero)
        else:
            for j in range(R):
                out[i, j] = _word(x, mask, t, nt, r, neigh, i, j, zero)
                out[i, nx - 1 - j] = _word(x, mask, t, nt, r, neigh, i, nx - 1 - j, zero)
    xm = np.empty(x.shape, x.dtype)  # x taken as 0 outside mask
    for i in range(ny):
        for j in range(nx):
            xm[i, j] = x[i, j] if mask[i, j] else zero
    w = np.empty(nx - 2 * R, np.uint32)
    for i in range(R, ny - R):
        xc = xm[i, R:nx - R]
        mc = mask[i, R:nx - R]
        w[:] = 0
        for d in range(neigh.shape[0]):
            a = i + neigh[d, 0] * r
            b0 = R + neigh[d, 1] * r
            xa = xm[a, b0:b0 + nx - 2 * R]
            ma = mask[a, b0:b0 + nx - 2 * R]
            sd, sp, sv = np.uint32(d), np.uint32(d + 8), np.uint32(d + 16)
            for q in range(nx - 2 * R):
                v = xa[q] - xc[q]
                w[q] |= (np.uint32(v < nt) << sd) | (np.uint32(v > t) << sp) | (np.uint32(ma[q] & mc[q]) << sv)
        out[i, R:nx - R] = w


def words(neg, pos, val):
    """Three (y, x) uint8 bit planes (directions whose code is -1, +1, valid) -> the words of
    :func:`pack`."""
    return (np.asarray(neg, np.uint32) | (np.asarray(pos, np.uint32) << np.uint32(8))
            | (np.asarray(val, np.uint32) << np.uint32(16)))
