"""window_ncc's sums, to the bit: the six row sums advanced together (and the count of a block without
NaN taken from the windows' extents) equal the former fill + one plane at a time (issue 7, p2 ninth
round). The reference below is that former code, kept here."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.cube import window_sums_kernels as wsk


def _plane_by_plane(a, b, r, min_count, oy, ox):
    """The former window_ncc: fill six planes, then row sums one plane at a time (``_box_rows``),
    then the column sums of every plane, then the correlation."""
    ny, nx = a.shape
    work = np.zeros((7, ny, nx))
    ok = np.isfinite(a) & np.isfinite(b)
    da = np.where(ok, a, 0).astype(np.float64)
    db = np.where(ok, b, 0).astype(np.float64)
    work[:6] = [ok.astype(np.float64), da, db, da * da, db * db, da * db]
    first = np.empty(nx, np.bool_)
    lo = np.empty(nx, np.int64)
    hi = np.empty(nx, np.int64)
    mode = np.empty(nx, np.int8)
    wsk._window_rule(nx, r, ox, first, lo, hi, mode)
    for y in range(ny):
        for q in range(6):
            v = work[q, y]
            pre = np.empty(nx)
            suf = np.empty(nx)
            acc = 0.0
            for p in range(nx):
                acc = v[p] if first[p] else acc + v[p]
                pre[p] = acc
            acc = 0.0
            for p in range(nx - 1, -1, -1):
                acc = v[p] if (p == nx - 1 or first[p + 1]) else v[p] + acc
                suf[p] = acc
            v[:] = np.where(mode == 0, pre[hi], np.where(mode == 1, suf[lo], suf[lo] + pre[hi]))
    for q in range(6):
        wsk._box_cols(work[q], r, work[6], oy)
    c, sa, sb = work[0], work[1], work[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        vaa = work[3] - sa * sa / c
        vbb = work[4] - sb * sb / c
        vab = work[5] - sa * sb / c
        den = vaa * vbb
        good = (c >= min_count) & (vaa > 1e-9 * work[3]) & (vbb > 1e-9 * work[4]) & (den > 0)
        out = np.where(good, vab / np.sqrt(den), np.nan).astype(np.float32)
    return out, work[:6]


@pytest.mark.parametrize("nan_share", [0.0, 0.03, 0.4])
@pytest.mark.parametrize("shape,origin", [((37, 29), (0, 0)), ((40, 31), (5, 12)), ((6, 45), (3, 11)), ((1, 20), (2, 4))])
def test_window_ncc_equals_the_plane_by_plane_sums(nan_share, shape, origin):
    rng = np.random.default_rng(7)
    a = rng.normal(900.0, 150.0, shape).astype(np.float32)
    b = (0.7 * a + rng.normal(0.0, 40.0, shape)).astype(np.float32)
    if nan_share:
        a[rng.random(shape) < nan_share] = np.nan
        b[rng.random(shape) < nan_share / 2] = np.nan
    for r in (1, 2, 6):
        ref, ref_sums = _plane_by_plane(a, b, r, 3.0, *origin)
        out = np.empty(shape, np.float32)
        work = np.full((7,) + shape, -1.0)
        wsk.window_ncc(a, b, r, 3.0, out, work, *origin)
        assert np.array_equal(out, ref, equal_nan=True)
        assert np.array_equal(work[:6], ref_sums)  # every window sum, the count included
        assert np.isfinite(out).any() or shape[0] == 1  # (one row, r = 1: windows of 3 cells, few full)
