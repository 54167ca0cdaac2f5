"""The census evidence's parallax search tolerates small height errors only
(:func:`offnadir.change.search_heights.evidence_height`): a raised roof is change, a one-cell
mis-registration is not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from offnadir.change import cells
from offnadir.change import search_heights as P
from offnadir.change import evidence as EV
from offnadir.change.options import ChangeOptions

# the simulator's default views: base 5 deg off-nadir looking from the east, target 25 deg from the west
VIEWS = (90.0, 5.0, 270.0, 25.0)
CELL = 0.5


def test_evidence_height_is_the_larger_of_elevated_height_and_one_cell_of_parallax():
    opts = ChangeOptions()
    per_m = P.parallax_cells_per_metre(*VIEWS, CELL)
    # (tan 25 + tan 5) / 0.5 m cells, both views along the x axis
    assert per_m == pytest.approx((np.tan(np.radians(25)) + np.tan(np.radians(5))) / CELL)
    assert P.evidence_height(opts, *VIEWS, CELL) == pytest.approx(opts.elevated_height)
    # nearly the same view twice (a weak-parallax pair): one cell of parallax is many metres
    weak = (333.0, 16.2, 321.0, 13.7)
    one_cell = 1.0 / P.parallax_cells_per_metre(*weak, CELL)
    assert one_cell > opts.elevated_height
    assert P.evidence_height(opts, *weak, CELL) == pytest.approx(one_cell)
    # offsets for that height: exactly one cell either side
    offs = EV.relative_offsets(*weak, P.evidence_height(opts, *weak, CELL), CELL)
    assert max(max(abs(a), abs(b)) for a, b in offs) == 1
    # unknown angles: the height bound stands (relative_offsets then gives (0, 0) only)
    assert P.evidence_height(opts, None, None, 270.0, 25.0, CELL) == pytest.approx(opts.elevated_height)
    # the option wins
    assert P.evidence_height(ChangeOptions(max_height_change=7.0), *VIEWS, CELL) == 7.0


def _scene(seed=3, n=120):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.standard_normal((n, n)), 1.0) * 40.0 + 300.0


def test_raised_roof_is_evidence_and_misregistration_is_not():
    opts = ChangeOptions()
    base = _scene()
    ok = np.ones(base.shape, bool)
    window = 21
    per_m = P.parallax_cells_per_metre(*VIEWS, CELL)
    offs = EV.relative_offsets(*VIEWS, P.evidence_height(opts, *VIEWS, CELL), CELL)
    wide = EV.relative_offsets(*VIEWS, 20.0, CELL)  # the whole relief of a scene with 20 m buildings
    roof = (slice(40, 80), slice(40, 80))
    # a roof raised by 6 m: the target, sampled at the old height, shows the roof 6 m x parallax away
    k = int(round(6.0 * per_m))
    target = 0.8 * base + 25.0  # another gain and offset at date 2
    target[roof] = 0.8 * base[40:80, 40 + k:80 + k] + 25.0
    rng = np.random.default_rng(0)
    target += rng.normal(0, 1.0, base.shape)
    sig = (1.0, 1.0)
    r_new = EV.structural_evidence(base, target, ok, ok, window, offs, sig)
    r_wide = EV.structural_evidence(base, target, ok, ok, window, wide, sig)
    centre = (slice(50, 70), slice(50, 70))
    assert np.nanmedian(r_new[centre]) > 0.8  # no agreement beyond chance at the tolerated shifts
    assert np.nanmedian(r_wide[centre]) < 0.4  # the whole-relief search matched the raised roof
    # unchanged surface, target mis-registered by one cell along the parallax: still agreeing
    moved = 0.8 * np.roll(base, 1, axis=1) + 25.0 + rng.normal(0, 1.0, base.shape)
    r_same = EV.structural_evidence(base, moved, ok, ok, window, offs, sig)
    assert np.nanmedian(r_same[centre]) < 0.4


def test_calibration_treats_a_fit_held_at_the_weight_cap_as_one_population():
    from offnadir.change import calibrate as C

    rng = np.random.default_rng(1)
    # one population with a long tail of agreeing cells (log R skewed to the left), no changed part
    z = -0.15 * rng.gamma(2.0, 1.0, 200000)
    m = C.fit(C.histogram(1.0 / (1.0 + np.exp(-z))), anchor=0.0)
    assert m["pinned"] and m["fallback"] and "weight cap" in m["reason"]
    assert m["pi"][1] == pytest.approx(C.MAX_CHANGED)
    # 90 % unchanged + 10 % changed near "no agreement beyond chance": a mixture, as before
    z = np.r_[rng.normal(-0.4, 0.1, 180000), rng.normal(-0.05, 0.05, 20000)]
    m = C.fit(C.histogram(1.0 / (1.0 + np.exp(-z))), anchor=0.0)
    assert not m["fallback"] and not m["pinned"]
    assert m["pi"][1] == pytest.approx(0.1, abs=0.02)
    assert m["mean"][1] == pytest.approx(-0.05, abs=0.02)



def test_ground_cells_keep_their_ground_codes_as_a_witness():
    base = _scene()
    ok = np.ones(base.shape, bool)
    elevated = np.zeros(base.shape, bool)
    elevated[40:80, 20:60] = True
    rng = np.random.default_rng(5)
    target = 0.8 * base + 25.0 + rng.normal(0, 1.0, base.shape)
    other = _scene(seed=9)
    target[40:80, 20:60] = other[40:80, 20:60]  # a changed roof
    target[40:80, 85:115] = other[40:80, 85:115]  # something new on the ground
    offs = EV.relative_offsets(*VIEWS, 2.5, CELL)
    sig = (1.0, 1.0)
    plain = EV.structural_evidence(base, target, ok, ok, 21, offs, sig)
    strat = cells.stratum_evidence(base, target, ok, ok, elevated, 21, offs, sig)
    beside = (slice(45, 75), slice(60, 64))  # ground within a quarter window of the changed roof
    assert np.nanmedian(plain[beside]) > 0.45  # the roof's disagreement fills the ground's windows
    assert np.nanmedian(strat[beside]) < 0.25  # its ground codes alone agree
    assert np.nanmedian(strat[50:70, 95:105]) > 0.8  # changed ground: both witnesses disagree
    # roofs keep their whole window, as the geometric mean with its sign-reversal ratio
    _, rev = EV.structural_evidence(base, target, ok, ok, 21, offs, sig, reversal=True)
    np.testing.assert_allclose(strat[elevated], EV.roof_evidence(plain, rev)[elevated])
    assert np.nanmedian(strat[50:70, 30:50]) > 0.8  # the changed roof: neither witness agrees
    assert np.all(strat[~elevated] <= plain[~elevated])
    # core: the values of the whole-array computation, on the core only
    core = (10, 110, 30, 100)
    sub = cells.stratum_evidence(base, target, ok, ok, elevated, 21, offs, sig, core=core)
    np.testing.assert_allclose(sub, strat[10:110, 30:100], rtol=0, atol=1e-12)
