"""offnadir.change.shadow_ratio: the missing-shadow rule's gone casters vetoed where the cross-date ratio of
their own shadow cells says the shadow stayed (u8, thirteenth round; measured offline by u4)."""

import logging
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_shadow_ratio as ESR  # noqa: E402
from test_eval_shadow_ratio import SUNS, _scene  # noqa: E402

from offnadir.change import crown  # noqa: E402
from offnadir.change import missing_shadow as MS  # noqa: E402
from offnadir.change import shadow_ratio as SRT  # noqa: E402
from offnadir.change.tileio import MemoryIO  # noqa: E402


def _run(tower=False):
    run, _ = _scene(tower)
    a = run["arr"]
    h = a["dsm"].astype(np.float64)
    ctx = SimpleNamespace(shape=h.shape, h_range=(float(h.min()), float(h.max())), sun=SUNS, cell=0.5,
                          opts=SimpleNamespace(sun_tolerance=0.3))
    io = MemoryIO({k: a[k] for k in ("dsm", "visible", "value", "illumination", "patch", "elevated")})
    pids = np.unique(a["patch"][a["patch"] > 0])
    table = {"ids": pids, "rows": {"plane": crown.plane_sums(a["dsm"], a["patch"], pids)}}
    r, A, B = ESR.ratio_classes(a)
    return run, ctx, io, table, ESR.ratio_classifier(r, A, B)


def test_veto_keeps_the_roof_whose_shadow_stayed_and_not_the_demolished_one(caplog):
    caplog.set_level(logging.INFO)
    run, ctx, io, table, clf = _run()
    assert clf is not None
    ids = np.array([1001, 2002])
    report = [{}, {"shadow_ratio_classifier": clf.report(), "missing_shadows": {"casters_gone": 2}}]
    out = SRT.veto({1: (ids, np.array([0.9, 0.8]))}, io, ctx, table, report, log=logging.getLogger("t"))
    assert out[1][1].tolist() == [0.0, 0.8]  # 1001 stands (its shadow darkens both dates), 2002 went
    assert report[1]["missing_shadows"]["ratio_vetoed"] == 1 and report[1]["missing_shadows"]["casters_gone"] == 1
    assert "1: 1 of the 2 roofs decided gone by their missing shadow kept" in caplog.text


def test_no_veto_without_a_ratio_classifier_or_sole_cells():
    run, ctx, io, table, clf = _run()
    ids = np.array([1001, 2002])
    report = [{}, {"shadow_ratio_classifier": None}]
    out = SRT.veto({1: (ids, np.array([0.9, 0.8]))}, io, ctx, table, report)
    assert out[1][1].tolist() == [0.9, 0.8] and report[1]["missing_shadows"]["ratio_vetoed"] is None
    # the tower shades all of 2002's shadow: no cell speaks for it alone, and it keeps its decision
    run, ctx, io, table, clf = _run(tower=True)
    ids = np.array([1001, 2002, 3003])
    report = [{}, {"shadow_ratio_classifier": clf.report()}]
    out = SRT.veto({1: (ids, np.array([0.1, 0.8, 0.2]))}, io, ctx, table, report)
    assert out[1][1].tolist() == [0.1, 0.8, 0.2] and report[1]["missing_shadows"]["ratio_vetoed"] == 0


@pytest.mark.parametrize("tower", [False, True])
def test_crops_give_the_numbers_of_the_whole_grid_form(tower):
    """Each caster's box, crop and sole cells give the offline whole-grid form's numbers
    (``benchmarks/eval_shadow_ratio.sole_ratio_sums``; on the stored 1024² runs see
    ``eval_shadow_ratio.py --check-crops``)."""
    run, ctx, io, table, clf = _run(tower)
    a = run["arr"]
    ids = table["ids"]
    run_ctx = SimpleNamespace(sun=SUNS, cell=0.5)
    n_off, s_off = ESR.sole_ratio_sums(run, run_ctx, ids, ids, clf)
    lab = np.where(a["elevated"] == 1, a["patch"], 0)
    reach = SRT.crop_reach(ctx.h_range[1] - ctx.h_range[0], SUNS[1][1], 0.5)
    for k, c in enumerate(ids):
        box = SRT.roof_box(io, int(c), table["rows"]["plane"][k], ctx.shape)
        ii, jj = np.nonzero(lab == c)
        assert box == (ii.min(), ii.max() + 1, jj.min(), jj.max() + 1)
        h, lb, el, r, A, _ = SRT.caster_crop(io, box, reach, ctx.shape, 1, SUNS[1][0])
        n, s = SRT.sole_sums(h, lb, el, r, A, int(c), 0.5, *SUNS[1], 0.3, float(max(ctx.shape)), clf)
        assert n == n_off[k] and s == pytest.approx(s_off[k], rel=1e-12, abs=1e-9)
    assert n_off[0] > 20 and (tower or n_off[1] > 20)


def test_roof_box_grows_from_a_guess_too_small():
    lab = np.zeros((200, 200), np.int64)
    lab[20:24, 10:190] = 7  # a long thin arm ...
    lab[20:180, 186:190] = 7  # ... and a second one: the moments' box holds neither end
    io = MemoryIO({"patch": lab, "elevated": (lab > 0).astype(np.uint8)})
    row = crown.plane_sums(np.ones(lab.shape, np.float32), lab, np.array([7]))[0]
    assert SRT.box_guess(row, lab.shape) != (20, 180, 10, 190)
    assert SRT.roof_box(io, 7, row, lab.shape) == (20, 180, 10, 190)


def test_ratio_classifier_calibrated_beside_the_shadow_classifiers(caplog):
    caplog.set_level(logging.INFO)
    import xarray as xr

    from offnadir.change.illumination import shadow_classifiers

    run, _ = _scene(False)
    a = run["arr"]
    cube = xr.Dataset({"dsm": (("y", "x"), a["dsm"]), "visible": (("image", "y", "x"), a["visible"]),
                       "value": (("image", "band", "y", "x"), a["value"])})
    suns = [dict(azimuth=180.0, elevation=35.0, grid_north_deg=0.0, image="base"),
            dict(azimuth=180.0, elevation=50.0, grid_north_deg=0.0, image="target")]
    shadow_classifiers(cube, suns, 0.5)
    rc = suns[1]["shadow_ratio_classifier"]
    assert rc is not None and rc["n_lit"] > 100 and "shadow_ratio_classifier" not in suns[0]
    assert MS.midpoint(SRT.SO.ShadowClassifier.from_report(rc)) > -math.inf
    same = [dict(s, elevation=35.0) for s in suns]  # no sun move: no cells lit by it, no classifier
    shadow_classifiers(cube, same, 0.5, log=logging.getLogger("t"))
    assert same[1]["shadow_ratio_classifier"] is None
    assert "target: no cross-date shadow ratio classifier" in caplog.text
