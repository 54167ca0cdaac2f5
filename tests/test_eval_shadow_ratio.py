"""benchmarks/eval_shadow_ratio.py: the cross-date ratio of a caster's shadow (u4, thirteenth round)."""

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import eval_shadow_ratio as ESR  # noqa: E402

from offnadir.change import missing_shadow as MS  # noqa: E402
from offnadir.change.sun_kernels import illumination  # noqa: E402

CELL = 0.5
SUNS = ((math.radians(180.0), math.radians(35.0)), (math.radians(180.0), math.radians(50.0)))


def _codes(h, sun):
    out = np.empty(h.shape, np.uint8)
    illumination(np.ascontiguousarray(h, np.float64), CELL, sun[0], sun[1], 0.3, 1.0, float(max(h.shape)), out)
    return out


def _scene(tower: bool):
    """Two 8 m boxes on flat ground (row 0 north, the sun in the south at 35 deg, then 50 deg): A stays, B is
    demolished before the target; the ground's albedo varies from column to column (bright and dark bands).
    ``tower``: a 30 m box right up-sun of B, whose shadow covers all of B's."""
    n = 160
    h = np.zeros((n, n))
    h[90:100, 10:60] = 8.0  # A
    h[90:100, 90:140] = 8.0  # B
    if tower:
        h[100:110, 88:142] = 30.0
    patch = np.zeros((n, n), np.int64)
    patch[90:100, 10:60] = 1001
    patch[90:100, 90:140] = 2002
    if tower:
        patch[100:110, 88:142] = 3003
    elevated = (h > 2.5).astype(np.uint8)
    h_new = h.copy()
    h_new[90:100, 90:140] = 0.0
    rng = np.random.default_rng(0)
    albedo = np.where((np.arange(n) // 6) % 2 == 0, 300.0, 120.0)[None, :] * np.ones((n, 1))
    lit0 = _codes(h, SUNS[0]) > 0
    lit1 = _codes(h_new, SUNS[1]) > 0  # the truth at the target: B's shadow gone
    x0 = albedo * np.where(lit0, 1.0, 0.3) * rng.lognormal(0, 0.05, (n, n))
    x1 = albedo * np.where(lit1, 1.3, 0.45) * rng.lognormal(0, 0.05, (n, n))
    ill = np.stack([_codes(h, SUNS[0]), _codes(h, SUNS[1])])  # predicted from the old DSM
    arr = dict(dsm=h.astype(np.float32), patch=patch, elevated=elevated, illumination=ill,
               visible=np.ones((2, n, n), np.float32), value=np.stack([x0, x1])[:, None].astype(np.float32))
    return dict(arr=arr), SimpleNamespace(sun=SUNS, cell=CELL)


def test_ratio_reads_the_change_of_light_not_the_albedo():
    run, ctx = _scene(tower=False)
    r, A, B = ESR.ratio_classes(run["arr"])
    assert A.sum() > 100 and B.sum() > 100  # the sun's rise lit the far ends of the base's shadows
    clf = ESR.ratio_classifier(r, A, B)
    assert clf is not None
    ids = np.array([1001, 2002])
    n, s, clf = ESR.ratio_sums(run, ctx, ids)
    assert (n > 20).all()
    mean = s / n
    mid = MS.midpoint(clf)
    assert mean[0] < mid < mean[1]  # A's shadow stayed on bright and dark ground alike; B's went


def test_sole_cells_leave_out_a_shadow_another_object_casts_too():
    run, ctx = _scene(tower=False)
    ids = np.array([1001, 2002])
    _, _, clf = ESR.ratio_sums(run, ctx, ids)
    n, s = ESR.sole_ratio_sums(run, ctx, ids, [2002], clf)
    assert n[1] > 20 and s[1] / n[1] > MS.midpoint(clf) and n[0] == 0  # only the candidates
    run, ctx = _scene(tower=True)
    ids = np.array([1001, 2002, 3003])
    _, _, clf = ESR.ratio_sums(run, ctx, ids)
    n, s = ESR.sole_ratio_sums(run, ctx, ids, [2002], clf)
    assert n[1] == 0  # the tower shades all of B's shadow: no cell speaks for B alone
