"""The change stage's per-tile numba shortcuts (:mod:`offnadir.change.kernels`) give the numbers
of the numpy expressions they replace, bit for bit (the stage's outputs must not move)."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.change import irmad
from offnadir.change import kernels as K


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 19), (40, 61), (613, 701)])
def test_visible_band_sums_equal_numpy(dtype, shape):
    # numpy's pairwise summation (blocks of 128, halves at multiples of 8) reproduced exactly:
    # sizes below 8, in one block, and split many times
    rng = np.random.default_rng(shape[0])
    val = (rng.normal(300.0, 80.0, (4,) + shape) * rng.uniform(0.5, 2.0, (4, 1, 1))).astype(dtype)
    val[rng.random(val.shape) < 0.02] = np.nan
    val[2][rng.random(shape) < 0.01] = np.inf
    vis = rng.integers(0, 3, shape).astype(np.uint8)
    ok = (vis == 1) & np.all(np.isfinite(val), axis=0)
    v = val[:, ok].astype(np.float64)
    n, s, ss = K.visible_band_sums(val, vis)
    assert n == ok.sum()
    np.testing.assert_array_equal(s, v.sum(axis=1))
    np.testing.assert_array_equal(ss, (v * v).sum(axis=1))


def test_visible_band_sums_of_nothing_are_zero():
    n, s, ss = K.visible_band_sums(np.full((2, 4, 4), np.nan, np.float32), np.ones((4, 4), np.uint8))
    assert n == 0 and not s.any() and not ss.any()


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (2, 2), (3, 5), (40, 61), (301, 257)])
def test_second_differences_equal_numpy(shape):
    # the noise histogram's input (cells.noise_tile): numpy's masked expression, element for element
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    x = rng.normal(300.0, 80.0, shape)
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.01] = np.inf
    x[rng.random(shape) < 0.01] = -np.inf
    vis = rng.integers(0, 3, shape).astype(np.uint8)
    m = (vis == 1) & np.isfinite(x)
    mm = m[:-1, :-1] & m[1:, :-1] & m[:-1, 1:] & m[1:, 1:]
    want = np.abs(x[:-1, :-1] - x[:-1, 1:] - x[1:, :-1] + x[1:, 1:])[mm]
    got = K.second_differences(x, vis)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    if want.size:  # a moved corner shows
        x2 = x.copy()
        i, j = np.argwhere(mm)[0]
        x2[i + 1, j + 1] += 1.0
        assert not np.array_equal(K.second_differences(x2, vis), want)


def test_canonical_window_equals_the_models_canonical_variates():
    rng = np.random.default_rng(5)
    p, shape = 4, (57, 66)
    x = rng.normal(200.0, 40.0, (p,) + shape)
    y = 0.8 * x + rng.normal(10.0, 5.0, x.shape)
    A, B = rng.normal(size=(p, p)), rng.normal(size=(p, p))
    m = irmad.MadModel(mean_x=x.mean(axis=(1, 2)), mean_y=y.mean(axis=(1, 2)), A=A, B=B, rho=np.ones(p), weight=1.0,
                       n=1.0)
    mask = rng.random(shape) < 0.7
    u = np.full(shape, 7.0)
    v = np.full(shape, 7.0)
    K.canonical_window(x, y, mask, A[:, 0].copy(), float(m.mean_x @ A[:, 0]), B[:, 0].copy(),
                       float(m.mean_y @ B[:, 0]), u, v)
    ru, rv = np.full(shape, np.nan), np.full(shape, np.nan)
    ru[mask], rv[mask] = m.canonical(x[:, mask].T, y[:, mask].T)
    np.testing.assert_array_equal(u, ru)
    np.testing.assert_array_equal(v, rv)


def test_canonical_sums_equal_the_stacked_group_sums():
    rng = np.random.default_rng(8)
    shape, core = (50, 61), (6, 44, 5, 58)
    u = rng.normal(0.0, 30.0, shape)
    v = 0.5 * u + rng.normal(0.0, 20.0, shape)
    u[rng.random(shape) < 0.1] = np.nan
    v[rng.random(shape) < 0.1] = np.nan
    n = 9
    rowmap = rng.integers(-1, n, shape)
    cy, cx = slice(core[0], core[1]), slice(core[2], core[3])
    used = (rng.random((core[1] - core[0], core[3] - core[2])) < 0.8) & (rowmap[cy, cx] >= 0)
    # the numpy expression the kernel replaces (patch_tile before)
    r = rowmap[cy, cx][used]
    uc, vc = u[cy, cx][used], v[cy, cx][used]
    ok = np.isfinite(uc) & np.isfinite(vc)
    uc, vc = np.where(ok, uc, 0.0), np.where(ok, vc, 0.0)
    want = K.group_sums(r, n, np.stack([ok.astype(np.float64), uc, vc, uc * uc, vc * vc, uc * vc], 1))
    got = K.canonical_sums(u, v, used, rowmap, core[0], core[2], n)
    np.testing.assert_array_equal(got, want)
    assert (got[:, 0] > 0).all()


@pytest.mark.parametrize("p", [1, 4])
def test_canonical_sums_on_a_second_mask_equal_a_second_window_pass(p):
    # patch_tile's crown texture: the variates of another mask summed, reusing the first mask's
    # variates; before, a second canonical_window over ok & mask and canonical_sums of it
    rng = np.random.default_rng(13 + p)
    shape, core = (48, 57), (5, 41, 7, 52)
    x = rng.normal(200.0, 40.0, (p,) + shape)
    y = 0.8 * x + rng.normal(10.0, 5.0, x.shape)
    x[rng.random(x.shape) < 0.03] = np.nan
    y[rng.random(y.shape) < 0.03] = np.inf
    a, b = rng.normal(size=p), rng.normal(size=p)
    ca, cb = float(rng.normal()), float(rng.normal())
    ok = rng.random(shape) < 0.8
    first, second = ok & (rng.random(shape) < 0.6), ok & (rng.random(shape) < 0.5)
    u, v = np.empty(shape), np.empty(shape)
    K.canonical_window(x, y, first, a, ca, b, cb, u, v)
    n = 7
    rowmap = rng.integers(-1, n, shape)
    cy, cx = slice(core[0], core[1]), slice(core[2], core[3])
    used = ok[cy, cx] & (rowmap[cy, cx] >= 0)
    u2, v2 = np.empty(shape), np.empty(shape)
    K.canonical_window(x, y, second, a, ca, b, cb, u2, v2)
    want = K.canonical_sums(u2, v2, used, rowmap, core[0], core[2], n)
    got = K.canonical_sums_on(x, y, u, v, used, second, a, ca, b, cb, rowmap, core[0], core[2], n)
    np.testing.assert_array_equal(got, want)
    assert (want[:, 0] > 0).all() and (want[:, 0] < used.sum()).all()
    # a perturbed first-mask variate would show: the reuse is what is tested
    both = np.argwhere(first[cy, cx] & second[cy, cx] & used & np.isfinite(u[cy, cx]) & np.isfinite(v[cy, cx]))
    i, j = both[0] + (core[0], core[2])
    u[i, j] += 1.0
    bad = K.canonical_sums_on(x, y, u, v, used, second, a, ca, b, cb, rowmap, core[0], core[2], n)
    assert not np.array_equal(bad, want)


def test_mad_group_sums_equal_the_numpy_expressions():
    from offnadir.change.tile import LEVELS

    rng = np.random.default_rng(11)
    n_cells, p, n = 5000, 4, 37
    M = rng.standard_t(3, (n_cells, p)) * rng.uniform(0.2, 8.0, (n_cells, 1))
    M[rng.random(n_cells) < 0.03] = np.nan  # cells of a stratum without a model
    M[5, 1], M[9, 2] = np.inf, -np.inf
    inv = rng.integers(0, n, n_cells)
    sums, levels = K.mad_group_sums(inv, n, M, LEVELS)
    np.testing.assert_array_equal(sums, K.group_sums(inv, n, np.nan_to_num(M)))
    with np.errstate(invalid="ignore", over="ignore"):
        want = K.level_counts(inv, n, np.sqrt(np.mean(M * M, axis=1)), LEVELS)
    np.testing.assert_array_equal(levels, want)
    assert levels[:, 0].sum() > 0 and levels[:, -1].sum() < levels[:, 0].sum()


@pytest.mark.parametrize("shape,r", [((1, 1), 2), ((9, 140), 3), ((131, 77), 10)])
def test_ground_estimate_is_exactly_the_filters_opening(shape, r):
    # minima and negation are exact: the fused row passes give the filters' numbers bit for bit
    from scipy import ndimage

    from offnadir.change import segment_kernels as SK

    rng = np.random.default_rng(r)
    h = rng.normal(100.0, 6.0, shape)
    h[rng.random(shape) < 0.05] = np.nan
    if shape[0] > 20:
        h[10:40, 5:35] = np.nan  # a hole wider than the window: cells whose whole window is nodata
    g = SK.ground_estimate(h, r)
    a = np.where(np.isfinite(h), h, np.inf)
    ero = ndimage.minimum_filter(a, size=2 * r + 1, mode="constant", cval=np.inf)
    ref = ndimage.maximum_filter(np.where(np.isfinite(ero), ero, -np.inf), size=2 * r + 1, mode="constant",
                                 cval=-np.inf)
    ref[~np.isfinite(h)] = np.nan
    np.testing.assert_array_equal(g, ref)
    out = np.empty(shape)
    SK.running_min_2d(a, r, out)
    np.testing.assert_array_equal(out, ero)
