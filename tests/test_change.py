"""Change detection through the lazy API (threaded dask) on simulator scenes that know their truth.

MUST SHOW: with >= 10 degrees between the two views' directions (several seeds, both view
azimuths), F1 on elevated objects >= 0.9 and >= 1.3 x the (calibrated) ortho baseline's F1 on the
same scene.
Scenes: seeds 0, 1, 2 (the first three, not picked) x views A (base 5 deg from the east, target 25
deg from the west: 30 deg apart) and B (the same with the azimuths swapped), 256 x 256 cells.
"""

from __future__ import annotations

import math
import warnings

import dask
import numpy as np
import pytest

from offnadir.change import detect
from offnadir.change.evaluate import evaluate
from offnadir.pipeline import coregister

VIEWS = {"A": ((5.0, 90.0), (25.0, 270.0)), "B": ((5.0, 270.0), (25.0, 90.0))}
SCENES = [(seed, v) for seed in (0, 1, 2) for v in VIEWS]
_CACHE: dict = {}


def _angle_between(v1, v2):
    def vec(off, az):
        o, a = math.radians(off), math.radians(az)
        return np.array([math.sin(o) * math.sin(a), math.sin(o) * math.cos(a), math.cos(o)])

    return math.degrees(math.acos(np.clip(vec(*v1) @ vec(*v2), -1, 1)))


def _scene(tmp_path_factory, seed, view, chunk=128):
    key = (seed, view, chunk)
    if key not in _CACHE:
        from offnadir.simulate import simulate

        d = tmp_path_factory.mktemp(f"sim{seed}{view}")
        base_view, target_view = VIEWS[view]
        sim = simulate(d, seed=seed, size=256, base_view=base_view, target_view=target_view)
        with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
            warnings.simplefilter("ignore")
            cube = coregister(sim.paths["dsm"], [sim.paths["base"], sim.paths["target"]], chunk=chunk).compute()
            out = detect(cube, chunk=chunk)
        _CACHE[key] = (sim, out)
    return _CACHE[key]


@pytest.mark.slow
@pytest.mark.parametrize("seed,view", SCENES)
def test_elevated_f1_and_gain_over_the_ortho_baseline(tmp_path_factory, seed, view):
    assert _angle_between(*VIEWS[view]) >= 10.0
    sim, out = _scene(tmp_path_factory, seed, view)
    rep = evaluate(out, sim.paths["truth_change"])  # truth_elevated/occluded found beside it
    res = rep["images"]["target"]
    f1, f1_ortho = res["patch"]["elevated"]["f1"], res["ortho"]["elevated"]["f1"]
    far, far_o = res["patch"]["ground"]["false_alarm_rate"], res["ortho"]["ground"]["false_alarm_rate"]
    print(f"seed {seed} view {view}: elevated F1 {f1:.3f} (P {res['patch']['elevated']['precision']:.3f}, "
          f"R {res['patch']['elevated']['recall']:.3f}); ortho {f1_ortho:.3f}; gain {f1 / f1_ortho:.2f}x; ground "
          f"false alarms {far:.3f} vs {far_o:.3f}")
    assert res["patch"]["elevated"]["n"] > 5000 and res["patch"]["elevated"]["tp"] > 1000
    assert f1 >= 0.9
    # the ortho baseline is calibrated like the method since issue 7 (it was a bare chi-square test
    # flagging most cells): the method must still beat it clearly (measured 1.40-2.04x on these scenes)
    assert f1 >= 1.3 * f1_ortho
    assert res["gain_f1"]["elevated"] == pytest.approx(f1 / f1_ortho)
    # nuisances (sun, vegetation tint, gains, noise) do not become change on the ground
    # (measured 0.04-0.13 since the structural evidence joined the patch criteria; 0.03-0.12 before)
    assert res["patch"]["ground"]["false_alarm_rate"] < 0.15


def test_outputs_are_consistent(tmp_path_factory):
    _, out = _scene(tmp_path_factory, 0, "A")
    vis = out["visible"].values
    ch, sc, patch = out["change"].values, out["score"].values, out["patch"].values
    # unobservable exactly where hidden or outside in either image; the base layer is 0/2
    np.testing.assert_array_equal(ch[1] == 2, ~((vis[0] == 1) & (vis[1] == 1)))
    assert set(np.unique(ch[0])) <= {0, 2} and ((ch[0] == 0) == (vis[0] == 1)).all()
    assert ((ch[1] == 1) == (sc[1] >= 0.5)).all() and np.isnan(sc[1][ch[1] == 2]).all()
    # patches: only on cells visible in the base; never mixing elevated and ground cells
    assert ((patch > 0) <= (vis[0] == 1)).all()
    ids, inv = np.unique(patch[patch > 0], return_inverse=True)
    el = out["elevated"].values[patch > 0].astype(float)
    frac = np.bincount(inv, el) / np.bincount(inv)
    assert np.all((frac == 0) | (frac == 1))
    # IDs: 1 + the smallest linear index of the patch's cells
    lin = np.flatnonzero(patch.ravel() > 0)
    first = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(first, inv, lin)
    np.testing.assert_array_equal(ids, first + 1)
    # the table covers the patches; the maps are the calibrated probability's decision
    table_ids = out["patch_id"].values
    np.testing.assert_array_equal(table_ids, ids)
    assert out["patch_n_cells"].values.sum() == (patch > 0).sum()
    prob = out["probability"].values
    obs = ch[1] != 2
    assert np.all((prob[1][obs] >= 0) & (prob[1][obs] <= 1)) and np.isnan(prob[1][~obs]).all()
    np.testing.assert_array_equal(ch[1][obs] == 1, prob[1][obs] >= 0.5)
    # roofs exist as patches, and changed buildings are found
    assert (out["patch_elevated"].values == 1).sum() > 10
    assert (ch[1] == 1).sum() > 1000


def test_chunking_changes_neither_patches_nor_maps(tmp_path_factory):
    """Tolerance: identical (patch IDs, elevated mask, illumination, change maps); scores to 1e-6."""
    _, a = _scene(tmp_path_factory, 1, "A", chunk=128)
    _, b = _scene(tmp_path_factory, 1, "A", chunk=80)
    for name in ("patch", "elevated", "illumination", "change", "change_ortho"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    np.testing.assert_allclose(a["score"].values, b["score"].values, atol=1e-6, equal_nan=True)
    assert len(np.unique(a["patch"].values)) > 200


def test_irmad_reductions_equal_a_whole_array_computation(tmp_path_factory):
    """The stage's IR-MAD (tree reductions over 128-cell tiles) against a direct numpy IR-MAD on all
    cells at once (CCA by a generalised eigenproblem: a different algorithm), same iterations."""
    import json

    from scipy import linalg

    from offnadir.change.irmad import chi2_sf

    _, out = _scene(tmp_path_factory, 2, "B")
    vis, val, lit = out["visible"].values, out["value"].values.astype(np.float64), out["illumination"].values
    same = (lit[0] != 255) & (lit[1] != 255) & ((lit[0] == 0) == (lit[1] == 0))
    ok = (vis[0] == 1) & (vis[1] == 1) & np.isfinite(val).all(axis=(0, 1)) & same & (lit[0] > 0)
    x, y = val[0][:, ok].T, val[1][:, ok].T
    models = json.loads(out.attrs["change_irmad"])["patch"]["1"]
    n_iter = models[0]["iterations"]
    w = np.ones(len(x))
    for _ in range(n_iter):
        ws = w / w.sum()
        mx, my = ws @ x, ws @ y
        xc, yc = x - mx, y - my
        Sxx, Syy, Sxy = (xc * ws[:, None]).T @ xc, (yc * ws[:, None]).T @ yc, (xc * ws[:, None]).T @ yc
        r2, A = linalg.eigh(Sxy @ np.linalg.solve(Syy, Sxy.T), Sxx)
        order = np.argsort(r2)[::-1]
        rho, A = np.sqrt(np.clip(r2[order], 0, 1)), A[:, order]
        B = np.linalg.solve(Syy, Sxy.T) @ A / rho  # v = B^T y has unit variance and corr rho with u
        M = xc @ A - yc @ B
        var = 2 * (1 - rho)
        w_prev, rho_prev = w, rho
        w = chi2_sf((M**2 / var).sum(1), len(rho))
    m = models[0]
    assert m["n"] == len(x)
    np.testing.assert_allclose(m["rho"], rho_prev, atol=1e-7)
    np.testing.assert_allclose(m["weight"], w_prev.sum(), rtol=1e-6)
    np.testing.assert_allclose(m["mean_x"], mx, rtol=1e-9)
