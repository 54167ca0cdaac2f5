"""The observed far edge of a cast shadow against the old DSM's prediction (benchmarks/eval_shadow_edge_moved.py):
a box building on flat ground under a southern sun, its shadow drawn as the image would show it."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
M = pytest.importorskip("eval_shadow_edge_moved")

CELL, EL, AZ, TOL = 0.5, math.radians(40.0), math.pi, 0.3  # sun from the south: shadows point north (rows up)
LIT, SHADE = math.log(400.0), math.log(400.0 * 0.3)


def _scene(height=6.0):
    from offnadir.change.sun_kernels import caster_distances

    h = np.zeros((90, 40))
    h[60:70, 10:30] = height
    lab = np.zeros(h.shape, np.int64)
    lab[60:70, 10:30] = 7
    d = np.empty(h.shape)
    caster_distances(h, math.tan(EL) * CELL, -math.cos(AZ), math.sin(AZ), TOL, 200.0, d)
    codes = np.where(d > 0, 0, 128).astype(np.uint8)
    return h, lab, codes


def _image(shadow_rows, dark_rows=()):
    """Log intensity: lit ground, the shadow over ``shadow_rows`` (columns of the building), a dark
    material (as dark as a shadow) over ``dark_rows``."""
    lx = np.full((90, 40), LIT)
    lx[60:70, 10:30] = LIT + 0.2  # the roof
    lx[shadow_rows, 10:30] = SHADE
    lx[dark_rows, 10:30] = SHADE
    return lx


def _run(h, lab, codes, lx, other=None):
    vis = np.ones(h.shape, bool)
    rays = M.edge_rays(h, lab, codes, vis, lx, CELL, AZ, EL, TOL, 30.0, other=other)
    c, V, ks, ss, s0, cont, dR = rays
    present = SHADE - LIT
    return M.caster_summary(c, V, ks, ss, s0, cont, dR, np.zeros(len(c), np.int64), present)[7]


def test_the_predicted_edge_observed_there_has_not_moved():
    h, lab, codes = _scene()
    pred = np.nonzero(codes[:, 20] == 0)[0]  # the predicted shadow's rows (6 m / tan 40 = 7.2 m: 14 cells)
    assert 12 <= len(pred) <= 16
    row = _run(h, lab, codes, _image(slice(pred.min(), 60)))
    assert row["n"] >= 18 and row["nsig"] == row["n"]
    assert row["k_med"] == 0 and row["nmoved"] == 0


def test_a_raised_roof_moves_its_edge_by_dz_over_tan_e_and_the_other_image_confirms_it():
    h, lab, codes = _scene()
    pred = np.nonzero(codes[:, 20] == 0)[0]
    extra = int(round(3.0 / math.tan(EL) / CELL))  # +3 m: 7 cells further
    lx = _image(slice(pred.min() - extra, 60))
    other = (np.full(h.shape, LIT), np.full(h.shape, 128, np.uint8), np.ones(h.shape, bool))  # the base: lit there
    row = _run(h, lab, codes, lx, other)
    assert row["nmoved"] == row["n"] and abs(row["kmoved_med"] - extra) <= 1
    assert row["nconf"] == row["n"] and row["nref"] == 0
    assert row["n_near"] == row["n_able"] == row["n"]
    assert abs(row["kconf_med"] * CELL * math.tan(EL) - 3.0) < 0.5
    rows = [dict(seed=0, caster=7, t=row, b=None, tan_t=math.tan(EL), cell=CELL)]
    assert M.moved_casters(rows, 4, 0.5, 2.5, True, 0.75) == {(0, 7)}
    assert M.moved_casters(rows, 4, 0.5, 3.5, True, 0.75) == set()  # below the least raise asked for


def test_a_dark_material_beyond_the_edge_is_refuted_by_the_other_images_ratio():
    h, lab, codes = _scene()
    pred = np.nonzero(codes[:, 20] == 0)[0]
    dark = slice(pred.min() - 7, pred.min())
    lx = _image(slice(pred.min(), 60), dark)
    base_lx = np.full(h.shape, LIT)
    base_lx[dark, 10:30] = SHADE  # the same material, dark in the base too (lit there)
    other = (base_lx, np.full(h.shape, 128, np.uint8), np.ones(h.shape, bool))
    row = _run(h, lab, codes, lx, other)
    assert row["nmoved"] == row["n"]  # the target alone reads it as a moved edge
    assert row["nconf"] == 0 and row["nref"] == row["n"]
    rows = [dict(seed=0, caster=7, t=row, b=None, tan_t=math.tan(EL), cell=CELL)]
    assert M.moved_casters(rows, 4, 0.5, 2.5, True, 0.75) == set()
    assert M.moved_casters(rows, 4, 0.5, 2.5, False, 0.75) == {(0, 7)}  # without the ratio it would be flagged


def test_a_neighbours_shadow_across_part_of_the_edge_fails_the_whole_edge_test():
    h, lab, codes = _scene()
    pred = np.nonzero(codes[:, 20] == 0)[0]
    lx = _image(slice(pred.min(), 60))
    lx[pred.min() - 8:pred.min(), 10:18] = SHADE  # another object's shadow beyond 8 of the 20 columns
    other = (np.full(h.shape, LIT), np.full(h.shape, 128, np.uint8), np.ones(h.shape, bool))
    row = _run(h, lab, codes, lx, other)
    assert 6 <= row["nconf"] <= 9 and row["n_near"] < 0.75 * row["n_able"]
    rows = [dict(seed=0, caster=7, t=row, b=None, tan_t=math.tan(EL), cell=CELL)]
    assert M.moved_casters(rows, 4, 0.25, 2.5, True, 0.75) == set()
    assert M.moved_casters(rows, 4, 0.25, 2.5, True, 0.0) == {(0, 7)}
