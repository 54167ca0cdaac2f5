"""Kernels of the co-registered cube against slow, obvious reference twins and scipy.

interp_lattice: exact on bilinear functions, bit-identical whatever block/lattice is used.
sample_bilinear: scipy.ndimage.map_coordinates(order=1) on random data with NaN/nodata planted,
exact on linear ramps, window edges and offsets.
visibility_los: flat DSM all visible, NaN -> 2, and a reference twin on random DSMs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from offnadir.cube import kernels as K

# --------------------------------------------------------------------------- reference twins


def interp_lattice_ref(lattice, step, i_lat0, j_lat0, i0, j0, shape):
    """Textbook bilinear interpolation, one cell at a time."""
    nli, nlj = lattice.shape
    out = np.empty(shape)
    for y in range(shape[0]):
        for x in range(shape[1]):
            u = (i0 + y - i_lat0) / step
            v = (j0 + x - j_lat0) / step
            a = min(int(math.floor(u)), nli - 2)
            b = min(int(math.floor(v)), nlj - 2)
            fa, fb = u - a, v - b
            out[y, x] = ((1 - fa) * (1 - fb) * lattice[a, b] + (1 - fa) * fb * lattice[a, b + 1]
                         + fa * (1 - fb) * lattice[a + 1, b] + fa * fb * lattice[a + 1, b + 1])
    return out


def sample_bilinear_ref(image, row, col, row0, col0, nodata):
    """Slow twin with the kernel's edge and nodata rules, position by position."""
    nb, h, w = image.shape
    out = np.full((nb,) + row.shape, np.nan, np.float32)
    for (y, x), r in np.ndenumerate(row):
        r = r - row0
        c = col[y, x] - col0
        if not (0 <= r <= h - 1 and 0 <= c <= w - 1):
            continue
        ir, ic = int(math.floor(r)), int(math.floor(c))
        fr, fc = r - ir, c - ic
        for b in range(nb):
            acc, bad = 0.0, False
            for di, wi in ((0, 1 - fr), (1, fr)):
                for dj, wj in ((0, 1 - fc), (1, fc)):
                    if wi * wj == 0:
                        continue
                    v = float(image[b, ir + di, ic + dj])
                    if v == nodata or math.isnan(v):
                        bad = True
                    acc += wi * wj * v
            out[b, y, x] = np.nan if bad else acc
    return out


def visibility_ref(dsm, los_di, los_dj, ci0, cj0, ch, cw, h_max, z_tol, max_dist, step=0.5):
    """Slow twin of visibility_los: march the ray in absolute block coordinates."""
    H, W = dsm.shape
    if not np.isfinite(h_max):
        h_max = np.nanmax(dsm)
    out = np.empty((ch, cw), np.uint8)
    for y in range(ch):
        for x in range(cw):
            i, j = ci0 + y, cj0 + x
            z, di, dj = dsm[i, j], los_di[y, x], los_dj[y, x]
            if not (np.isfinite(z) and np.isfinite(di) and np.isfinite(dj)):
                out[y, x] = 2
                continue
            n = math.hypot(di, dj)
            out[y, x] = 1
            if n == 0:
                continue
            k = 1
            while k * step <= max_dist and z + k * step / n + z_tol < h_max:
                s = k * step
                ray = z + s / n
                pi, pj = i + s * di / n, j + s * dj / n
                a, b = math.floor(pi), math.floor(pj)
                if a < 0 or b < 0 or a + 1 >= H or b + 1 >= W:
                    break
                fa, fb = pi - a, pj - b
                acc = wsum = 0.0
                for da, wa in ((0, 1 - fa), (1, fa)):
                    for db, wb in ((0, 1 - fb), (1, fb)):
                        v = dsm[a + da, b + db]
                        if wa * wb > 0 and not math.isnan(v):
                            acc += wa * wb * v
                            wsum += wa * wb
                if wsum > 0 and acc / wsum - ray > z_tol:
                    out[y, x] = 0
                    break
                k += 1
    return out


# --------------------------------------------------------------------------- interp_lattice


def _bilinear_fn(i, j):
    return 1234.5 + 0.75 * i - 1.25 * j + 0.003 * i * j


@pytest.mark.parametrize("step", [1, 4, 7, 16])
def test_interp_lattice_exact_on_bilinear_function(step):
    nl = (9, 11)
    il0, jl0 = -3 * step, 2 * step          # lattice origin anywhere on the fine grid
    a, b = np.meshgrid(np.arange(nl[0]), np.arange(nl[1]), indexing="ij")
    lattice = _bilinear_fn(il0 + a * step, jl0 + b * step)
    i0, j0 = il0 + 1, jl0 + 2
    shape = ((nl[0] - 1) * step - 1, (nl[1] - 1) * step - 2)
    out = np.empty(shape)
    K.interp_lattice(lattice, step, il0, jl0, i0, j0, out)
    ii, jj = np.meshgrid(i0 + np.arange(shape[0]), j0 + np.arange(shape[1]), indexing="ij")
    np.testing.assert_allclose(out, _bilinear_fn(ii, jj), rtol=1e-13, atol=0)
    np.testing.assert_allclose(out, interp_lattice_ref(lattice, step, il0, jl0, i0, j0, shape),
                               rtol=1e-13, atol=0)


def test_interp_lattice_nodes_are_copied_exactly():
    rng = np.random.default_rng(0)
    lattice = rng.normal(size=(6, 5)) * 1e3
    step = 8
    out = np.empty((5 * step + 1, 4 * step + 1))
    K.interp_lattice(lattice, step, 0, 0, 0, 0, out)
    assert np.array_equal(out[::step, ::step], lattice)


def test_interp_lattice_random_against_twin():
    rng = np.random.default_rng(1)
    lattice = rng.uniform(-50, 50, size=(7, 8))
    step, il0, jl0 = 5, 10, -20
    i0, j0, shape = 12, -18, (25, 31)
    out = np.empty(shape)
    K.interp_lattice(lattice, step, il0, jl0, i0, j0, out)
    np.testing.assert_allclose(out, interp_lattice_ref(lattice, step, il0, jl0, i0, j0, shape),
                               rtol=0, atol=1e-12)


def _sub_lattice(full, step, il0, jl0, i0, j0, shape):
    """The smallest slice of the full lattice covering a block (as a tiler would build it)."""
    a0 = (i0 - il0) // step
    b0 = (j0 - jl0) // step
    a1 = -(-(i0 + shape[0] - 1 - il0) // step)
    b1 = -(-(j0 + shape[1] - 1 - jl0) // step)
    return full[a0:a1 + 1, b0:b1 + 1], il0 + a0 * step, jl0 + b0 * step


@pytest.mark.parametrize("step", [1, 3, 8])
def test_interp_lattice_bit_identical_whole_vs_pieces(step):
    rng = np.random.default_rng(2)
    lattice = rng.normal(size=(12, 10)) * np.array([1.0, 1e-4, 1e5])[rng.integers(0, 3, (12, 10))]
    lattice += 48.8566  # latitude-like offset: rounding matters
    il0, jl0 = 4, -6
    shape = ((lattice.shape[0] - 1) * step + 1, (lattice.shape[1] - 1) * step + 1)
    whole = np.empty(shape)
    K.interp_lattice(lattice, step, il0, jl0, il0, jl0, whole)
    # irregular pieces, each with the full lattice and with a minimal sub-lattice
    cuts_i = sorted({0, shape[0], *rng.integers(1, shape[0], 4).tolist()})
    cuts_j = sorted({0, shape[1], *rng.integers(1, shape[1], 4).tolist()})
    for y0, y1 in zip(cuts_i[:-1], cuts_i[1:]):
        for x0, x1 in zip(cuts_j[:-1], cuts_j[1:]):
            gi, gj, sh = il0 + y0, jl0 + x0, (y1 - y0, x1 - x0)
            piece = np.empty(sh)
            K.interp_lattice(lattice, step, il0, jl0, gi, gj, piece)
            assert np.array_equal(piece, whole[y0:y1, x0:x1])
            sub, sil0, sjl0 = _sub_lattice(lattice, step, il0, jl0, gi, gj, sh)
            piece2 = np.empty(sh)
            K.interp_lattice(np.ascontiguousarray(sub), step, sil0, sjl0, gi, gj, piece2)
            assert np.array_equal(piece2, whole[y0:y1, x0:x1])


def test_interp_lattice_nan_node_stays_local():
    lattice = np.ones((5, 5))
    lattice[2, 2] = np.nan
    step = 4
    out = np.empty((17, 17))
    K.interp_lattice(lattice, step, 0, 0, 0, 0, out)
    nan = np.isnan(out)
    # NaN only strictly inside the four lattice cells around node (2, 2) plus the node itself
    expected = np.zeros_like(nan)
    expected[5:12, 5:12] = True
    assert np.array_equal(nan, expected)


def test_interp_lattice_float32_out_and_not_covering():
    lattice = np.arange(12.0).reshape(3, 4)
    out = np.empty((3, 4), np.float32)
    K.interp_lattice(lattice, 2, 0, 0, 1, 1, out)
    np.testing.assert_allclose(out, interp_lattice_ref(lattice, 2, 0, 0, 1, 1, (3, 4)), rtol=1e-6)
    with pytest.raises(ValueError, match="does not cover"):
        K.interp_lattice(lattice, 2, 0, 0, 1, 1, np.empty((5, 4)))
    with pytest.raises(ValueError, match="does not cover"):
        K.interp_lattice(lattice, 2, 0, 0, -1, 0, np.empty((2, 2)))


# --------------------------------------------------------------------------- sample_bilinear


def _random_positions(rng, n, h, w, row0, col0, margin=0.0):
    row = rng.uniform(row0 - margin, row0 + h - 1 + margin, n)
    col = rng.uniform(col0 - margin, col0 + w - 1 + margin, n)
    return row.reshape(-1, 50), col.reshape(-1, 50)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_sample_bilinear_matches_scipy_map_coordinates(dtype):
    rng = np.random.default_rng(3)
    nb, h, w = 3, 40, 57
    row0, col0 = 1000, 2500
    image = rng.integers(1, 250, size=(nb, h, w)).astype(dtype)
    nodata = 0
    image[:, rng.integers(0, h, 30), rng.integers(0, w, 30)] = nodata
    ref_img = image.astype(np.float64)
    ref_img[image == nodata] = np.nan
    if np.issubdtype(dtype, np.floating):
        image[1, 5, 7] = np.nan
        ref_img[1, 5, 7] = np.nan
    row, col = _random_positions(rng, 5000, h, w, row0, col0)
    out = np.empty((nb,) + row.shape, np.float32)
    K.sample_bilinear(image, row, col, row0, col0, nodata, out)
    coords = np.stack([row.ravel() - row0, col.ravel() - col0])
    for b in range(nb):
        ref = ndimage.map_coordinates(ref_img[b], coords, order=1, mode="nearest",
                                      prefilter=False).reshape(row.shape)
        assert np.array_equal(np.isnan(out[b]), np.isnan(ref))
        np.testing.assert_allclose(out[b], ref.astype(np.float32), rtol=2e-7, atol=0, equal_nan=True)
    assert 0.05 < np.isnan(out).mean() < 0.5   # the planted nodata did bite
    np.testing.assert_array_equal(out, sample_bilinear_ref(image, row, col, row0, col0, nodata))


def test_sample_bilinear_exact_on_linear_ramp():
    rng = np.random.default_rng(4)
    h, w, row0, col0 = 30, 45, 12000, 7000
    rr, cc = np.meshgrid(row0 + np.arange(h), col0 + np.arange(w), indexing="ij")
    ramps = [(0.5, -0.25, 3.0), (-2.0, 1.5, 40000.0), (0.0, 0.0, 7.0)]
    image = np.stack([a * rr + b * cc + c for a, b, c in ramps]).astype(np.float64)
    image -= image.min() - 1.0            # keep it positive, still linear
    row, col = _random_positions(rng, 3000, h, w, row0, col0)
    row[0, :3] = [row0, row0 + h - 1, row0 + 3]
    col[0, :3] = [col0, col0 + w - 1, col0 + w - 1]
    out = np.empty((3,) + row.shape, np.float32)
    K.sample_bilinear(image, row, col, row0, col0, np.nan, out)
    shift = image[:, 0, 0] - np.array([a * row0 + b * col0 + c for a, b, c in ramps])
    for k, (a, b, c) in enumerate(ramps):
        expected = (a * row + b * col + c + shift[k]).astype(np.float32)
        np.testing.assert_allclose(out[k], expected, rtol=1e-7, atol=0)


def test_sample_bilinear_window_edges_and_nan_positions():
    h, w, row0, col0 = 4, 5, 100, 200
    image = (np.arange(h * w, dtype=np.uint16).reshape(1, h, w) + 10)
    eps = 1e-9
    cases = [  # (row, col, expected or None for NaN)
        (row0, col0, 10.0),                       # first centre
        (row0 + h - 1, col0 + w - 1, 10.0 + h * w - 1),   # last centre: inside
        (row0 + h - 1, col0 + 1.5, 10.0 + (h - 1) * w + 1.5),
        (row0 + 1.5, col0 + w - 1, 10.0 + 1.5 * w + w - 1),
        (row0 - eps, col0, None),
        (row0, col0 - eps, None),
        (row0 + h - 1 + eps, col0, None),         # between last centre and edge: outside
        (row0 + h - 1 + 0.4, col0, None),
        (row0 + 1, col0 + w - 1 + eps, None),
        (np.nan, col0 + 1, None),
        (row0 + 1, np.nan, None),
        (row0 - 7, col0 - 9, None),
    ]
    row = np.array([[c[0] for c in cases]])
    col = np.array([[c[1] for c in cases]])
    out = np.empty((1,) + row.shape, np.float32)
    K.sample_bilinear(image, row, col, row0, col0, np.nan, out)
    for k, (_, _, exp) in enumerate(cases):
        if exp is None:
            assert np.isnan(out[0, 0, k]), cases[k]
        else:
            assert out[0, 0, k] == pytest.approx(exp, abs=1e-4), cases[k]
    np.testing.assert_array_equal(out, sample_bilinear_ref(image, row, col, row0, col0, np.nan))


def test_sample_bilinear_nodata_only_through_used_neighbours():
    image = np.array([[[5, 6, 7], [8, 0, 9], [1, 2, 3]]], np.uint16)
    row = np.array([[0.0, 0.0, 0.5, 1.0, 2.0, 0.0]])
    col = np.array([[0.0, 0.5, 0.5, 1.0, 0.5, 2.0]])
    out = np.empty((1, 1, 6), np.float32)
    K.sample_bilinear(image, row, col, 0, 0, 0, out)
    # centre (0,0) and half-way along row 0 never touch the nodata pixel (1,1)
    np.testing.assert_array_equal(out[0, 0], [5.0, 5.5, np.nan, np.nan, 1.5, 7.0])
    K.sample_bilinear(image, row, col, 0, 0, np.nan, out)    # nodata check disabled
    assert out[0, 0, 2] == pytest.approx((5 + 6 + 8 + 0) / 4)
    assert out[0, 0, 3] == 0.0


def test_sample_bilinear_single_row_window_and_shape_errors():
    image = np.array([[[1.0, 3.0, 5.0]]])
    row = np.array([[0.0, 0.0, 0.1]])
    col = np.array([[0.5, 2.0, 1.0]])
    out = np.empty((1, 1, 3), np.float32)
    K.sample_bilinear(image, row, col, 0, 0, np.nan, out)
    np.testing.assert_array_equal(out[0, 0], [2.0, 5.0, np.nan])
    with pytest.raises(ValueError, match="same shape"):
        K.sample_bilinear(image, row, col[:, :2], 0, 0, np.nan, out)
    with pytest.raises(ValueError, match="bands, ny, nx"):
        K.sample_bilinear(image, row, col, 0, 0, np.nan, np.empty((2, 1, 3), np.float32))


# --------------------------------------------------------------------------- visibility_los


def _const_los(shape, di, dj):
    return np.full(shape, float(di)), np.full(shape, float(dj))


@pytest.mark.parametrize("los", [(0.0, 0.7), (-1.3, 0.4), (2.5, -2.5), (0.0, 0.0)])
def test_visibility_flat_dsm_all_visible(los):
    dsm = np.full((40, 50), 123.25)
    di, dj = _const_los(dsm.shape, *los)
    out = np.empty(dsm.shape, np.uint8)
    K.visibility_los(dsm, di, dj, 0, 0, 40, 50, np.nan, 0.0, np.inf, out)
    assert (out == 1).all()


def test_visibility_nan_height_and_bad_los_are_nodata():
    dsm = np.full((20, 20), 50.0)
    dsm[3, 4] = np.nan
    dsm[10:12, 10:15] = np.nan
    di, dj = _const_los((10, 12), 0.5, 0.5)
    di[0, 0] = np.nan
    dj[9, 11] = np.inf
    out = np.empty((10, 12), np.uint8)
    K.visibility_los(dsm, di, dj, 3, 4, 10, 12, np.nan, K.DEFAULT_Z_TOL, np.inf, out)
    expected = np.ones((10, 12), np.uint8)
    expected[np.isnan(dsm[3:13, 4:16])] = 2
    expected[0, 0] = expected[9, 11] = 2
    np.testing.assert_array_equal(out, expected)


def test_visibility_argument_checks():
    dsm = np.zeros((10, 10))
    di, dj = _const_los((4, 4), 0.5, 0)
    out = np.empty((4, 4), np.uint8)
    with pytest.raises(ValueError, match="does not fit"):
        K.visibility_los(dsm, di, dj, 8, 0, 4, 4, np.nan, 0.05, np.inf, out)
    with pytest.raises(ValueError, match="shape"):
        K.visibility_los(dsm, di, dj, 0, 0, 4, 5, np.nan, 0.05, np.inf, out)
    with pytest.raises(ValueError, match="step"):
        K.visibility_los(dsm, di, dj, 0, 0, 4, 4, np.nan, 0.05, np.inf, out, 0.75)
    with pytest.raises(ValueError, match="z_tol"):
        K.visibility_los(dsm, di, dj, 0, 0, 4, 4, np.nan, -0.1, np.inf, out)


def _random_city(rng, shape, n_build=12, nan_frac=0.03):
    ii, jj = np.mgrid[0:shape[0], 0:shape[1]]
    dsm = 100.0 + 0.02 * ii - 0.03 * jj + rng.normal(0, 0.2, shape)
    for _ in range(n_build):
        i0, j0 = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        hi, wi = rng.integers(2, 8, 2)
        dsm[i0:i0 + hi, j0:j0 + wi] += rng.uniform(2, 12)
    dsm[rng.random(shape) < nan_frac] = np.nan
    return dsm


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_visibility_matches_reference_twin_on_random_city(seed):
    rng = np.random.default_rng(seed)
    dsm = _random_city(rng, (36, 44))
    ci0, cj0, ch, cw = 3, 5, 28, 33
    ang = rng.uniform(0, 2 * np.pi)
    n = rng.uniform(0.4, 2.5)
    di = n * np.cos(ang) + rng.normal(0, 0.05, (ch, cw))
    dj = n * np.sin(ang) + rng.normal(0, 0.05, (ch, cw))
    for z_tol, max_dist, step in [(0.05, np.inf, 0.5), (0.5, 6.0, 0.5), (0.0, np.inf, 0.3)]:
        out = np.empty((ch, cw), np.uint8)
        K.visibility_los(dsm, di, dj, ci0, cj0, ch, cw, np.nan, z_tol, max_dist, out, step)
        ref = visibility_ref(dsm, di, dj, ci0, cj0, ch, cw, np.nan, z_tol, max_dist, step)
        np.testing.assert_array_equal(out, ref)
        assert (out == 0).any() and (out == 1).any() and (out == 2).any()


def test_visibility_matches_twin_with_tall_buildings_and_nan_holes():
    """Long marches across low ground, tall towers and NaN holes: the kernel's coarse-max
    skipping must give exactly the plain march of the twin."""
    rng = np.random.default_rng(21)
    shape = (52, 50)
    dsm = _random_city(rng, shape, n_build=6, nan_frac=0.01)
    dsm[30:34, 8:12] += 40.0                           # towers
    dsm[5:8, 40:44] += 25.0
    dsm[15:27, 20:29] = np.nan                         # a large hole
    for ang in (0.3, 2.2, 4.0, 5.5):
        di, dj = _const_los(shape, 1.2 * np.cos(ang), 1.2 * np.sin(ang))
        out = np.empty(shape, np.uint8)
        K.visibility_los(dsm, di, dj, 0, 0, shape[0], shape[1], np.nan, 0.05, np.inf, out)
        ref = visibility_ref(dsm, di, dj, 0, 0, shape[0], shape[1], np.nan, 0.05, np.inf)
        np.testing.assert_array_equal(out, ref)
        assert (out == 0).sum() > 40


def test_visibility_h_max_only_stops_the_march():
    rng = np.random.default_rng(7)
    dsm = _random_city(rng, (40, 40))
    di, dj = _const_los((30, 30), -0.9, 1.1)
    a = np.empty((30, 30), np.uint8)
    b = np.empty((30, 30), np.uint8)
    K.visibility_los(dsm, di, dj, 5, 5, 30, 30, np.nan, 0.05, np.inf, a)
    K.visibility_los(dsm, di, dj, 5, 5, 30, 30, np.nanmax(dsm) + 500.0, 0.05, np.inf, b)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("h_range,n,expected", [(0.0, 1.0, 2), (10.0, 0.728, 10), (30.0, 1.0, 32),
                                                (12.5, 0.0, 2)])
def test_halo_cells(h_range, n, expected):
    assert K.halo_cells(h_range, n) == expected


def test_halo_cells_rejects_bad_input():
    with pytest.raises(ValueError, match="h_range_m"):
        K.halo_cells(np.nan, 1.0)
    with pytest.raises(ValueError, match="los_norm_max"):
        K.halo_cells(10.0, -1.0)
