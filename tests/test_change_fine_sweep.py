"""The fine localisation window (offnadir.change.localise) taken in the wide window's census sweeps
(census.min_census_ratio(..., fine=w), cells.stratum_evidence(..., fine=w)): every number equals
the separate computation it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from offnadir.change import cells
from offnadir.change import census as K
from offnadir.change import localise as L


@pytest.mark.parametrize("packed", [None, False])
def test_fine_window_in_the_same_sweep_equals_its_own_sweep(packed):
    """Random words (any bit pattern: invalid directions, codes of both signs), cores touching and
    not touching the borders, offsets leaving the array: both windows' ratios (and the reversal
    ratio) are array_equal to the calls without ``fine``."""
    rng = np.random.default_rng(7)
    for trial in range(8):
        h, w = (int(v) for v in rng.integers(24, 80, 2))
        a = rng.integers(0, 1 << 24, (h, w)).astype(np.uint32)
        b = rng.integers(0, 1 << 24, (h, w)).astype(np.uint32)
        win = int(rng.choice([9, 15, 41]))
        fine = int(rng.choice([1, 3, 7, win]))
        offs = [(0, 0), (1, -2), (-3, 1), (h, 0)]
        core = (int(rng.integers(0, 8)), h - int(rng.integers(0, 8)), int(rng.integers(0, 8)),
                w - int(rng.integers(0, 8)))
        r, s, rf = K.min_census_ratio(a, b, offs, win, core, packed=packed, reversal=True, fine=fine)
        r0, s0 = K.min_census_ratio(a, b, offs, win, core, packed=packed, reversal=True)
        r1, rf1 = K.min_census_ratio(a, b, offs, win, core, packed=packed, fine=fine)
        ref = K.min_census_ratio(a, b, offs, fine, core)
        for x, y in ((r, r0), (s, s0), (r1, r0), (rf, ref), (rf1, ref)):
            assert np.array_equal(x, y, equal_nan=True), (trial, win, fine, core)
        assert np.isfinite(ref).any() and np.isfinite(r0).any()


def test_fine_window_wider_than_the_sweep_is_refused():
    a = np.zeros((20, 20), np.uint32)
    with pytest.raises(ValueError, match="fine census window"):
        K.min_census_ratio(a, a, [(0, 0)], 9, fine=11)


@pytest.mark.parametrize("with_elevated", [True, False])
def test_stratum_evidence_returns_the_ground_fine_evidence_of_localise(with_elevated):
    """The evidence pass's fine evidence (stratum_evidence(..., fine=w)) is localise's
    ground_fine_evidence (its own census codes and sweeps), and the wide evidence is unchanged."""
    rng = np.random.default_rng(11)
    n = 90
    ground = ndi.gaussian_filter(rng.normal(0.0, 40.0, (n, n)), 1.0)
    base = ground + rng.normal(0, 1.0, (n, n))
    target = ground + rng.normal(0, 1.0, (n, n))
    target[40:60, 30:50] = ndi.gaussian_filter(rng.normal(0.0, 40.0, (20, 20)), 1.0) + 30.0
    ok_b = np.ones((n, n), bool)
    ok_b[5:9, 60:70] = False
    ok_t = np.ones((n, n), bool)
    elev = np.zeros((n, n), bool)
    if with_elevated:
        elev[20:35, 15:40] = True
    compare = np.ones((n, n), bool)
    compare[70:80, 10:30] = False  # a moved shadow
    offs, sig, core = [(0, 0), (0, 1), (1, 2)], (1.0, 1.2), (6, 84, 4, 88)
    rev = rng.random((core[1] - core[0], core[3] - core[2])) < 0.5
    fw = L.fine_window(21)
    e, ef = cells.stratum_evidence(base, target, ok_b, ok_t, elev, 21, offs, sig, compare=compare, core=core,
                                   reversal=rev, fine=fw)
    e0 = cells.stratum_evidence(base, target, ok_b, ok_t, elev, 21, offs, sig, compare=compare, core=core,
                                reversal=rev)
    ef0 = L.ground_fine_evidence(base, target, ok_b, ok_t, elev, fw, offs, sig, compare=compare, core=core)
    assert np.array_equal(e, e0, equal_nan=True)
    assert np.array_equal(ef, ef0, equal_nan=True)
    assert np.isfinite(ef).sum() > 1000
    assert np.all(np.isnan(ef[elev[core[0]:core[1], core[2]:core[3]]]))


def test_painter_shares_the_patch_look_up_and_paints_what_paint_paints():
    """The maps pass paints several values per patch on the same IDs (criteria score, rim, gone
    roofs): its painter looks the cells' patches up once per distinct ID array, same values."""
    rng = np.random.default_rng(5)
    lab = rng.integers(0, 40, (50, 60))
    ids = np.unique(rng.integers(1, 45, 30))
    other = np.unique(rng.integers(1, 45, 20))
    painted = cells._painter(lab)
    for i in (ids, ids.copy(), other, ids, np.zeros(0, np.int64)):
        v = rng.random(len(i))
        a, b = painted(i, v), cells.paint(lab, i, v)
        assert np.array_equal(a, b, equal_nan=True)
        assert len(i) == 0 or np.isfinite(a).any()
    ix = cells.paint_index(lab, ids)
    assert np.array_equal(ix[0], lab > 0) and ix[1].shape == (int((lab > 0).sum()),)
