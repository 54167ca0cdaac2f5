"""The census sweep's window sums (:mod:`offnadir.change.census`: column sums as differences of
the rows' prefix sums, modulo 2^64, in 16-bit lanes) against integer box sums of the unpacked
counts, and the ratio from them with the kernel's floating-point expression: equal bit for bit,
for the coarse window, the fine window of the same sweep and the sign-reversal ratio, on cores
touching the array's edges and offsets that move the target partly or wholly outside."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.change import census as K
from offnadir.change import census_codes as CW
from offnadir.change import evidence as EV
from offnadir.change.reversal import CONTINUITY, MIN_EXPECTED


def _bits(x):
    return np.unpackbits(np.asarray(x, np.uint8)[..., None], axis=-1).sum(axis=-1).astype(np.int64)


def _box(a, w):
    """Sums over the w x w window centred on each cell (cells outside the array count zero)."""
    r = w // 2
    p = np.pad(a, r + 1)
    c = p.cumsum(0).cumsum(1)
    H, W = a.shape
    i, j = np.arange(H)[:, None] + r + 1, np.arange(W)[None, :] + r + 1
    return c[i + r, j + r] - c[i - r - 1, j + r] - c[i + r, j - r - 1] + c[i - r - 1, j - r - 1]


def _twin(A, B, offsets, w, core, fine):
    """min over offsets of R (window w), S and R (window fine), from the unpacked counts."""
    H, W = A.shape
    i0, i1, j0, j1 = core
    R, S, F = (np.full((i1 - i0, j1 - j0), np.nan) for _ in range(3))
    a = A.astype(np.int64)
    for di, dj in offsets:
        b = np.zeros_like(a)  # the target shifted: B[i + di, j + dj], 0 (no valid bit) outside
        si, sj = slice(max(0, -di), min(H, H - di)), slice(max(0, -dj), min(W, W - dj))
        ti, tj = slice(max(0, di), min(H, H + di)), slice(max(0, dj), min(W, W + dj))
        if si.stop > si.start and sj.stop > sj.start:
            b[si, sj] = B[ti, tj]
        both = (a >> 16) & (b >> 16) & 0xFF
        an, ap, bn, bp = a & both, (a >> 8) & both, b & both, (b >> 8) & both
        planes = [both, (an ^ bn) | (ap ^ bp), an, ap, bn, bp, (an & bp) | (ap & bn)]
        for ww, out in ((w, R), (fine, F)):
            n, d, am, apl, bm, bpl, _ = (_box(_bits(p), ww)[i0:i1, j0:j1] for p in planes)
            fn = n.astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                chance = 1.0 - (am.astype(np.float64) * bm + (n - am - apl).astype(np.float64) * (n - bm - bpl)
                                + apl.astype(np.float64) * bpl) / (fn * fn)
                rr = np.where(chance > 1e-6, (d / fn) / chance, 0.0)
            upd = (n >= 1) & (np.isnan(out) | (rr < out))
            out[upd] = rr[upd]
        n, _, am, apl, bm, bpl, rv = (_box(_bits(p), w)[i0:i1, j0:j1] for p in planes)
        den = am.astype(np.float64) * bpl.astype(np.float64) + apl.astype(np.float64) * bm.astype(np.float64)
        ok = (n >= 1) & (den > 0.0) & (den >= MIN_EXPECTED * n.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.maximum(rv.astype(np.float64), CONTINUITY) * n.astype(np.float64) / den
        upd = ok & (np.isnan(S) | (s < S))
        S[upd] = s[upd]
    return R, S, F


@pytest.mark.parametrize("seed", range(6))
def test_census_sweep_equals_integer_box_sums_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    H, W = int(rng.integers(20, 60)), int(rng.integers(20, 60))
    base = rng.normal(0, 10, (H, W)).cumsum(axis=1)
    target = np.where(rng.random((H, W)) < 0.3, rng.normal(0, 10, (H, W)), 1.3 * base)
    wa = CW.census_words(base, rng.random((H, W)) > 0.1, 2.0, EV.RADIUS, EV._NEIGH)
    wb = CW.census_words(target, rng.random((H, W)) > 0.1, 2.0, EV.RADIUS, EV._NEIGH)
    w = int(rng.choice([3, 7, 15, 41]))
    fine = int(rng.integers(1, w + 1))
    # a core at the array's top-left or bottom-right edge or inside; an offset that leaves the array
    core = [(0, H // 2, 0, W // 2), (H // 3, H, W // 4, W), (3, H - 4, 5, W - 2)][seed % 3]
    offsets = [(0, 0), (1, -2), (-3, 4), (0, W + 5), (H - 2, 1)]
    R, S, F = _twin(wa, wb, offsets, w, core, fine)
    assert np.isfinite(R).mean() > 0.5 and np.isfinite(S).mean() > 0.2
    for packed in (None, False):
        r = K.min_census_ratio(wa, wb, offsets, w, core, packed=packed, reversal=True, fine=fine)
        np.testing.assert_array_equal(r[0], R)
        np.testing.assert_array_equal(r[1], S)
        np.testing.assert_array_equal(r[-1], F)
