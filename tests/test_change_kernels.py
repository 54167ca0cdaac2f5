"""Change-detection kernels against slow obvious twins, scipy/skimage, and the simulator's sun."""

from __future__ import annotations

import math
from collections import deque
from datetime import UTC

import numpy as np
import pytest
from scipy import linalg, ndimage

from offnadir.change import irmad
from offnadir.change import kernels as K
from offnadir.change.criteria import corr, median_level
from offnadir.change.segment import join_components, merge_fragments, relabel


def _rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- morphology
@pytest.mark.parametrize("r", [0, 1, 3, 7])
@pytest.mark.parametrize("shape", [(37, 53), (41, 150)])  # columns go in strips of 64: 3 strips, last partial
def test_running_min_matches_scipy(r, shape):
    a = _rng(r).normal(size=shape)
    a[_rng(r + 1).random(a.shape) < 0.05] = np.inf
    out = np.empty_like(a)
    K.running_min_2d(a, r, out)
    ref = ndimage.minimum_filter(a, size=2 * r + 1, mode="constant", cval=np.inf)
    np.testing.assert_array_equal(out, ref)


def test_ground_estimate_is_an_opening_that_keeps_planes():
    ii, jj = np.mgrid[0:80, 0:90].astype(np.float64)
    plane = 100.0 + 0.03 * ii - 0.02 * jj
    h = plane.copy()
    h[30:45, 20:40] += 12.0  # a building narrower than the window
    h[5, 5] = np.nan
    g = K.ground_estimate(h, 10)
    # twin: scipy min then max filters with +/-inf padding
    a = np.where(np.isfinite(h), h, np.inf)
    ero = ndimage.minimum_filter(a, size=21, mode="constant", cval=np.inf)
    ref = ndimage.maximum_filter(np.where(np.isfinite(ero), ero, -np.inf), size=21, mode="constant", cval=-np.inf)
    ref[~np.isfinite(h)] = np.nan
    np.testing.assert_allclose(g, ref, equal_nan=True)
    far = np.zeros(h.shape, bool)
    far[20:60, 60:70] = True  # >= 2r from the edges, the building and the nodata cell
    np.testing.assert_allclose(g[far], plane[far], atol=1e-9)  # a plane is kept exactly
    # under the building the ground is the plane to within slope x building size
    np.testing.assert_allclose(g[30:45, 20:40], plane[30:45, 20:40], atol=0.03 * 15 + 0.02 * 20)


# ----------------------------------------------------------------------------- labelling
def _components_twin(key, h, dz, use_h, gi0, gj0, NX):
    ny, nx = key.shape
    out = np.zeros(key.shape, np.int64)
    seen = np.zeros(key.shape, bool)
    for i in range(ny):
        for j in range(nx):
            if key[i, j] == 0 or seen[i, j]:
                continue
            comp, q = [], deque([(i, j)])
            seen[i, j] = True
            while q:
                a, b = q.popleft()
                comp.append((a, b))
                for da, db in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    c, d = a + da, b + db
                    if 0 <= c < ny and 0 <= d < nx and not seen[c, d] and key[c, d] == key[a, b] and \
                            (not use_h or abs(h[a, b] - h[c, d]) <= dz):
                        seen[c, d] = True
                        q.append((c, d))
            first = min((gi0 + a) * NX + gj0 + b for a, b in comp)
            for a, b in comp:
                out[a, b] = first + 1
    return out


@pytest.mark.parametrize("use_h", [False, True])
def test_label_components_matches_twin(use_h):
    rng = _rng(3)
    key = rng.integers(0, 4, size=(40, 50)).astype(np.int64)
    key = ndimage.median_filter(key, 3)  # blobs
    h = rng.normal(size=key.shape).cumsum(axis=1) * 0.4
    out = np.zeros(key.shape, np.int64)
    K.label_components(key, h, 0.5, use_h, 7, 11, 1000, out)
    np.testing.assert_array_equal(out, _components_twin(key, h, 0.5, use_h, 7, 11, 1000))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_slic_features_match_numpy(dtype):
    rng = _rng(9)
    h = rng.normal(size=(30, 40))
    h[rng.random(h.shape) < 0.05] = np.nan
    base = rng.normal(100, 30, size=(4, 30, 40)).astype(dtype)
    base[2][rng.random(h.shape) < 0.05] = np.nan
    vis = rng.integers(0, 3, size=h.shape).astype(np.uint8)
    scale = np.array([3.0, 7.0, 0.3, 11.0])
    feat, seg = np.empty(base.shape), np.empty(h.shape, bool)
    K.slic_features(h, base, vis, scale, feat, seg)
    finite = np.isfinite(h) & np.all(np.isfinite(base), axis=0)
    np.testing.assert_array_equal(feat, np.where(finite, base.astype(np.float64) / scale[:, None, None], 0.0))
    np.testing.assert_array_equal(seg, finite & (vis == 1))


def _slic_twin(feat, mask, gi0, gj0, S, NBX, m, iters):
    """Array formulation of grid-anchored SLIC: distances to the 9 neighbouring block centres as
    whole arrays, first minimum in (di, dj) order, centres updated with bincount."""
    nf, ny, nx = feat.shape
    ii, jj = np.indices((ny, nx))
    bi_c, bj_c = (gi0 + ii) // S - gi0 // S, (gj0 + jj) // S - gj0 // S
    nbi, nbj = bi_c.max() + 1, bj_c.max() + 1
    blk = (bi_c * nbj + bj_c)[mask]

    def centres(lab):
        cnt = np.bincount(lab, minlength=nbi * nbj)
        with np.errstate(invalid="ignore", divide="ignore"):
            return cnt, [np.bincount(lab, w, minlength=nbi * nbj) / cnt
                         for w in (ii[mask].astype(float), jj[mask].astype(float), *feat[:, mask])]

    cnt, c = centres(blk)
    exists = cnt > 0
    c = [np.where(exists, v, 0.0) for v in c]
    fi, fj, fv = ii[mask], jj[mask], feat[:, mask]
    for it in range(max(iters, 1)):
        ds, cands = [], []
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                bi, bj = bi_c[mask] + di, bj_c[mask] + dj
                ok = (bi >= 0) & (bi < nbi) & (bj >= 0) & (bj < nbj)
                k = np.where(ok, bi * nbj + bj, 0)
                ok &= exists[k]
                d = ((fi - c[0][k]) ** 2 + (fj - c[1][k]) ** 2) * (1.0 / (S * S))
                for f in range(nf):
                    d += (fv[f] - c[2 + f][k]) ** 2 * (1.0 / (m * m))
                ds.append(np.where(ok, d, np.inf))
                cands.append(k)
        asg = np.stack(cands)[np.argmin(np.stack(ds), axis=0), np.arange(len(fi))]
        if it == iters - 1 or iters <= 0:
            break
        cnt, new = centres(asg)
        c = [np.where(cnt > 0, v, old) for v, old in zip(new, c)]
    out = np.zeros((ny, nx), np.int64)
    out[mask] = (asg // nbj + gi0 // S) * NBX + asg % nbj + gj0 // S + 1
    return out


@pytest.mark.parametrize("nb", [1, 3, 4])  # one and four bands take fused loops of their own
@pytest.mark.parametrize("win,S,it", [((0, 0), 8, 3), ((13, 29), 7, 2), ((5, 3), 16, 1)])
def test_slic_blocks_matches_twin(win, S, it, nb):
    rng = _rng(7)
    ny, nx = 70, 83
    feat = ndimage.gaussian_filter(rng.normal(size=(nb, ny, nx)), (0, 2, 2))
    feat = feat / feat.std()
    mask = rng.random((ny, nx)) > 0.2
    mask[20:40, 30:60] = False  # an empty block: no centre there
    NBX = -(-(win[1] + nx + 40) // S)
    out = np.zeros((ny, nx), np.int64)
    K.slic_blocks(feat, mask, win[0], win[1], S, NBX, 0.5, it, out)
    np.testing.assert_array_equal(out, _slic_twin(feat, mask, win[0], win[1], S, NBX, 0.5, it))


def test_slic_window_with_halo_equals_whole_grid():
    rng = _rng(5)
    ny, nx, S, it = 96, 112, 8, 3
    feat = ndimage.gaussian_filter(rng.normal(size=(2, ny, nx)), (0, 2, 2))
    feat = feat / feat.std()
    mask = rng.random((ny, nx)) > 0.1
    whole = np.zeros((ny, nx), np.int64)
    K.slic_blocks(feat, mask, 0, 0, S, -(-nx // S), 0.5, it, whole)
    assert (whole[mask] > 0).all() and (whole[~mask] == 0).all()
    # every cell is labelled by a centre of its own block or a neighbouring one
    bi, bj = (whole[mask] - 1) // -(-nx // S), (whole[mask] - 1) % -(-nx // S)
    ii, jj = np.nonzero(mask)
    assert np.abs(bi - ii // S).max() <= 1 and np.abs(bj - jj // S).max() <= 1
    halo = (2 * it + 1) * S + S
    i0, j0 = 40, 48
    a0, b0 = i0 - halo, j0 - halo
    win = (slice(max(a0, 0), i0 + 16 + halo), slice(max(b0, 0), j0 + 16 + halo))
    sub = np.zeros(feat[(slice(None),) + win].shape[1:], np.int64)
    K.slic_blocks(np.ascontiguousarray(feat[(slice(None),) + win]), np.ascontiguousarray(mask[win]), win[0].start,
                  win[1].start, S, -(-nx // S), 0.5, it, sub)
    ci, cj = i0 - win[0].start, j0 - win[1].start
    np.testing.assert_array_equal(sub[ci:ci + 16, cj:cj + 16], whole[i0:i0 + 16, j0:j0 + 16])


def test_small_fragments_merge_into_their_longest_border():
    blk = np.array([[1, 1, 1, 2, 2],
                    [1, 3, 1, 2, 2],
                    [1, 1, 2, 2, 2]], np.int64)
    comp = np.zeros_like(blk)
    K.label_components(blk, np.zeros(blk.shape), 0.0, False, 0, 0, 5, comp)
    assert merge_fragments(blk, comp, min_size=2)
    assert blk[1, 1] == 1  # the lone "3" cell joined the label around it


def _merge_twin(blk, comp, min_size):
    """The numpy formulation: sort the pieces, count (small piece, neighbour label) contacts."""
    ids, inv, size = np.unique(comp, return_inverse=True, return_counts=True)
    inv = inv.reshape(comp.shape)
    small = (size < min_size) & (ids > 0)
    ka, kb = [], []
    for a, b in ((inv[:, :-1], inv[:, 1:]), (inv[:-1], inv[1:]), (inv[:, 1:], inv[:, :-1]), (inv[1:], inv[:-1])):
        sel = small[a] & (a != b) & (ids[b] > 0)
        ka.append(a[sel])
        kb.append(b[sel])
    ka, kb = np.concatenate(ka), np.concatenate(kb)
    if not small.any() or len(ka) == 0:
        return False
    first = np.zeros(len(ids), np.int64)
    flat = inv.ravel()
    first[flat[::-1]] = np.arange(flat.size)[::-1]
    pair, cnt = np.unique(np.stack([ka, blk.ravel()[first][kb]], 1), axis=0, return_counts=True)
    pair = pair[np.lexsort((pair[:, 1], -cnt, pair[:, 0]))]
    keep = np.r_[True, pair[1:, 0] != pair[:-1, 0]]
    target = np.zeros(len(ids), np.int64)
    target[pair[keep, 0]] = pair[keep, 1]
    cells = (small & (target > 0))[inv]
    blk[cells] = target[inv[cells]]
    return bool(cells.any())


@pytest.mark.parametrize("seed,min_size", [(0, 2), (1, 10), (2, 40)])
def test_merge_fragments_matches_twin(seed, min_size):
    rng = _rng(20 + seed)
    blk = rng.integers(0, 6, size=(60, 70)).astype(np.int64)
    blk = ndimage.median_filter(blk, 3)  # blobs of all sizes, single cells included
    blk[rng.random(blk.shape) < 0.05] = 0
    gi0, gj0, NX = 30, 45, 500  # a window inside a larger grid: IDs are global
    comp = np.zeros_like(blk)
    K.label_components(blk, np.zeros(blk.shape), 0.0, False, gi0, gj0, NX, comp)
    want = blk.copy()
    moved_twin = _merge_twin(want, comp, min_size)
    got = blk.copy()
    assert merge_fragments(got, comp, min_size, (gi0, gj0), NX) == moved_twin
    assert moved_twin and not np.array_equal(want, blk)  # the case is not trivial
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="not label_components IDs"):  # IDs of another window: refused
        merge_fragments(blk.copy(), comp, min_size, (gi0 + 7, gj0), NX)


def test_join_components_and_relabel():
    pairs = np.array([[10, 4], [4, 30], [50, 60]], np.int64)
    old, new = join_components(pairs)
    mapping = dict(zip(old.tolist(), new.tolist()))
    assert mapping == {10: 4, 30: 4, 60: 50}
    lab = np.array([[0, 10, 30], [60, 4, 7]], np.int64)
    np.testing.assert_array_equal(relabel(lab, old, new), [[0, 4, 4], [50, 4, 7]])


# ----------------------------------------------------------------------------- sun
def test_box_casts_a_shadow_of_length_h_over_tan_elevation():
    h = np.full((120, 120), 100.0)
    h[50:70, 50:70] = 120.0  # 20 m box
    out = np.empty(h.shape, np.uint8)
    el = math.radians(45.0)
    K.illumination(h, 1.0, math.radians(180.0), el, 0.3, 1.0, 200.0, out)  # sun in the south
    assert out[10, 10] == 100  # flat ground: irradiance relative to flat ground = 1.00
    col = out[:50, 60]  # north of the box, away from the sun
    shaded = np.flatnonzero(col == K.SHADED)
    assert abs((50 - shaded.min()) - 20.0) <= 1.0  # 20 m / tan 45 = 20 cells
    assert (out[70:, 60] != K.SHADED).all()  # the sunny side stays lit
    # a slope facing away from a low sun gets no direct sun; facing it gets more than flat ground
    ramp = np.tile(np.arange(60, dtype=np.float64) * 1.0, (30, 1))  # rises eastwards, 45 degrees
    K.illumination(ramp, 1.0, math.radians(90.0), math.radians(30.0), 0.3, 5.0, 100.0, out[:30, :60])
    assert out[15, 30] == K.SHADED  # sun in the east; a face rising eastwards steeper than the sun faces away
    K.illumination(ramp[:, ::-1].copy(), 1.0, math.radians(90.0), math.radians(30.0), 0.3, 5.0, 100.0,
                   out[:30, :60])
    expect = math.cos(math.radians(60.0 - 45.0)) / math.sin(math.radians(30.0))
    assert out[15, 30] == min(254, round(100 * expect))


def test_sun_position_meets_astronomical_facts():
    """offnadir.sun (used by the simulator and by change detection) against facts we did not compute:
    at the June solstice the noon sun stands 90° - |lat - 23.44°| high, due south north of the tropic;
    at the March equinox 90° - |lat|. The input forms (text, datetime, datetime64) agree."""
    from datetime import datetime

    from offnadir.sun import sun_position

    lat, lon = 43.26, 5.44
    for day, decl in (("2021-06-21", 23.44), ("2021-03-20", 0.0)):
        minutes = np.arange(9 * 60, 14 * 60)
        els = [sun_position(f"{day}T{m // 60:02d}:{m % 60:02d}:00", lon, lat) for m in minutes]
        k = int(np.argmax([e for e, _ in els]))
        el_max, az_at_max = els[k]
        assert el_max == pytest.approx(90.0 - abs(lat - decl), abs=0.35)
        assert az_at_max == pytest.approx(180.0, abs=1.0)
    when = "2023-09-12T10:20:00"
    a = sun_position(when, lon, lat)
    b = sun_position(datetime.fromisoformat(when).replace(tzinfo=UTC), lon, lat)
    c = sun_position(np.datetime64(when), lon, lat)
    assert a == pytest.approx(b, abs=1e-9) and a == pytest.approx(c, abs=1e-9)


# ----------------------------------------------------------------------------- patch sums
def test_parallax_sums_match_twin():
    rng = _rng(7)
    lab = ndimage.median_filter(rng.integers(1, 5, size=(30, 34)), 5).astype(np.int64)
    x = rng.normal(size=lab.shape)
    y = rng.normal(size=lab.shape)
    x[rng.random(lab.shape) < 0.05] = np.nan
    ids = np.unique(lab)
    row = np.searchsorted(ids, lab)
    row[lab == 2] = -1  # not a profiled patch
    di = np.array([-2, -1, 0, 1, 3])
    dj = np.array([1, 0, 0, -1, -2])
    core = (4, 26, 5, 30)
    out = np.zeros((len(ids), len(di), 6))
    K.parallax_sums(lab, row, x, y, di, dj, *core, out)
    ref = np.zeros_like(out)
    for i in range(core[0], core[1]):
        for j in range(core[2], core[3]):
            if row[i, j] < 0 or not np.isfinite(x[i, j]):
                continue
            for k in range(len(di)):
                a, b = i + di[k], j + dj[k]
                if 0 <= a < 30 and 0 <= b < 34 and lab[a, b] == lab[i, j] and np.isfinite(y[a, b]) and \
                        np.isfinite(x[a, b]):
                    xv, yv = x[i, j], y[a, b]
                    ref[row[i, j], k] += (1, xv, yv, xv * xv, yv * yv, xv * yv)
    np.testing.assert_allclose(out, ref)
    # the zero-offset sums give Pearson's r of the patch's own cells
    r0 = ids[row[core[0]:core[1], core[2]:core[3]].max()]
    sel = np.zeros(lab.shape, bool)
    sel[core[0]:core[1], core[2]:core[3]] = True
    sel &= (lab == r0) & np.isfinite(x) & np.isfinite(y)
    assert corr(out[np.searchsorted(ids, r0), 2]) == pytest.approx(np.corrcoef(x[sel], y[sel])[0, 1], abs=1e-12)


def test_merge_grouped_sums_rows_of_equal_ids():
    ids = [np.array([3, 9, 12]), np.array([9, 1]), np.array([], np.int64)]
    rows = [{"a": np.array([1.0, 2.0, 3.0]), "b": np.ones((3, 2))},
            {"a": np.array([10.0, 20.0]), "b": 2 * np.ones((2, 2))},
            {"a": np.zeros(0), "b": np.zeros((0, 2))}]
    uid, out = K.merge_grouped(ids, rows)
    np.testing.assert_array_equal(uid, [1, 3, 9, 12])
    np.testing.assert_allclose(out["a"], [20.0, 1.0, 12.0, 3.0])
    np.testing.assert_allclose(out["b"][:, 0], [2.0, 1.0, 3.0, 1.0])


def test_median_level_interpolates_the_median():
    from offnadir.change.tile import LEVELS

    rng = _rng(11)
    for scale in (0.7, 1.9, 5.0, 20.0):
        v = scale * np.exp(rng.normal(0, 0.3, size=5000))
        frac = (v[:, None] > LEVELS[None, :]).mean(axis=0)[None]
        assert median_level(frac, LEVELS)[0] == pytest.approx(np.median(v), rel=0.08)


# ----------------------------------------------------------------------------- IR-MAD
def _cca_reference(x, y, w):
    """Weighted CCA by the generalised symmetric eigenproblem Sxy Syy^-1 Syx a = rho^2 Sxx a."""
    w = w / w.sum()
    mx, my = w @ x, w @ y
    xc, yc = x - mx, y - my
    Sxx = (xc * w[:, None]).T @ xc
    Syy = (yc * w[:, None]).T @ yc
    Sxy = (xc * w[:, None]).T @ yc
    vals, A = linalg.eigh(Sxy @ np.linalg.solve(Syy, Sxy.T), Sxx)
    order = np.argsort(vals)[::-1]
    return np.sqrt(np.clip(vals[order], 0, 1)), A[:, order], mx, my


def test_irmad_tile_sums_equal_the_whole_array_computation():
    rng = _rng(21)
    n, p = 6000, 3
    z = rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
    x = z * [2.0, 5.0, 1.0] + [100, 200, 50] + rng.normal(0, 0.3, (n, p))
    y = z @ rng.normal(size=(p, p)) * 3 + [10, 20, 30] + rng.normal(0, 0.5, (n, p))
    y[:300] += rng.normal(0, 20, (300, p))  # some change
    ref_x, ref_y = x.mean(0), y.mean(0)
    model = None
    w_full = np.ones(n)
    for it in range(4):
        parts = []
        for k in range(0, n, 1000):  # "tiles"
            s = irmad.empty_sums(1, p)
            parts.append(irmad.accumulate(s, x[k:k + 1000], y[k:k + 1000], irmad.weights(model, x[k:k + 1000],
                                          y[k:k + 1000]), np.zeros(1000, np.int64), ref_x, ref_y))
        model = irmad.solve(irmad.add_sums(*parts), 0, ref_x, ref_y, iterations=it + 1, previous=model)
        rho, A, mx, _ = _cca_reference(x, y, w_full)
        np.testing.assert_allclose(model.rho, rho, rtol=0, atol=1e-9)
        np.testing.assert_allclose(model.mean_x, mx, rtol=1e-12)
        # canonical vectors agree up to sign and scale: unit-variance variates are equal up to sign
        u_ref = (x - mx) @ A
        u_ref /= np.sqrt(np.sum(w_full[:, None] * u_ref**2, axis=0) / w_full.sum())
        u = (x - model.mean_x) @ model.A
        for i in range(p):
            assert min(np.abs(u[:, i] - u_ref[:, i]).max(), np.abs(u[:, i] + u_ref[:, i]).max()) < 1e-6
        # reference weights for the next iteration: chi-square no-change probability
        M = model.mad(x, y)
        w_full = irmad.chi2_sf((M**2).sum(1), p)
        np.testing.assert_allclose(irmad.weights(model, x, y), w_full)
    assert model.rho[0] > 0.99


def test_chi2_tails():
    from scipy import stats

    for dof in (1, 4):
        for z in (0.5, 3.0, 13.3, 40.0):
            assert irmad.chi2_sf(z, dof) == pytest.approx(stats.chi2.sf(z, dof), rel=1e-9)
        assert irmad.chi2_isf(0.01, dof) == pytest.approx(stats.chi2.isf(0.01, dof), rel=1e-9)


def test_robust_scale_from_histogram_matches_numpy():
    rng = _rng(4)
    m = rng.normal(0, [0.05, 2.0, 40.0], size=(20000, 3))
    m[:1000] *= 30  # outliers do not move a median much
    s = irmad.robust_scale(irmad.histogram(np.abs(m)))
    ref = 1.4826 * np.median(np.abs(m), axis=0)
    np.testing.assert_allclose(s, ref, rtol=0.025)


def test_otsu_matches_skimage():
    from skimage.filters import threshold_otsu

    from offnadir.change.decide import otsu

    rng = _rng(8)
    v = np.r_[rng.normal(0.05, 0.05, 8000), rng.normal(0.6, 0.08, 2000)]
    counts, edges = np.histogram(v, bins=200, range=(-1, 1))
    centres = 0.5 * (edges[:-1] + edges[1:])
    ref = threshold_otsu(hist=(counts, centres))
    assert otsu(counts, -1.0, 1.0) == pytest.approx(ref, abs=0.011)
    assert 0.2 < otsu(counts, -1.0, 1.0) < 0.45


def test_bin_values_equals_numpys_search_and_look_up():
    """kernels.bin_values (the shadow classifiers' per-cell log-odds) gives numpy's numbers: the
    bin by ``searchsorted(side="right")``, clipped, its value plus the prior, NaN where x is not
    finite; values on the edges, an ulp either side, +-inf, NaN; unsorted edges take numpy's path."""
    from offnadir.change.kernels import bin_values

    rng = np.random.default_rng(11)
    for n_inner in (1, 2, 9, 15):
        e = np.r_[-np.inf, np.sort(rng.choice(np.arange(-50.0, 50.0, 0.25), n_inner, replace=False)), np.inf]
        v = rng.normal(size=len(e) - 1 - int(rng.integers(0, 2)))  # also fewer values than bins: clipped
        x = np.r_[rng.uniform(-60, 60, 5000), e[1:-1], np.nextafter(e[1:-1], -np.inf), np.nextafter(e[1:-1], np.inf),
                  np.inf, -np.inf, np.nan, 0.0, -0.0]
        ref = np.where(np.isfinite(x), v[np.clip(np.searchsorted(e, x, side="right") - 1, 0, len(v) - 1)] - 0.3,
                       np.nan)
        got = bin_values(x, tuple(e), tuple(v), -0.3)
        assert got.dtype == np.float64 and np.array_equal(got, ref, equal_nan=True)
        x2 = x[: 5000].reshape(50, 100)[:, ::2]  # 2-D, not contiguous
        assert np.array_equal(bin_values(x2, e, v, -0.3), ref[:5000].reshape(50, 100)[:, ::2], equal_nan=True)
    e = np.array([-np.inf, 3.0, 1.0, np.inf])  # not increasing: numpy's own search
    x = np.linspace(-1, 5, 13)
    assert np.array_equal(bin_values(x, e, (1.0, 2.0, 3.0), 0.0),
                          np.array([1.0, 2.0, 3.0])[np.clip(np.searchsorted(e, x, side="right") - 1, 0, 2)])


@pytest.mark.parametrize("az", [90.0, 0.0, 33.0, 250.0, 180.0])
def test_parallax_sums_by_label_runs_equal_the_offset_by_offset_sums(az):
    """The kernel walks each row of offsets by label runs (parallax_kernels): the sums must be
    those of the per-offset definition bit for bit (each (patch, offset) sum adds its start cells
    in raster order), for digital lines east-west, north-south and oblique, reaching out of the
    window, and for offsets given in any order."""
    from offnadir.change import parallax_kernels as PK
    from offnadir.change.tileio import parallax_offsets

    rng = _rng(int(az))
    lab = ndimage.median_filter(rng.integers(1, 7, size=(60, 70)), 7).astype(np.int64)
    lab[20:24, :] = 3  # a long run of one patch
    x = rng.normal(size=lab.shape)
    y = rng.normal(size=lab.shape)
    x[rng.random(lab.shape) < 0.05] = np.nan
    y[rng.random(lab.shape) < 0.05] = np.nan
    ids = np.unique(lab)
    row = np.searchsorted(ids, lab)
    row[lab == 2] = -1
    di, dj, _ = parallax_offsets(az, 30.0, 12.0, 0.5)
    perm = rng.permutation(len(di))
    core = (5, 52, 3, 66)
    for d_i, d_j in ((di, dj), (di[perm], dj[perm])):
        out = np.zeros((len(ids), len(d_i), 6))
        PK.parallax_sums(lab, row, x, y, d_i, d_j, *core, out)
        ref = np.zeros_like(out)
        for i in range(core[0], core[1]):
            for j in range(core[2], core[3]):
                if row[i, j] < 0 or not np.isfinite(x[i, j]):
                    continue
                for k in range(len(d_i)):
                    a, b = i + d_i[k], j + d_j[k]
                    if 0 <= a < lab.shape[0] and 0 <= b < lab.shape[1] and lab[a, b] == lab[i, j] and \
                            np.isfinite(y[a, b]) and np.isfinite(x[a, b]):
                        xv, yv = x[i, j], y[a, b]
                        ref[row[i, j], k, 0] += 1.0
                        ref[row[i, j], k, 1] += xv
                        ref[row[i, j], k, 2] += yv
                        ref[row[i, j], k, 3] += xv * xv
                        ref[row[i, j], k, 4] += yv * yv
                        ref[row[i, j], k, 5] += xv * yv
        assert len(d_i) > 20 and (ref[..., 0] > 0).sum() > 40
        np.testing.assert_array_equal(out, ref)
    g = PK.offset_rows(di, dj)
    assert sorted(g[4]) == list(range(len(di)))  # every offset in exactly one row group
