"""The roofs' step profile inwards from the near-sensor outline (offnadir.change.rim_profile) and
the ``outline`` criterion's "rim gone and moved inwards" route (outline.rim_moved)."""

import numpy as np
import pytest

from offnadir.change import criteria as CR
from offnadir.change import outline as OL
from offnadir.change import rim_profile as RP


def _near_edge_slow(lit, lab, i, j, margin=RP.SHADOW_MARGIN):
    if lit is None:
        return False
    sl = np.s_[max(i - margin, 0):i + margin + 1, max(j - margin, 0):j + margin + 1]
    mine = lit[sl][lab[sl] == lab[i, j]]
    return bool(np.any(mine == 0) and np.any((mine > 0) & (mine < 255)))


def _depth_sums_slow(lab, elevated, xb, xt, ok, step, kmax, erow_of_label, lit_b=None, lit_t=None):
    """The obvious twin: cell_steps' pairs whose next cell inwards is in the patch too and that are
    not near a shadow edge of their patch, each cell's depth by walking +step in Python."""
    pair, _, db, dt = OL.cell_steps(lab, elevated, xb, xt, ok, step)
    m = max(erow_of_label.values()) + 1
    out = np.zeros((m, kmax, RP.NCOL))
    ny, nx = lab.shape
    for i, j in zip(*np.nonzero(pair)):
        v = lab[i, j]
        if v not in erow_of_label:
            continue
        qi, qj = i - 2 * step[0], j - 2 * step[1]
        if not (0 <= qi < ny and 0 <= qj < nx) or lab[qi, qj] != v:
            continue
        pi, pj = i - step[0], j - step[1]
        if any(lit is not None and lit[a, b] == 0 for lit in (lit_b, lit_t) for a, b in ((i, j), (pi, pj))):
            continue
        if any(_near_edge_slow(lit, lab, a, b) for lit in (lit_b, lit_t) for a, b in ((i, j), (pi, pj))):
            continue
        k, qi, qj = None, i, j
        for s in range(kmax):
            qi, qj = qi + step[0], qj + step[1]
            if not (0 <= qi < ny and 0 <= qj < nx) or lab[qi, qj] != v:
                k = s
                break
        if k is None:
            continue
        out[erow_of_label[v], k] += (1.0, db[i, j], dt[i, j], xb[i, j], xt[i, j], xb[i, j] ** 2, xt[i, j] ** 2)
    return out


def _scene(seed=0, n=48):
    rng = np.random.default_rng(seed)
    lab = np.zeros((n, n), np.int64)
    lab[4:20, 5:30] = 1
    lab[22:44, 3:15] = 2
    lab[25:40, 20:45] = 3
    lab[2:12, 33:46] = 4  # ground patch
    elevated = lab > 0
    elevated[lab == 4] = False
    xb, xt = rng.normal(size=(2, n, n)) * 10
    xb[rng.random((n, n)) < 0.03] = np.nan
    ok = rng.random((n, n)) > 0.05
    return lab, elevated, xb, xt, ok


@pytest.mark.parametrize("step", [(0, -1), (0, 1), (-1, 0), (1, 1), (-1, 1)])
@pytest.mark.parametrize("sun", [False, True])
def test_depth_sums_equal_the_slow_walk(step, sun):
    lab, elevated, xb, xt, ok = _scene()
    rows = {1: 0, 2: 1, 3: 2}
    erow_map = np.full(lab.shape, -1, np.int64)
    for v, r in rows.items():
        erow_map[lab == v] = r
    kmax = 6
    lits = ()
    if sun:  # a shadow edge across patches 1 and 3 in the base, a shadowed block and unknown cells in the target
        lit_b = np.full(lab.shape, 120, np.uint8)
        lit_b[:, 24:] = 0
        lit_t = np.full(lab.shape, 200, np.uint8)
        lit_t[28:34, 22:30] = 0
        lit_t[:, :4] = 255
        lits = (lit_b, lit_t)
    got = RP.depth_sums(lab, elevated, xb, xt, ok, step, kmax, (0, lab.shape[0], 0, lab.shape[1]), erow_map, 3, *lits)
    want = _depth_sums_slow(lab, elevated, xb, xt, ok, step, kmax, rows, *lits)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got[..., 0].sum() > 100
    if sun:  # the shadow edges took pairs out
        full = RP.depth_sums(lab, elevated, xb, xt, ok, step, kmax, (0, lab.shape[0], 0, lab.shape[1]), erow_map, 3)
        assert got[..., 0].sum() < full[..., 0].sum()


def test_depth_sums_do_not_depend_on_the_tiling():
    """Two cores whose windows carry a halo of kmax cells sum to the whole scene's table (the walk
    from a core cell ends before it leaves such a window), through the sparse tables the tiles send."""
    lab, elevated, xb, xt, ok = _scene(seed=3)
    n, kmax, step = lab.shape[0], 5, (0, -1)
    ids = np.array([1, 2, 3])
    erow_map = np.where(np.isin(lab, ids), np.searchsorted(ids, lab), -1)
    lit_b = np.full(lab.shape, 120, np.uint8)
    lit_b[:, 19:] = 0  # a shadow edge near the tiles' border
    whole = RP.depth_sums(lab, elevated, xb, xt, ok, step, kmax, (0, n, 0, n), erow_map, 3, lit_b, None)
    parts = []
    for j0, j1 in ((0, 21), (21, n)):
        w0, w1 = max(j0 - kmax, 0), min(j1 + kmax, n)
        sl = np.s_[:, w0:w1]
        em = np.full(lab.shape, -1, np.int64)
        em[:, j0:j1] = erow_map[:, j0:j1]
        part = RP.depth_sums(lab[sl], elevated[sl], xb[sl], xt[sl], ok[sl], step, kmax,
                             (0, n, j0 - w0, j1 - w0), em[sl], 3, lit_b[sl], None)
        parts.append(RP.sparse(ids, part))
    keys = np.concatenate([p[0] for p in parts])
    vals = np.concatenate([p[1] for p in parts])
    np.testing.assert_allclose(RP.dense(ids, (keys, vals, kmax)), whole, rtol=1e-12, atol=1e-12)


def _roof(profile_t, profile_b=None, n_pairs=20, tail=12):
    """A profile table of one roof from per-depth steps, followed by ``tail`` depths of step 1
    (the roof's typical texture), and the outline sums of its first depth."""
    pt = np.r_[np.asarray(profile_t, np.float64), np.ones(tail)]
    pb = np.r_[np.ones(len(profile_t)) if profile_b is None else np.asarray(profile_b, np.float64), np.ones(tail)]
    prof = np.zeros((1, len(pt), 3))
    prof[0, :, 0] = n_pairs
    prof[0, :, 1] = n_pairs * pb
    prof[0, :, 2] = n_pairs * pt
    mb, mt = pb.mean(), pt.mean()
    outline = np.array([[len(pt) * n_pairs, len(pt) * n_pairs * mb, len(pt) * n_pairs * mt, n_pairs,
                         n_pairs * pb[0], n_pairs * pt[0]]])
    return prof, outline


def test_moved_rim_sees_a_new_edge_inside_the_roof():
    # raised: facade (flat) for the first 3 steps, the facade | roof edge at depth 3
    prof, _ = _roof([0.2, 0.3, 0.3, 4.0], [1.3, 1.0, 1.0, 1.0])
    v, k = RP.moved_rim(prof, 2.0, 8)
    mt = prof[0, :, 2].sum() / prof[0, :, 0].sum()
    mb = prof[0, :, 1].sum() / prof[0, :, 0].sum()
    assert k[0] == 3 and v[0] == pytest.approx(min(np.log2(4.0 / mt), np.log2(4.0 / mt * mb)))
    assert v[0] >= 1.0
    # the same edge in the base at that depth (a roof's own structure): not new
    prof, _ = _roof([0.2, 0.3, 0.3, 4.0], [1.3, 1.0, 1.0, 3.0])
    v, _ = RP.moved_rim(prof, 2.0, 8)
    assert v[0] < 1.0
    # an edge at depth 1 is within the co-registration's one cell: not a move
    prof, _ = _roof([0.2, 4.0])
    v, _ = RP.moved_rim(prof, 2.0, 8)
    assert v[0] < 1.0
    # too few pairs at every depth from MIN_MOVE_DEPTH on: no value
    prof, _ = _roof([0.2, 0.3, 4.0], n_pairs=5)
    v, k = RP.moved_rim(prof, 2.0, 8)
    assert np.isnan(v[0]) and k[0] == -1


def _table(prof, outline):
    tb = CR.TargetTable(ids=np.array([7]), n_cells=np.array([400.0]), elevated=np.array([True]),
                        used=np.array([400.0]), mean_rob=np.zeros((1, 1)), frac_above=np.zeros((1, 3)),
                        c0=np.zeros((1, 6)), profile=None, shift_cells=np.zeros(0))
    tb.outline = outline
    if prof is not None:
        tb.extra["rim_profile"] = (np.array([0]), prof)
    return tb


def test_outline_criterion_takes_a_moved_rim_without_a_base_rim():
    # the base's rim is faint (1.3 times the roof's step: the rim_lost route cannot fire), the target
    # lost it at the outline and shows the facade | roof edge 3 steps inside
    prof, outline = _roof([0.2, 0.3, 0.3, 4.0], [1.3, 1.0, 1.0, 1.0])
    _, without = CR.outline(_table(None, outline), None)
    value, score = CR.outline(_table(prof, outline), None)
    b1, t1 = OL.rim_ratios(outline)
    assert b1[0] < OL.EDGE_FACTOR and without[0] < 0.5
    moved, _ = RP.moved_rim(prof, OL.EDGE_FACTOR, OL.MIN_EDGE_PAIRS)
    assert score[0] >= 0.5 and value[0] == pytest.approx(min(-np.log2(t1[0]), moved[0]))
    assert RP.rim_went(prof, OL.EDGE_FACTOR, OL.MIN_EDGE_PAIRS)[0] == pytest.approx(value[0])
    # the target's rim still at the outline (t1 about 1): no move whatever the profile inside shows
    prof, outline = _roof([1.0, 0.3, 0.3, 4.0], [1.3, 1.0, 1.0, 1.0])
    _, score = CR.outline(_table(prof, outline), None)
    assert score[0] < 0.5


def test_a_shadow_edge_on_the_roof_is_no_moved_rim():
    """A neighbour's cast shadow edge inside a roof moves with the sun: the base has it 4 steps in,
    the target 9 steps in (an edge the base lacks at that depth). With the predicted illumination the
    pairs near it are left out and no move is seen; without it, the shadow edge reads as a move."""
    n = 30
    lab = np.zeros((n, n), np.int64)
    lab[5:25, 5:25] = 1
    elevated = lab > 0
    rng = np.random.default_rng(1)
    xb = rng.normal(size=(n, n)) * 2 + 100
    xt = rng.normal(size=(n, n)) * 2 + 100
    lit_b = np.full((n, n), 150, np.uint8)
    lit_t = lit_b.copy()
    # the sensor is towards -j (step (0, -1)): the outline is column 5, depth = column - 5
    lit_b[:, 5 + 4:] = 0
    lit_t[:, 5 + 9:] = 0
    xb[lit_b == 0] -= 60
    xt[lit_t == 0] -= 60
    ok = np.ones((n, n), bool)
    erow = np.where(lab == 1, 0, -1)
    core = (0, n, 0, n)
    blind = RP.depth_sums(lab, elevated, xb, xt, ok, (0, -1), 12, core, erow, 1)
    seeing = RP.depth_sums(lab, elevated, xb, xt, ok, (0, -1), 12, core, erow, 1, lit_b, lit_t)
    assert RP.moved_rim(blind, 2.0, 8)[0][0] >= 1.0
    assert not RP.moved_rim(seeing, 2.0, 8)[0][0] >= 1.0


def _raised_box(dark=60.0, base_strip=0.0, width=4, seed=2, n=30):
    """A 20x20 roof seen towards -j (outline at column 5): the target shows a flat facade ``dark``
    below the roof level (as textured as the roof: its rim at the outline stays) in its first ``width``
    columns and the roof beyond; the base the roof (its
    strip offset by ``base_strip``)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((n, n), np.int64)
    lab[5:25, 5:25] = 1
    xb = rng.normal(size=(n, n)) * 10 + 300
    xt = rng.normal(size=(n, n)) * 10 + 300
    xb[:, 5:5 + width] += base_strip
    xt[:, 5:5 + width] = 300 - dark + rng.normal(size=(n, width)) * 10  # a textured facade
    xb[lab == 0] = 100
    xt[lab == 0] = 100
    erow = np.where(lab == 1, 0, -1)
    return RP.depth_sums(lab, lab > 0, xb, xt, np.ones((n, n), bool), (0, -1), 16, (0, n, 0, n), erow, 1)


def test_strip_level_reads_the_facade_strip_against_the_roof_beyond():
    prof = _raised_box()
    moved, depth = RP.moved_rim(prof, 2.0, 8)
    assert depth[0] == 3 and moved[0] >= 1.0  # the facade | roof edge between columns 8 and 9
    dt, db = RP.strip_level(prof, depth, 8)
    # strip (depths 1..3) 60 below the roof, in the roof's per-cell sd (the patch mixes both levels)
    x = np.r_[np.full(3 * 20, 240.0), np.full(15 * 20, 300.0)]
    assert dt[0] == pytest.approx(-60.0 / x.std(), rel=0.2)
    assert abs(db[0]) < 0.5
    assert RP.facade_strip(prof, 2.0, 8)[0] >= 1.0
    # too few cells on either side, or no edge: undefined
    assert np.isnan(RP.strip_level(prof, np.array([0]), 8)[0][0])
    assert np.isnan(RP.strip_level(prof, depth, 100)[0][0])


def test_facade_strip_needs_a_darker_strip_that_the_base_does_not_have():
    # a brighter strip (a neighbour's new shadow over the roof beyond it): not a dark facade
    assert np.isnan(RP.facade_strip(_raised_box(dark=-60.0), 2.0, 8)[0])
    # the base's strip as dark (the roof's own structure): its offset is more than half the target's
    assert not RP.facade_strip(_raised_box(base_strip=-40.0), 2.0, 8)[0] >= 1.0
    # a strip only a little darker than the roof's texture: under one standard deviation
    assert not RP.facade_strip(_raised_box(dark=5.0), 2.0, 8)[0] >= 1.0
    # the old-style three-column tables carry no level: undefined
    assert np.isnan(RP.facade_strip(_raised_box()[..., :3], 2.0, 8)[0])


def test_facade_dark_from_the_sun_and_the_view():
    # hard simulator: sensor at azimuth 270, sun from the south-east (134 deg, 40 deg high): wall in its own shade
    assert RP.facade_dark(134.4, 39.8, 270.0, 2.0)
    # high sun a little west of south: direct light grazing the wall, far under half the roof's
    assert RP.facade_dark(189.0, 70.0, 270.0, 2.0)
    # low sun straight onto the wall the sensor sees: brighter than the roof
    assert not RP.facade_dark(270.0, 30.0, 270.0, 2.0)
    # the bound is the roof's direct irradiance over the edge factor
    e = 30.0
    daz = np.degrees(np.arccos(np.tan(np.radians(e)) / 2.0))
    assert RP.facade_dark(270.0 + daz + 0.5, e, 270.0, 2.0) and not RP.facade_dark(270.0 + daz - 0.5, e, 270.0, 2.0)
    assert not RP.facade_dark(float("nan"), 30.0, 270.0, 2.0) and not RP.facade_dark(134.0, -5.0, 270.0, 2.0)


def test_outline_criterion_reads_the_strip_only_where_the_facade_is_dark():
    prof = _raised_box()
    tb = _table(prof, np.zeros((1, 6)))
    _, score = CR.outline(tb, None)
    assert score[0] < 0.5  # no sun known: only the rim routes, which this roof's sums do not pass
    tb.extra["facade_dark"] = True
    value, score = CR.outline(tb, None)
    assert score[0] >= 0.5 and value[0] == pytest.approx(RP.facade_strip(prof, 2.0, 8)[0])


def test_facade_strip_either_sign_where_the_facade_is_lit():
    # a lit facade brighter than the roof (a white facade on a dark roof): found with either sign only
    bright = _raised_box(dark=-60.0)
    assert np.isnan(RP.facade_strip(bright, 2.0, 8)[0])
    assert RP.facade_strip(bright, 2.0, 8, either_sign=True)[0] >= 1.0
    # the same bounds along the sign: a dark strip equally, the base's strip as bright, a small offset
    assert RP.facade_strip(_raised_box(), 2.0, 8, either_sign=True)[0] == pytest.approx(
        RP.facade_strip(_raised_box(), 2.0, 8)[0])
    assert not RP.facade_strip(_raised_box(dark=-60.0, base_strip=40.0), 2.0, 8, either_sign=True)[0] >= 1.0
    assert not RP.facade_strip(_raised_box(dark=-5.0), 2.0, 8, either_sign=True)[0] >= 1.0
    # an unchanged roof (no facade in the target's strip): no new edge, nothing either way
    assert not RP.facade_strip(_raised_box(dark=0.0), 2.0, 8, either_sign=True)[0] >= 1.0


def test_outline_criterion_reads_a_brighter_strip_only_where_the_facade_is_lit():
    prof = _raised_box(dark=-60.0)
    tb = _table(prof, np.zeros((1, 6)))
    tb.extra["facade_dark"] = None  # no sun: no strip read
    assert CR.outline(tb, None)[1][0] < 0.5
    tb.extra["facade_dark"] = True  # dark facade predicted: a brighter strip is not one
    assert CR.outline(tb, None)[1][0] < 0.5
    tb.extra["facade_dark"] = False  # lit: the facade's albedo sets the sign
    value, score = CR.outline(tb, None)
    assert score[0] >= 0.5 and value[0] == pytest.approx(RP.facade_strip(prof, 2.0, 8, either_sign=True)[0])
