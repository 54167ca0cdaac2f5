"""sun_range: the roof-wide shadow rules count only cells whose shadow state holds over the sun's range."""

import math

import numpy as np

from offnadir.change import longer_shadow as LS
from offnadir.change import missing_shadow as MS
from offnadir.change import shadow_observed as SO
from offnadir.change import sun_range as SR
from offnadir.change.options import ChangeOptions
from offnadir.change.tileio import Context, MemoryIO
from offnadir.cube.plan import Tile

CELL, AZ, EL = 0.5, math.radians(180.0), math.radians(45.0)


def test_ranges_are_two_sigmas_recorded_and_logged(caplog):
    import logging

    report = [dict(image="base", azimuth=180.0, elevation=30.0, source="config"),
              dict(image="target", azimuth=150.0, elevation=40.0, source="estimated", sigma_azimuth=0.5,
                   sigma_elevation=0.25),
              dict(image="other", azimuth=None, elevation=None, source="none")]
    with caplog.at_level(logging.INFO):
        r = SR.ranges(report)
    assert np.allclose(r[1], (math.radians(1.0), math.radians(0.5)))
    assert np.allclose(r[0], (math.radians(0.02), math.radians(0.02)))  # metadata: SIGMA_KNOWN_DEG
    assert r[2] == (0.0, 0.0) and "rules_sun_range_deg" not in report[2]
    assert report[1]["rules_sun_range_deg"] == [1.0, 0.5]
    assert "+-1.00 deg azimuth, +-0.50 deg elevation" in caplog.text
    assert SR.ends((AZ, EL), (0.0, 0.0)) == []
    assert len(SR.ends((AZ, EL), (0.01, 0.01))) == 4


def test_a_range_that_moves_no_shadow_by_a_tenth_of_a_cell_is_dropped():
    # a given sun (SIGMA_KNOWN_DEG, +-0.02 deg) over 30 m of relief at 30 deg: the tip moves ~0.04 m,
    # under a tenth of a 0.5 m cell; the estimate's +-1 deg moves it metres
    report = [dict(image="base", azimuth=180.0, elevation=30.0, source="metadata"),
              dict(image="target", azimuth=150.0, elevation=30.0, source="estimated", sigma_azimuth=0.5,
                   sigma_elevation=0.25)]
    shift = SR.reach_shift(30.0, 30.0, 0.02, 0.02)
    assert 0.0 < shift < 0.1 * CELL
    assert SR.reach_shift(50.0, 30.0, 1.0, 0.5) > 1.0
    r = SR.ranges(report, relief=30.0, cell=CELL)
    assert r[0] == (0.0, 0.0) and report[0]["rules_sun_range_deg"] == [0.0, 0.0]
    assert np.allclose(r[1], (math.radians(1.0), math.radians(0.5)))
    # over 2 km of relief the same given sun's range does move shadows: kept
    assert SR.ranges([dict(report[0])], relief=2000.0, cell=CELL)[0] != (0.0, 0.0)


def _box():
    h = np.zeros((96, 96))
    lab = np.zeros(h.shape, np.int64)
    lab[60:80, 30:60] = 1
    h[lab > 0] = 8.0
    return h, lab


def test_edge_cells_of_a_shadow_move_within_the_range_deep_ones_do_not():
    h, _ = _box()
    # the sun in the south at 45 deg: 8 m cast 16 cells of shadow north of row 60 (rows 44-59)
    ii = np.array([58, 50, 45, 44, 43, 70])
    jj = np.array([45, 45, 45, 45, 45, 45])
    none = SR.shadowed_at_ends(h, ii, jj, (AZ, EL), (0.0, 0.0), CELL, 0.3, 100.0)
    assert none.shape == (0, 6)
    rng = (math.radians(2.0), math.radians(4.0))  # 41-49 deg: the edge (7.7 m above the ray: 0.3 m tolerance) between rows 42.3 and 46.6
    s = SR.shadowed_at_ends(h, ii, jj, (AZ, EL), rng, CELL, 0.3, 100.0)
    assert s.shape == (4, 6)
    assert s[:, :2].all()  # deep in the shadow under every sun of the range
    assert s[:, 2:5].any(axis=0).all() and not s[:, 2:5].all(axis=0).any()  # the moving edge
    assert not s[:, 5].any()  # the roof itself (no higher caster)


def test_held_over_range_is_the_reduction_of_every_end_and_the_cells_march_as_the_window_march():
    from offnadir.change.sun_kernels import caster_distances_at, march_cells, window_top

    rng_ = np.random.default_rng(4)
    h, _ = _box()
    h = h + rng_.uniform(0.0, 1.5, h.shape)  # a rough ground: many grazing rays
    h[5, 7] = np.nan
    ii, jj = np.nonzero(rng_.random(h.shape) < 0.3)
    ii, jj = np.append(ii, 5), np.append(jj, 7)  # a NaN cell: -1 as the window march
    for az in (AZ, math.radians(33.0), math.radians(271.0)):
        mask = np.zeros(h.shape, bool)
        mask[ii, jj] = True
        want, got = np.empty(h.shape), np.empty(len(ii))
        caster_distances_at(h, math.tan(EL) * CELL, -math.cos(az), math.sin(az), 0.3, 100.0, mask, want)
        march_cells(h, ii, jj, math.tan(EL) * CELL, -math.cos(az), math.sin(az), window_top(h), 0.3, 100.0, got)
        np.testing.assert_array_equal(got, want[ii, jj])
        assert (got > 0).any() and (got < 0).any()
        rng = (math.radians(3.0), math.radians(5.0))
        s = SR.shadowed_at_ends(h, ii, jj, (az, EL), rng, CELL, 0.3, 100.0)
        every = SR.held_over_range(h, ii, jj, (az, EL), rng, CELL, 0.3, 100.0, True)
        lit = SR.held_over_range(h, ii, jj, (az, EL), rng, CELL, 0.3, 100.0, False)
        np.testing.assert_array_equal(every, s.all(axis=0))
        np.testing.assert_array_equal(lit, ~s.any(axis=0))
        assert s.all(axis=0).any() and (~s.any(axis=0)).any() and (s.any(axis=0) & ~s.all(axis=0)).any()
    assert SR.held_over_range(h, ii, jj, (AZ, EL), (0.0, 0.0), CELL, 0.3, 100.0, True) is None
    assert SR.held_over_range(h, ii[:0], jj[:0], (AZ, EL), (0.1, 0.1), CELL, 0.3, 100.0, False) is None


def _scene(raise_b, seed):
    from offnadir.change.sun_kernels import caster_distances

    h, lab = _box()
    truth = h + np.where(lab > 0, raise_b, 0.0)
    d_pred, d_true = np.empty(h.shape), np.empty(h.shape)
    rise = math.tan(EL) * CELL
    caster_distances(h, rise, 0.0 - math.cos(AZ), math.sin(AZ), 0.3, 200.0, d_pred)
    caster_distances(truth, rise, -math.cos(AZ), math.sin(AZ), 0.3, 200.0, d_true)
    x = np.where(d_true > 0, 0.2, 0.8) + np.random.default_rng(seed).normal(0, 0.05, h.shape)
    codes = np.where(d_pred > 0, 0, 100).astype(np.uint8)
    return h, lab, codes, x


def _ctx_io(raise_b, sun_range):
    h, lab, codes, x = _scene(raise_b, 1)
    x0 = _scene(0.0, 2)[3]
    n = h.shape[0]
    clf = SO.calibrate(x, codes, np.ones(h.shape, bool))
    arrays = {"dsm": h.astype(np.float32), "illumination": np.stack([codes, codes]), "patch": lab,
              "elevated": (lab > 0).astype(np.uint8), "visible": np.ones((2, n, n), np.uint8),
              "value": np.stack([x0, x])[:, None].astype(np.float32)}
    ctx = Context(shape=(n, n), n_images=2, n_bands=1, cell=CELL, opts=ChangeOptions(), targets=(1,),
                  h_range=(0.0, 8.0), sun=((AZ, EL),) * 2, shadow_classes=(clf, clf), sun_range=sun_range)
    return ctx, MemoryIO(arrays), Tile(0, 0, 0, n, 0, n)


def test_the_rules_sums_leave_out_the_band_the_range_moves():
    tiny = ((math.radians(0.02),) * 2,) * 2
    wide = ((math.radians(2.0), math.radians(4.0)),) * 2
    # longer shadows: a 3 m raise casts 6 cells more; the fringe (4 cells) shrinks by the band the
    # lowest sun of the range shadows, and the raise stays decided where cells remain
    n_fr = {}
    for name, rng in (("none", ()), ("tiny", tiny), ("wide", wide)):
        ctx, io, tile = _ctx_io(3.0, rng)
        s = LS.tile_sums(io, ctx, tile)
        n_fr[name] = s["rows"]["lsh_n"][:, 1].sum()
        assert s["rows"]["lsh_s"][:, 1].sum() > 0  # seen shadowed
    assert n_fr["tiny"] == n_fr["none"] and 0 < n_fr["wide"] < n_fr["none"]
    # missing shadows: the sure cells (already MARGIN cells inside the edge) shrink once the edge
    # moves further than that (37-53 deg: 4 cells), the deep ones stay
    n_sh = {}
    wider = ((math.radians(4.0), math.radians(8.0)),) * 2
    for name, rng in (("none", ()), ("tiny", tiny), ("wide", wider)):
        ctx, io, tile = _ctx_io(0.0, rng)
        n_sh[name] = MS.tile_sums(io, ctx, tile)["rows"]["msh_n"][:, 1].sum()
    assert n_sh["tiny"] == n_sh["none"] and 0 < n_sh["wide"] < n_sh["none"]


def test_the_halo_holds_the_lowest_sun_of_the_range():
    ctx, _, _ = _ctx_io(0.0, ((0.0, math.radians(10.0)),) * 2)
    ctx0, _, _ = _ctx_io(0.0, ())
    assert ctx.sun_halo() > ctx0.sun_halo()
