"""crown_shadow: cut crowns from their missing cast shadow summed per crown. The images are lit by
the simulator's ray tracer (an independent code path) over the true surfaces; the DSM predicts the
old ones. Crowns split into fragments are grouped, roofs are not, the cut crowns and no other are
decided gone, the adjacency pairs do not depend on the tiling, and the decision merges into the
patch rules' table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offnadir.change import crown_shadow as CS
from offnadir.change import kernels as K
from offnadir.change import missing_shadow as MS
from offnadir.change import shadow_observed as SO

CELL = 0.5
AZ, EL = 160.0, 35.0  # grid azimuth and elevation of the sun (degrees)
TAN_VIEW = math.tan(math.radians(25.0))


def _predicted(h):
    buf = np.empty(h.shape, np.uint8)
    K.illumination(np.ascontiguousarray(h), CELL, math.radians(AZ), math.radians(EL), 0.3, 1.0, 1e4, buf)
    return buf


def _ray_traced(h):
    from offnadir.simulate.sun import sun_vector
    from offnadir.simulate.views import cast_shadows

    return cast_shadows(h, sun_vector(EL, AZ), CELL, 0.3).astype(bool)


def _image(shadow, seed):
    rng = np.random.default_rng(seed)
    refl = np.exp(rng.normal(0.0, 0.25, shadow.shape)) * 200.0
    return refl * np.where(shadow, 0.35, 1.0) + rng.normal(0.0, 3.0, shadow.shape)


def _scene(cut=(2, 6)):
    """Ground at 100 m, nine domes (crowns, 8-12 m, radius 7 cells) each split into four quadrant
    patches, and a flat 8 m box touching dome 4; the domes in ``cut`` are gone in the target.
    Returns (dsm, patch labels, crown index per dome patch id, base image, target image)."""
    n = 192
    h = np.full((n, n), 100.0)
    lab = np.zeros((n, n), np.int64)
    ii, jj = np.mgrid[0:n, 0:n]
    truth = h.copy()
    owner = {}
    rng = np.random.default_rng(1)
    for d in range(9):
        ci, cj = 40 + 55 * (d // 3), 30 + 55 * (d % 3)
        r2 = ((ii - ci) ** 2 + (jj - cj) ** 2) / 7.0 ** 2
        m = r2 < 1
        top = rng.uniform(8, 12)
        h[m] = 100 + 3 + (top - 3) * np.sqrt(1 - r2[m])
        quad = 2 * (ii >= ci) + (jj >= cj)
        for q in range(4):
            pid = 10 * (d + 1) + q
            lab[m & (quad == q)] = pid
            owner[pid] = d
        if d not in cut:
            truth[m] = h[m]
    box = (slice(88, 103), slice(92, 110))  # touching dome 4 (centre (95, 85), radius 7) on its right
    h[box] = np.maximum(h[box], 108.0)
    truth[box] = h[box]
    lab[box] = np.where(lab[box] == 0, 500, lab[box])
    base = _image(_ray_traced(h), 0)
    target = _image(_ray_traced(truth), 1)
    return h, lab, owner, base, target


def _arrays(h, lab, base, target):
    n = h.shape[0]
    codes = _predicted(h)
    return {"dsm": h.astype(np.float32), "illumination": np.stack([codes, codes]), "patch": lab,
            "elevated": (lab > 0).astype(np.uint8), "visible": np.ones((2, n, n), np.uint8),
            "value": np.stack([base, target])[:, None].astype(np.float32)}


def _brute_pairs(lab):
    out = set()
    ny, nx = lab.shape
    for i in range(ny):
        for j in range(nx):
            for di, dj in ((0, 1), (1, 0)):
                a, b = i + di, j + dj
                if a < ny and b < nx and lab[i, j] > 0 and lab[a, b] > 0 and lab[i, j] != lab[a, b]:
                    out.add((min(lab[i, j], lab[a, b]), max(lab[i, j], lab[a, b])))
    return sorted(out)


def test_adjacent_pairs_are_the_four_neighbour_pairs_and_do_not_depend_on_the_tiling():
    from offnadir.change.tileio import MemoryIO
    from offnadir.cube.plan import Tile

    rng = np.random.default_rng(0)
    lab = rng.integers(0, 6, (37, 41))
    assert [tuple(p) for p in CS.adjacent_pairs(lab)] == _brute_pairs(lab)
    io = MemoryIO({"patch": lab, "elevated": (rng.random(lab.shape) < 0.8).astype(np.uint8)})
    elev_lab = np.where(io.arrays["elevated"] == 1, lab, 0)
    whole = CS.adjacent_pairs(elev_lab)
    for step in (5, 13, 41):
        parts = [CS.tile_pairs(io, Tile(a // step, b // step, a, min(a + step, 37), b, min(b + step, 41)), (37, 41))
                 for a in range(0, 37, step) for b in range(0, 41, step)]
        assert np.array_equal(CS.add_pairs(*parts), whole)
    assert CS.adjacent_pairs(np.zeros((3, 3), np.int64)).shape == (0, 2)


def _crowns(h, lab):
    from offnadir.change.crown import plane_sums

    ids = np.unique(lab[lab > 0])
    # the ground as patches of its own, for the DSM noise estimate (flat: noise 0)
    g = np.where(lab == 0, 1000 + (np.arange(h.size).reshape(h.shape) // 16) % 7, 0)
    allids = np.concatenate([ids, np.unique(g[g > 0])])
    plane = np.concatenate([plane_sums(h, lab, ids), plane_sums(h, g, np.unique(g[g > 0]))])
    elev = np.concatenate([np.ones(len(ids), bool), np.zeros(len(allids) - len(ids), bool)])
    return CS.crowns(allids, elev, plane, CS.adjacent_pairs(lab), CELL, TAN_VIEW)


def test_crowns_group_a_domes_fragments_and_leave_roofs_out():
    h, lab, owner, _, _ = _scene()
    cr = _crowns(h, lab)
    assert cr["count"] == 9
    assert 500 not in cr["ids"]  # the flat box is one plane: a roof, in no crown
    # each crown is one dome's four fragments
    for c in range(9):
        doms = {owner[int(p)] for p in cr["ids"][cr["crown"] == c]}
        assert len(doms) == 1 and (cr["crown"] == c).sum() == 4
    assert cr["bound"] == 0.5 * CELL / TAN_VIEW
    # no view angle: no bound, no crowns (as criteria.rigid: every patch a plane)
    assert CS.crowns(cr["ids"], np.ones(len(cr["ids"]), bool), np.ones((len(cr["ids"]), 10)), [], CELL,
                     float("nan"))["count"] == 0


def _sums(h, lab, base, target):
    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    arrays = _arrays(h, lab, base, target)
    codes = arrays["illumination"][0]
    ok = np.ones(h.shape, bool)
    clfs = tuple(SO.calibrate(x, codes, ok) for x in (base, target))
    n = h.shape[0]
    sun = ((math.radians(AZ), math.radians(EL)),) * 2
    ctx = Context(shape=(n, n), n_images=2, n_bands=1, cell=CELL, opts=ChangeOptions(), targets=(1,),
                  h_range=(100.0, 113.0), sun=sun, shadow_classes=clfs)
    io, whole = MemoryIO(arrays), Tile(0, 0, 0, n, 0, n)
    sums = MS.add_sums(MS.tile_sums(io, ctx, whole), CS.tile_sums(io, ctx, whole))  # as the sums pass
    return sums, [{"shadow_classifier": c.report()} for c in clfs]


def test_the_cut_crowns_and_no_other_are_decided_gone(caplog):
    import logging

    cut = (2, 6)
    h, lab, owner, base, target = _scene(cut)
    sums, report = _sums(h, lab, base, target)
    cr = _crowns(h, lab)
    with caplog.at_level(logging.INFO, logger="offnadir.change.crown_shadow"):
        dec = CS.decide_crowns(cr, sums, (1,), report, ["base", "target"])
    d = dec[1]
    gone = {owner[int(p)] for p, q in zip(d["ids"], d["post"]) if q >= 0.5}
    assert gone == set(cut)
    rec = report[1]["crown_shadows"]
    assert rec["crowns"] == 9 and rec["crowns_gone"] == 2 and rec["bent_rms_bound_m"] == cr["bound"]
    assert "2 of" in caplog.text and "crowns" in caplog.text
    # a crown's patches all carry the crown's probability
    for c in range(9):
        sel = np.isin(d["ids"], cr["ids"][cr["crown"] == c])
        assert np.ptp(d["post"][sel]) == 0 if sel.any() else True
    # the base does not show the predicted shadows either: nothing is confirmed, nothing gone
    s2 = {"ids": sums["ids"], "rows": {k: v.copy() for k, v in sums["rows"].items()}}
    for k in ("msh_llr", "csh_llr"):
        s2["rows"][k][:, 0] = s2["rows"][k][:, 1]
    assert not np.any(CS.decide_crowns(cr, s2, (1,), report)[1]["post"] >= 0.5)


def test_nothing_cut_nothing_gone():
    h, lab, _, base, target = _scene(cut=())
    sums, report = _sums(h, lab, base, target)
    dec = CS.decide_crowns(_crowns(h, lab), sums, (1,), report)
    assert not np.any(dec[1]["post"] >= 0.5)


def test_merge_keeps_the_larger_probability_per_patch():
    gone = {1: (np.array([3, 5, 9]), np.array([0.9, 0.1, 0.2]))}
    dec = {1: dict(ids=np.array([5, 7]), post=np.array([0.8, 0.6])), 2: dict(ids=np.array([4]), post=np.array([0.7]))}
    out = CS.merge_gone(gone, dec)
    assert np.array_equal(out[1][0], [3, 5, 7, 9]) and np.allclose(out[1][1], [0.9, 0.8, 0.6, 0.2])
    assert np.array_equal(out[2][0], [4]) and np.allclose(out[2][1], [0.7])
    assert gone[1][0].tolist() == [3, 5, 9]  # the input is not changed


def test_another_object_on_the_ray_past_the_ground_keeps_the_cell_in_shadow():
    n = 60
    h = np.zeros((n, n))
    h[20:25, 26:35] = 5.0  # the first caster, 6 cells north of the shadow cell (30, 30)
    ii, jj = np.array([30]), np.array([30])
    args = (0.2, -1.0, 0.0, 0.3, 100.0)  # rise 0.2 m per cell, the sun in the north (rows decreasing)
    d, other = CS.first_and_other(h, (h > 0).astype(np.uint8), ii, jj, *args)
    assert d[0] == 6.0 and not other[0]
    far = h.copy()
    far[8:13, 26:35] = 10.0  # a taller box beyond the ground north of it also shades the cell
    d, other = CS.first_and_other(far, (far > 0).astype(np.uint8), ii, jj, *args)
    assert d[0] == 6.0 and other[0]
    near = h.copy()
    near[15:20, 26:35] = 10.0  # the same object's taller part, no ground between: the same caster
    assert not CS.first_and_other(near, (near > 0).astype(np.uint8), ii, jj, *args)[1][0]


def test_first_caster_is_the_illumination_marchs():
    from offnadir.change.sun_kernels import caster_distances_at

    h, lab, _, _, _ = _scene()
    h = h + np.random.default_rng(2).normal(0, 0.2, h.shape)
    h[5, 7] = np.nan
    az, el = math.radians(AZ), math.radians(EL)
    rise, di, dj = math.tan(el) * CELL, -math.cos(az), math.sin(az)
    mask = np.zeros(h.shape, bool)
    mask[::3, ::2] = True
    ref = np.empty(h.shape)
    caster_distances_at(h, rise, di, dj, 0.3, 80.0, mask, ref)
    ii, jj = np.nonzero(mask)
    d, _ = CS.first_and_other(h, (lab > 0).astype(np.uint8), ii, jj, rise, di, dj, 0.3, 80.0)
    assert np.array_equal(d, ref[ii, jj]) and (d > 0).sum() > 100


def test_tile_sums_do_not_depend_on_the_tiling_and_leave_out_cells_another_object_shades():
    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    h, lab, owner, base, target = _scene()
    arrays = _arrays(h, lab, base, target)
    codes = arrays["illumination"][0]
    clfs = tuple(SO.calibrate(x, codes, np.ones(h.shape, bool)) for x in (base, target))
    n = h.shape[0]
    sun = ((math.radians(AZ), math.radians(EL)),) * 2
    ctx = Context(shape=(n, n), n_images=2, n_bands=1, cell=CELL, opts=ChangeOptions(), targets=(1,),
                  h_range=(100.0, 113.0), sun=sun, shadow_classes=clfs)
    io = MemoryIO(arrays)
    whole = CS.tile_sums(io, ctx, Tile(0, 0, 0, n, 0, n))
    step = 64
    tiled = MS.add_sums(*[CS.tile_sums(io, ctx, Tile(a // step, b // step, a, min(a + step, n), b, min(b + step, n)))
                          for a in range(0, n, step) for b in range(0, n, step)])
    assert np.array_equal(whole["ids"], tiled["ids"]) and len(whole["ids"]) > 10
    for k in ("csh_n", "csh_llr"):
        assert np.allclose(whole["rows"][k], tiled["rows"][k], rtol=0, atol=1e-9)
    # the free-standing domes: every cell they cast first is theirs alone, as the missing-shadow sums
    # count it; dome 4 (ids 50-53) has the box beyond it towards the sun (south-east), past the ground
    # between them: some of its shadow cells the box would still shade
    # (the missing-shadow sums with the pooled reading: they read a shadow on a roof relative to that
    # roof's own lit level, or leave it out, which the crown sums do not)
    import dataclasses

    pooled = dataclasses.replace(ctx, shadow_classes=tuple(dataclasses.replace(c, lit_median=math.nan) for c in clfs))
    ms = MS.tile_sums(io, pooled, Tile(0, 0, 0, n, 0, n))
    relative = MS.tile_sums(io, ctx, Tile(0, 0, 0, n, 0, n))
    kr = np.searchsorted(ms["ids"], relative["ids"])
    assert np.all(relative["rows"]["msh_n"] <= ms["rows"]["msh_n"][kr])
    k = np.searchsorted(ms["ids"], whole["ids"])
    free = (whole["ids"] < 500) & ((whole["ids"] < 50) | (whole["ids"] > 53))
    assert np.array_equal(whole["rows"]["csh_n"][free], ms["rows"]["msh_n"][k][free])
    by_box = (whole["ids"] >= 50) & (whole["ids"] <= 53)
    assert np.all(whole["rows"]["csh_n"][by_box] <= ms["rows"]["msh_n"][k][by_box])
    assert whole["rows"]["csh_n"][by_box].sum() < ms["rows"]["msh_n"][k][by_box].sum()
    # as the sums task runs them: the crown rule first, its first casters kept in the shared shadow
    # window, the missing-shadow sums taking them instead of marching again: the same table
    keep = {}
    again = CS.tile_sums(io, ctx, Tile(0, 0, 0, n, 0, n), keep=keep)
    assert sorted(keep["shadow_window"].first) == [0, 1]
    shared = MS.tile_sums(io, ctx, Tile(0, 0, 0, n, 0, n), keep=keep)
    assert _tables_equal(again, whole) and _tables_equal(shared, relative)
    keep["shadow_window"].first[1] = keep["shadow_window"].first[1] + 1.0  # taken, not marched: it shows
    assert not _tables_equal(MS.tile_sums(io, ctx, Tile(0, 0, 0, n, 0, n), keep=keep), relative)


def _tables_equal(a, b):
    return np.array_equal(a["ids"], b["ids"]) and all(np.array_equal(a["rows"][k], b["rows"][k]) for k in a["rows"])


def test_a_run_records_the_crowns_decision(tmp_path):
    """A small hard simulated scene (trees cut and grown, no sun in the files) through ``offnadir
    detect``: the store's ``change_sun`` records for the target what the crown rule did."""
    import json

    import xarray as xr

    from offnadir.cli import main

    d = tmp_path / "scene"
    assert main(["simulate", str(d), "--seed", "1", "--size", "128", "--preset", "hard", "--tree-changes", "0.5"]) == 0
    out = tmp_path / "out.zarr"
    assert main(["detect", "--dsm", str(d / "dsm.tif"), "--base", str(d / "base.tif"), "--target",
                 str(d / "target.tif"), "-o", str(out), "--workers", "1", "--quiet"]) == 0
    rec = json.loads(xr.open_zarr(out).attrs["change_sun"])[1]["crown_shadows"]
    assert rec["shadow_witness"] and rec["accuracy_shadow"] >= CS.SHADOW_WITNESS
    assert rec["crowns"] > 0 and 0 <= rec["crowns_gone"] <= rec["crowns_tested"] <= rec["crowns"]
    assert rec["bent_rms_bound_m"] >= rec["plane_tolerance_m"] > 0 and 0 < rec["prior_gone_share"] < 1
    # the crowns' texture witness (crown_texture): the run's crowns' correlation, and how many it speaks for
    tex = rec["texture"]
    assert tex["median_z"] is not None and tex["robust_sd_z"] >= 0
    assert 0 <= tex["crowns_with_evidence"] <= rec["crowns"]


def _march_twin(h, elevated, i, j, rise, di, dj, tol, max_dist):
    """The obvious march, to the window's highest top (no bound ahead): (first caster, other)."""
    ny, nx = h.shape
    hmax = np.nanmax(h)
    z, s, first, left = h[i, j], 0.5, -1.0, False
    while s <= max_dist:
        zr = z + s * rise
        if zr >= hmax:
            break
        pi, pj = int(math.floor(i + s * di + 0.5)), int(math.floor(j + s * dj + 0.5))
        if not (0 <= pi < ny and 0 <= pj < nx):
            break
        v = h[pi, pj]
        blocked = np.isfinite(v) and v - zr > tol
        if first < 0:
            if (pi, pj) != (i, j) and blocked:
                first = s
        else:
            left |= elevated[pi, pj] != 1
            if left and blocked:
                return first, True
        s += 0.5
    return first, False


def test_the_march_with_its_bound_ahead_answers_as_the_obvious_one():
    rng = np.random.default_rng(5)
    h = np.zeros((70, 90))
    for _ in range(40):  # boxes of 2-15 m, some touching
        i, j = rng.integers(0, 64), rng.integers(0, 84)
        h[i:i + rng.integers(2, 9), j:j + rng.integers(2, 9)] = rng.uniform(2, 15)
    h += rng.normal(0, 0.05, h.shape)
    h[3, 4] = np.nan
    elevated = (h > 1).astype(np.uint8)
    ii, jj = np.nonzero(rng.random(h.shape) < 0.3)
    for az in (0.3, 2.0, 3.5, 5.5):
        rise, di, dj = 0.25, -math.cos(az), math.sin(az)
        d, other = CS.first_and_other(h, elevated, ii, jj, rise, di, dj, 0.3, 200.0)
        ref = [_march_twin(h, elevated, i, j, rise, di, dj, 0.3, 200.0) for i, j in zip(ii, jj)]
        assert np.array_equal(d, [r[0] for r in ref]) and np.array_equal(other, [r[1] for r in ref])
        assert other.sum() > 20 and (d > 0).sum() > other.sum()


@pytest.mark.parametrize("base, rise", [(712.0, 0.08), (-30.0, 0.6), (0.0, 2.5)])
def test_the_march_bound_on_the_rays_line_is_exact_at_real_heights_and_sun_elevations(base, rise):
    """The bound of ``_strip_ahead`` (tops along the ray's own line, less the ray's rise) breaks
    only where the march to ``hmax`` would meet nothing: at ellipsoidal heights (Kahramanmaras'
    DSM is ~700 m), low and high suns, towers far along the ray and every azimuth octant."""
    rng = np.random.default_rng(11)
    h = base + rng.normal(0, 0.05, (80, 75))
    for _ in range(45):
        i, j = rng.integers(0, 74), rng.integers(0, 69)
        h[i:i + rng.integers(1, 7), j:j + rng.integers(1, 7)] = base + rng.uniform(1, 25)
    h[rng.random(h.shape) < 0.01] = np.nan
    elevated = (h > base + 0.5).astype(np.uint8)
    ii, jj = np.nonzero(rng.random(h.shape) < 0.25)
    for az in np.linspace(0.1, 2 * np.pi, 9)[:-1]:
        di, dj = -math.cos(az), math.sin(az)
        d, other = CS.first_and_other(h, elevated, ii, jj, rise, di, dj, 0.3, 150.0)
        ref = [_march_twin(h, elevated, i, j, rise, di, dj, 0.3, 150.0) for i, j in zip(ii, jj)]
        assert np.array_equal(d, [r[0] for r in ref]) and np.array_equal(other, [r[1] for r in ref])
        assert (d > 0).sum() > 50
