"""The parallax (structural) criterion applies to patches whose DSM is one plane at the search's
resolution (offnadir.change.criteria.rigid; the plane fit: offnadir.change.crown): a crown's
texture matched at one shifted offset is not a height change."""

import numpy as np
import pytest

from offnadir.change import crown as CR
from offnadir.change.criteria import CRITERIA, RIGID_NOISE_SIGMAS, TargetTable, rigid
from offnadir.change.options import ChangeOptions

SHIFTS = np.arange(-12, 13, dtype=np.float64)
N0 = 300
CELL, TAN = 0.5, np.tan(np.radians(25.0))
HALF_STEP = 0.5 * CELL / TAN  # 0.54 m


def _sums(x, y):
    return np.array([len(x), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()])


def _heights(kind, rng, size=20, noise=0.0):
    """A size x size patch's DSM: a tilted plane (a roof face), a dome (a crown of radius size/2,
    4 m above its base), or flat ground; plus Gaussian noise."""
    i, j = np.mgrid[0:size, 0:size].astype(np.float64)
    if kind == "plane":
        h = 10.0 + 0.4 * i * CELL - 0.2 * j * CELL
    elif kind == "dome":
        r = size / 2.0
        d2 = ((i - r + 0.5) ** 2 + (j - r + 0.5) ** 2) / r**2
        h = 3.0 + 4.0 * np.sqrt(np.clip(1.0 - d2, 0.0, 1.0))
    else:
        h = np.full((size, size), 2.0)
    return h + noise * rng.standard_normal(h.shape)


def _table(elev_kind, ground_noise=0.0, n_ground=30, tan_view=TAN, seed=0, elev_noise=0.0):
    """Patch 1 elevated (its DSM ``elev_kind``), its texture moved by 6 cells in the target; patches
    2.. ground, their DSM flat plus ``ground_noise``; plane sums from :func:`crown.plane_sums`."""
    rng = np.random.default_rng(seed)
    blocks = [_heights(elev_kind, rng, noise=elev_noise)]
    blocks += [_heights("flat", rng, noise=ground_noise) for _ in range(n_ground)]
    n = len(blocks)
    lab = np.concatenate([np.full(b.shape, k + 1) for k, b in enumerate(blocks)], axis=1)
    h = np.concatenate(blocks, axis=1)
    ids = np.arange(1, n + 1)
    prof = np.zeros((n, len(SHIFTS), 6))
    for k, s in enumerate(SHIFTS):
        m = int(N0 * (1 - abs(s) / 20))
        x = rng.standard_normal(m)
        prof[0, k] = _sums(x, x + 0.3 * rng.standard_normal(m) if abs(s - 6) <= 1 else rng.standard_normal(m))
    c0 = np.tile(_sums(rng.standard_normal(N0), rng.standard_normal(N0)), (n, 1))
    elevated = np.zeros(n, bool)
    elevated[0] = True
    tb = TargetTable(ids=ids, n_cells=np.full(n, float(N0)), elevated=elevated, used=np.full(n, float(N0)),
                     mean_rob=np.zeros((n, 1)), frac_above=np.zeros((n, 1)), c0=c0, profile=prof,
                     shift_cells=SHIFTS, cell=CELL, tan_view=tan_view)
    tb.extra["plane"] = CR.plane_sums(h, lab, ids)
    return tb, h, lab, ids


def test_plane_rms_is_the_least_squares_residual():
    rng = np.random.default_rng(1)
    for kind in ("plane", "dome"):
        h = _heights(kind, rng, size=13, noise=0.05)
        lab = np.ones(h.shape, np.int64)
        i, j = np.nonzero(lab)
        a = np.c_[np.ones(len(i)), j, i]
        coef, *_ = np.linalg.lstsq(a, h[i, j], rcond=None)
        want = np.sqrt(np.mean((h[i, j] - a @ coef) ** 2))
        got = CR.plane_rms(CR.plane_sums(h, lab, np.array([1])))[0]
        assert got == pytest.approx(want, rel=1e-6)


def test_plane_sums_add_over_tiles_with_global_coordinates():
    rng = np.random.default_rng(2)
    h = _heights("dome", rng, size=16) + 100.0
    lab = np.where(np.arange(16)[None, :] < 9, 1, 2) * np.ones((16, 1), np.int64)
    ids = np.array([1, 2])
    whole = CR.plane_sums(h, lab, ids)
    parts = CR.plane_sums(h[:7], lab[:7], ids, 0, 0) + CR.plane_sums(h[7:], lab[7:], ids, 7, 0)
    assert np.allclose(parts, whole)
    left = CR.plane_sums(h[:, :5], lab[:, :5], ids, 0, 0) + CR.plane_sums(h[:, 5:], lab[:, 5:], ids, 0, 5)
    assert np.allclose(CR.plane_rms(left), CR.plane_rms(whole))


def test_a_moved_roof_face_fires_a_moved_crown_does_not():
    opts = ChangeOptions()
    tb, *_ = _table("plane")
    _, score = CRITERIA["structural"](tb, opts)
    assert rigid(tb)[0] and score[0] >= 0.5
    tb, *_ = _table("dome")
    assert tb.extra["plane"][0, 0] > 0
    _, score = CRITERIA["structural"](tb, opts)
    assert CR.plane_rms(tb.extra["plane"])[0] > HALF_STEP
    assert not rigid(tb)[0] and score[0] == 0.0


def test_without_the_view_angle_or_the_sums_every_patch_is_rigid():
    tb, *_ = _table("dome", tan_view=np.nan)
    assert rigid(tb).all()
    tb, *_ = _table("dome")
    del tb.extra["plane"]
    assert rigid(tb).all()
    _, score = CRITERIA["structural"](tb, ChangeOptions())
    assert score[0] >= 0.5


def test_a_noisy_dsm_raises_the_bound():
    # ground noise 0.5 m: the median ground rms ~0.5 m, the bound ~1.5 m, above the dome's rms
    tb, *_ = _table("dome", ground_noise=0.5)
    rms = CR.plane_rms(tb.extra["plane"])
    assert HALF_STEP < rms[0] < RIGID_NOISE_SIGMAS * np.median(rms[1:])
    assert rigid(tb)[0]
    # and a noisy flat roof is not bent: its rms is the noise's, below three times its median
    tb, *_ = _table("flat", ground_noise=0.7, elev_noise=0.7)
    assert CR.plane_rms(tb.extra["plane"])[0] > HALF_STEP
    assert rigid(tb).all()
