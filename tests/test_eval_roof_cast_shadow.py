"""benchmarks/eval_roof_cast_shadow.py's witness on a box scene: an unchanged low roof in the shadow of a new tall
building up-sun has its unexplained shadow explained by the risen object (the roof kept at its old height); a
demolished roof whose ground now lies in an old neighbour's shadow has not; the totals split by the majority."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import eval_roof_cast_shadow as RC  # noqa: E402

from offnadir.simulate.sun import sun_vector  # noqa: E402
from offnadir.simulate.views import cast_shadows  # noqa: E402

CELL = 0.5
SUN = sun_vector(30.0, 180.0)  # from the grid's south, 30 degrees up


def _scene():
    h1 = np.full((100, 100), 100.0)
    roof = np.zeros(h1.shape, bool)
    roof[20:30, 20:30] = True  # unchanged, 6 m
    dem = np.zeros(h1.shape, bool)
    dem[20:30, 60:70] = True  # demolished, 6 m
    new = np.zeros(h1.shape, bool)
    new[32:40, 18:32] = True  # a new 20 m building just south of the roof
    h1[roof | dem] = 106.0
    h1[32:40, 58:72] = 108.0  # an old 8 m neighbour south of the demolished roof
    h2 = h1.copy()
    h2[new] = 120.0
    h2[dem] = 100.0
    return h1, h2, roof, dem, new


def test_the_risen_building_explains_the_roofs_shadow_not_the_demolished_ones():
    h1, h2, roof, dem, new = _scene()
    truth_t = cast_shadows(h2, SUN, CELL, RC.TOL) == 1
    unexpl = truth_t & (cast_shadows(h1, SUN, CELL, RC.TOL) == 0)
    assert unexpl[roof].mean() > 0.9 and unexpl[dem].mean() > 0.2  # both lie in a shadow the old DSM does not predict
    cast = RC.new_shadow(h1, RC.lifted(h1, new, h2), SUN, CELL)
    assert RC.explained(unexpl, cast, roof) > 0.99
    assert RC.explained(unexpl, cast, dem) == 0.0
    # lifted never lowers: the demolished roof stays at its old height in the witness
    np.testing.assert_array_equal(RC.lifted(h1, new | dem, h2)[dem], h1[dem])


def test_totals_split_by_the_patch_majority():
    rows = [dict(unchanged=50, changed=0, oracle=1.0), dict(unchanged=0, changed=30, oracle=0.6),
            dict(unchanged=40, changed=2, oracle=0.2), dict(unchanged=5, changed=9, oracle=float("nan"))]
    t = RC.totals(rows, "oracle")
    assert t == {"unchanged": [1, 50], "changed": [1, 30]}
