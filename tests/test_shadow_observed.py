"""Shadows seen, not only predicted (offnadir.change.shadow_observed, offnadir.change.missing_shadow):
the per-image classifier calibrated on the predicted shadows finds the shadows the simulator's ray
tracer casts (an independent code path) from a surface the prediction did not know, the caster walk
and the caster lookup land where the geometry says, missing shadows accuse the roof that went and
no other, the tile sums do not depend on the tiling, and a run records what it decided."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from offnadir.change import kernels as K
from offnadir.change import missing_shadow as MS
from offnadir.change import shadow_observed as SO

CELL = 0.5
AZ, EL = 160.0, 35.0  # grid azimuth and elevation of the sun (degrees)


def _boxes(n=160, seed=3, count=14):
    """Flat ground at 100 m with ``count`` boxes 5-20 m high; also their masks."""
    rng = np.random.default_rng(seed)
    h = np.full((n, n), 100.0)
    masks = []
    for _ in range(count):
        i, j = rng.integers(10, n - 40, 2)
        a, b = rng.integers(8, 20, 2)
        m = np.zeros((n, n), bool)
        m[i:i + a, j:j + b] = True
        h[m] = np.maximum(h[m], 100 + rng.uniform(5, 20))
        masks.append(m)
    return h, masks


def _predicted(h):
    buf = np.empty(h.shape, np.uint8)
    K.illumination(np.ascontiguousarray(h), CELL, math.radians(AZ), math.radians(EL), 0.3, 1.0, 1e4, buf)
    return buf


def _ray_traced(h):
    from offnadir.simulate.sun import sun_vector
    from offnadir.simulate.views import cast_shadows

    return cast_shadows(h, sun_vector(EL, AZ), CELL, 0.3).astype(bool)


def _image(shadow, seed=0, sky=0.35):
    """Textured surface (lognormal reflectance) lit by sun + sky, sky only in ``shadow``, + noise."""
    rng = np.random.default_rng(seed)
    refl = np.exp(rng.normal(0.0, 0.25, shadow.shape)) * 200.0
    return refl * np.where(shadow, sky, 1.0) + rng.normal(0.0, 3.0, shadow.shape)


def test_classifier_separates_the_predicted_classes_whatever_the_radiometry():
    h, _ = _boxes()
    codes = _predicted(h)
    x = _image(_ray_traced(h))
    ok = np.ones(h.shape, bool)
    clf = SO.calibrate(x, codes, ok)
    assert clf is not None and clf.accuracy_shadow > 0.85 and clf.accuracy_lit > 0.85
    assert np.all(np.diff(clf.log_lr) <= 1e-12)  # more light never makes "shadow" likelier
    sh, lit = SO.training_classes(codes, ok)
    assert np.median(x[sh]) < clf.threshold < np.median(x[lit])
    # a monotone radiometric change (gain, offset, gamma) classifies every cell the same way
    clf2 = SO.calibrate(3.0 * np.sqrt(x.clip(1.0)) + 7.0, codes, ok)
    a = clf.cell_log_odds(x) >= 0
    b = clf2.cell_log_odds(3.0 * np.sqrt(x.clip(1.0)) + 7.0) >= 0
    assert np.mean(a == b) > 0.995
    # the report rebuilds the classifier (it travels to the workers through the store's attributes)
    again = SO.ShadowClassifier.from_report(json.loads(json.dumps(clf.report())))
    assert np.array_equal(again.cell_log_odds(x), clf.cell_log_odds(x))


def test_too_few_cells_give_no_classifier():
    codes = np.full((40, 40), 100, np.uint8)
    codes[:5, :5] = 0
    assert SO.calibrate(np.random.default_rng(0).random((40, 40)), codes, np.ones((40, 40), bool)) is None


def test_pool_adjacent_violators_gives_the_nonincreasing_least_squares_fit():
    assert np.allclose(SO._pav_nonincreasing([1.0, 3.0, 2.0, 0.0], [1, 1, 1, 1]), [2.0, 2.0, 2.0, 0.0])
    y, w = np.array([0.0, 4.0, 1.0, 5.0]), np.array([3.0, 1.0, 1.0, 1.0])
    fit = SO._pav_nonincreasing(y, w)
    assert np.all(np.diff(fit) <= 1e-12) and np.isclose(np.sum(w * fit), np.sum(w * y))
    assert np.allclose(SO._pav_nonincreasing([5.0, 4.0, 1.0], [1, 2, 3]), [5.0, 4.0, 1.0])


def test_new_and_removed_boxes_show_as_unexplained_and_missing_shadows():
    h1, masks = _boxes()
    h2 = h1.copy()
    h2[20:32, 100:114] = 118.0  # built after the DSM
    gone = masks[0]
    h2[gone] = 100.0  # demolished
    codes = _predicted(h1)  # what the change stage predicts from the old DSM
    true2 = _ray_traced(h2)
    x = _image(true2, seed=1)
    ok = np.ones(h1.shape, bool)
    clf = SO.calibrate(x, codes, ok)
    seen = SO.observed_codes(codes, x, ok, clf)
    unexplained = true2 & (codes != 0) & (h2 == 100.0)
    missing = ~true2 & (codes == 0) & (h2 == 100.0)
    lit_both = ~true2 & (codes != 0)
    assert unexplained.sum() > 100 and missing.sum() > 50
    assert np.mean(seen[unexplained] == 0) > 0.8
    assert np.mean(seen[missing] == SO.SEEN_LIT) > 0.8
    assert np.mean(seen[lit_both] == 0) < 0.05
    # cells outside ``where`` keep their predicted code
    kept = SO.observed_codes(codes, x, ok, clf, where=np.zeros(h1.shape, bool))
    assert np.array_equal(kept, codes)


def test_caster_walk_ends_where_the_shadow_ends_and_knows_whether_the_old_surface_casts_it():
    h = np.zeros((30, 12))
    shadow = np.zeros(h.shape, bool)
    shadow[10:15, 5] = True  # a shadow 5 cells long, the sun due north (grid azimuth 0)
    si, sj, ei, ej, lacks = SO.caster_walk(shadow, shadow, h, 1.0, 0.0, math.radians(45.0), 0.3, 50)
    assert set(zip(ei, ej)) == {(9, 5)}  # every walk leaves the shadow at its northern end
    assert lacks.all()  # flat old ground cannot cast a 5 m long shadow at 45 degrees
    counts = SO.missing_casters(shadow, shadow, h, 1.0, 0.0, math.radians(45.0), 0.3, 50)
    assert counts[9, 5] == 5 and counts.sum() == 5
    h[9, 5] = 10.0  # a 10 m caster there explains all of it
    *_, lacks = SO.caster_walk(shadow, shadow, h, 1.0, 0.0, math.radians(45.0), 0.3, 50)
    assert not lacks.any()


def test_caster_of_each_shadow_cell_is_the_box_that_casts_it():
    h, masks = _boxes(count=6, seed=5)
    codes = _predicted(h)
    ci, cj = MS.shadow_casters(h, codes, CELL, math.radians(AZ), math.radians(EL), 0.3, 1e4)
    cast = ci >= 0
    assert cast.sum() > 200
    assert np.all(h[ci[cast], cj[cast]] > 100.0)  # on a box
    # the caster is on the sun's side of its shadow
    ii, jj = np.nonzero(cast)
    di, dj = -math.cos(math.radians(AZ)), math.sin(math.radians(AZ))
    assert np.all((ci[cast] - ii) * di + (cj[cast] - jj) * dj > 0)


def _demolished_scene(seed=7):
    h, masks = _boxes(count=10, seed=seed)
    labels = np.zeros(h.shape, np.int64)
    for k, m in enumerate(masks, 1):
        labels[m & (h > 100)] = k
    gone = 3
    h_new = h.copy()
    h_new[labels == gone] = 100.0
    return h, labels, gone, _image(_ray_traced(h), seed=2), _image(_ray_traced(h_new), seed=3)


def test_missing_shadow_accuses_the_demolished_roof_only():
    h, labels, gone, base, target = _demolished_scene()
    codes = _predicted(h)
    ok = np.ones(h.shape, bool)
    az, el = math.radians(AZ), math.radians(EL)
    ci, cj = MS.shadow_casters(h, codes, CELL, az, el, 0.3, 1e4)
    sure, _ = SO.training_classes(codes, ok)
    sums = {}
    for k, x in enumerate((base, target)):
        clf = SO.calibrate(x, codes, ok)
        ids, n, s = MS.caster_log_lr_sums(labels, ci, cj, sure, x, clf)
        sums[k] = (ids, n, s)
    ids = sums[1][0]
    assert np.array_equal(ids, sums[0][0]) and gone in ids
    rows = {"msh_n": np.stack([sums[0][1], sums[1][1]], 1).astype(float),
            "msh_llr": np.stack([sums[0][2], sums[1][2]], 1)}
    report = [{}, {}]
    out = MS.decide({"ids": ids, "rows": rows}, (1,), ["base", "target"], report)
    got_ids, post = out[1]
    assert set(got_ids[post >= 0.5]) == {gone}
    assert report[1]["missing_shadows"]["casters_gone"] == 1
    # a roof whose shadow the base does not show either is not accused (the prediction is unconfirmed)
    rows["msh_llr"][:, 0] = rows["msh_llr"][:, 1]
    post = MS.decide({"ids": ids, "rows": rows}, (1,))[1][1]
    assert not np.any(post >= 0.5)


def test_a_shadow_slightly_brighter_than_usual_is_not_a_missing_one():
    """Hundreds of shadow cells a little brighter than the shadows the classifier learnt (a shadow cast
    on a brighter surface) sum to a large ratio, but their mean stays on the shadow side of the
    midpoint between the classes: not gone. A shadow of lit ground's brightness is."""
    rng = np.random.default_rng(4)
    codes = np.full((200, 200), 100, np.uint8)
    codes[:, :60] = 0
    # shadows of one narrow brightness, lit ground of many materials
    x = np.where(codes == 0, rng.normal(100.0, 10.0, codes.shape), rng.normal(140.0, 40.0, codes.shape))
    clf = SO.calibrate(x, codes, np.ones(codes.shape, bool))
    assert clf.mean_llr_shadow > 0 > clf.mean_llr_lit
    mid = MS.midpoint(clf)
    assert mid > 0
    report = [{"shadow_classifier": clf.report()}, {"shadow_classifier": clf.report()}]
    base_ok = -(clf.cell_log_odds(rng.normal(100.0, 10.0, 900)) - clf.prior).sum()  # the base sees it
    for mean, sd, gone in ((117.0, 10.0, False), (140.0, 40.0, True)):
        xs = rng.normal(mean, sd, 900)
        s_t = -(clf.cell_log_odds(xs) - clf.prior).sum()
        assert (s_t / 900 >= mid) == gone
        rows = {"msh_n": np.array([[900.0, 900.0]]), "msh_llr": np.array([[base_ok, s_t]])}
        post = MS.decide({"ids": np.array([7]), "rows": rows}, (1,), report=report)[1][1]
        assert (post[0] >= 0.5) == gone
        if not gone:
            assert s_t / MS.CORRELATED > 5  # the sum alone would have said "gone"


def test_prior_is_the_share_the_likelihood_ratios_imply():
    rng = np.random.default_rng(0)
    y = np.where(rng.random(20000) < 0.2, rng.normal(1.0, 1.0, 20000), rng.normal(-1.0, 1.0, 20000))
    pi = 1.0 / (1.0 + math.exp(-MS.prior_log_odds(2.0 * y)))  # log N(y; 1, 1) / N(y; -1, 1) = 2y
    assert pi == pytest.approx(0.2, abs=0.02)
    assert MS.prior_log_odds([]) == 0.0


def test_raise_gone_decides_the_roof_changed_and_keeps_higher_probabilities():
    p = np.array([0.1, 0.4, 0.8, np.nan, 0.2])
    gone = np.array([0.9, 0.9, 0.9, 0.9, 0.1])
    out = MS.raise_gone(p, gone)
    assert np.array_equal(out[:3], [0.5, 0.5, 0.8])
    assert np.isnan(out[3]) and out[4] == 0.2


def test_tile_sums_do_not_depend_on_the_tiling():
    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    h, labels, gone, base, target = _demolished_scene()
    n = h.shape[0]
    codes = _predicted(h)
    ok = np.ones(h.shape, bool)
    clfs = tuple(SO.calibrate(x, codes, ok) for x in (base, target))
    arrays = {"dsm": h.astype(np.float32), "illumination": np.stack([codes, codes]),
              "patch": labels, "elevated": (labels > 0).astype(np.uint8),
              "visible": np.ones((2, n, n), np.uint8), "value": np.stack([base, target])[:, None].astype(np.float32)}
    sun = ((math.radians(AZ), math.radians(EL)),) * 2
    ctx = Context(shape=(n, n), n_images=2, n_bands=1, cell=CELL, opts=ChangeOptions(), targets=(1,),
                  h_range=(100.0, 120.0), sun=sun, shadow_classes=clfs)
    io = MemoryIO(arrays)
    whole = MS.tile_sums(io, ctx, Tile(0, 0, 0, n, 0, n))
    step = 50
    parts = [MS.tile_sums(io, ctx, Tile(a // step, b // step, a, min(a + step, n), b, min(b + step, n)))
             for a in range(0, n, step) for b in range(0, n, step)]
    tiled = MS.add_sums(*parts)
    assert np.array_equal(whole["ids"], tiled["ids"]) and gone in whole["ids"]
    for k in ("msh_n", "msh_llr"):
        assert np.allclose(whole["rows"][k], tiled["rows"][k], rtol=0, atol=1e-9)


def test_a_run_records_each_images_classifier_and_the_missing_shadows(tmp_path):
    """A small simulated scene through ``offnadir detect``: the store's ``change_sun`` attribute holds
    each image's calibrated classifier and, for the target, what the missing-shadow test decided."""
    import xarray as xr

    from offnadir.cli import main

    d = tmp_path / "scene"
    assert main(["simulate", str(d), "--seed", "0", "--size", "128"]) == 0
    out = tmp_path / "out.zarr"
    assert main(["detect", "--dsm", str(d / "dsm.tif"), "--base", str(d / "base.tif"), "--target",
                 str(d / "target.tif"), "-o", str(out), "--workers", "1", "--quiet"]) == 0
    suns = json.loads(xr.open_zarr(out).attrs["change_sun"])
    for rec in suns:
        c = rec["shadow_classifier"]
        assert c["n_shadow"] >= SO.MIN_CELLS and c["n_lit"] >= SO.MIN_CELLS
        assert c["accuracy_shadow"] > 0.5 and c["accuracy_lit"] > 0.5
    ms = suns[1]["missing_shadows"]
    assert ms["casters_tested"] > 0 and 0 <= ms["casters_gone"] <= ms["casters_tested"]
    assert 0.0 < ms["prior_gone_share"] < 1.0


def test_a_shadow_on_a_bright_roof_reads_shadow_relative_to_that_roofs_lit_part():
    """Ground of reflectance ~200 trains the classifier; a roof three times as bright, half in a
    shadow (sky light 0.35): its shadowed cells are brighter than lit ground, so the pooled classifier
    reads them lit; read relative to the roof's own lit cells they are shadow. A roof with no lit
    cell of its own is not read at all; a roof darker than the lit class is not rescaled (factor <= 1)."""
    rng = np.random.default_rng(5)
    n = 120
    shadow = np.zeros((n, n), bool)
    shadow[:, :40] = True
    codes = np.where(shadow, 0, 100).astype(np.uint8)
    x = _image(shadow, seed=1)
    clf = SO.calibrate(x, codes, np.ones((n, n), bool))
    assert clf is not None and math.isfinite(clf.lit_median)
    roof_sh = np.exp(rng.normal(0.0, 0.25, 200)) * 600.0 * 0.35  # shadowed part of the bright roof
    roof_lit = np.exp(rng.normal(0.0, 0.25, 200)) * 600.0  # its lit part
    dark_lit = np.full(30, 0.5 * clf.lit_median)  # a dark roof's lit cells
    assert np.mean(clf.cell_log_odds(roof_sh) >= 0) < 0.2  # pooled: mostly "lit"
    xs = np.r_[roof_sh, 150.0, 400.0, 40.0]
    patch = np.r_[np.full(200, 7), 0, 9, 4]  # roof 7, a ground cell, roof 9 (no lit cells of its own), dark roof 4
    ref_x, ref_p = np.r_[roof_lit, dark_lit, roof_lit[:5]], np.r_[np.full(200, 7), np.full(30, 4), np.full(5, 9)]
    out, keep = SO.relative_to_surface(xs, patch, ref_x, ref_p, clf.lit_median)
    assert keep[:201].all() and not keep[201] and keep[202]
    assert out[200] == 150.0 and out[202] == 40.0  # ground as it is; the dark roof not scaled up
    assert np.mean(clf.cell_log_odds(out[:200]) >= 0) > 0.9  # relative to its own lit part: shadow
    assert np.allclose(out[:200], roof_sh * clf.lit_median / np.median(roof_lit))
    same, kept = SO.relative_to_surface(xs, patch, ref_x, ref_p, math.nan)
    assert np.array_equal(same, xs) and kept.all()  # classifier from an older store: unchanged
    r = SO.ShadowClassifier.from_report(json.loads(json.dumps(clf.report())))
    assert r.lit_median == clf.lit_median
