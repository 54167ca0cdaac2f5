"""benchmarks/eval_km_errors.py's classing machinery (issue 7, H5 seventh round) on a made-up
reference: a map shifted by one cell against a new building leaves edge errors only; a flag far
from any change on lit ground, a miss where the reference was interpolated and a miss inside a
demolished roof each land in their own class; blobs take their cells' majority class. (The
Kahramanmaraş figures come from the evaluation command, not from tests.)"""

from __future__ import annotations


import numpy as np
import pytest
from conftest import benchmark_module


km = benchmark_module("eval_km_errors")


def _scene():
    n = 120
    ref = np.zeros((n, n), np.uint8)
    diff = np.zeros((n, n), np.float32)
    ref[20:50, 20:50] = 2  # a new building on ground, 15 m square
    diff[20:50, 20:50] = 9.0
    ref[70:100, 20:50] = 1  # a demolished one
    diff[70:100, 20:50] = -8.0
    measured = np.ones((n, n), bool)
    measured[90:100, 20:50] = False  # CARS interpolated the demolished one's southern third
    el = np.zeros((n, n), bool)
    el[70:100, 20:50] = True
    ch = np.zeros((n, n), np.uint8)
    ch[21:51, 21:51] = 1  # the new building, flagged one cell off
    ch[70:80, 20:50] = 1  # the demolished one: its northern third flagged only
    ch[20:50, 80:110] = 1  # a flag on lit ground, 15 m from any change
    return {"ref": ref, "diff": diff, "measured": measured, "res": 0.5}, ch, el


def test_cell_classes_edge_far_interpolated_demolished(km):
    R, ch, el = _scene()
    shadow = np.zeros_like(el)
    cls, fn, fp, dec, chg = km.cell_classes(R, ch, el, shadow)
    fn_names = np.array(km.FN_CLASSES)[cls[fn]]
    fp_names = np.array(km.FP_CLASSES)[cls[fp]]
    # the shifted building: its missed first row and column are within 1 m of unchanged ground
    assert np.all(np.array(km.FN_CLASSES)[cls[20:50, 20:50][fn[20:50, 20:50]]] == "edge")
    assert np.all(np.array(km.FP_CLASSES)[cls[50, 21:51]] == "edge")
    # the far flag is lit ground, 15 m from the building
    assert np.all(np.array(km.FP_CLASSES)[cls[25:45, 85:105]] == "ground, lit")
    # the demolished roof: interpolated third, the rest demolished (beyond the 1 m edge)
    assert np.all(np.array(km.FN_CLASSES)[cls[92:97, 25:45]] == "reference interpolated")
    assert np.all(np.array(km.FN_CLASSES)[cls[82:88, 25:45]] == "demolished")
    assert fn.sum() == len(fn_names) and fp.sum() == len(fp_names)


def test_blobs_take_the_majority_class(km):
    R, ch, el = _scene()
    shadow = np.zeros_like(el)
    cls, fn, fp, dec, chg = km.cell_classes(R, ch, el, shadow)
    maps = {"el": el, "shadow": shadow, "p": ch.astype(float), "ev": np.ones(ch.shape), "dh": None}
    rows = km.blobs(R, cls, fn, fp, maps)
    # >= 100 m² (400 cells): the far flag (900 cells) and the demolished miss (600 cells: 260
    # demolished, 208 interpolated, 132 within 1 m of unchanged ground); the shifted building's
    # one-cell rims (59 cells each) are too small
    kinds = sorted((r["kind"], r["n"], r["cls"]) for r in rows)
    assert kinds[0] == ("FN", 600, "demolished")
    assert kinds[1] == ("FP", 900, "ground, lit")
    assert len(rows) == 2


def test_attribution_outside_the_band_drops_edge_errors(km):
    R, ch, el = _scene()
    ch = ch.copy()
    ch[70:100, 20:50] = 1  # the demolished one found: only the shifted building's rims are wrong
    ch[20:50, 80:110] = 0
    cls, fn, fp, dec, chg = km.cell_classes(R, ch, el, np.zeros_like(el))
    att = km.attribution(R, ch, ch.astype(float), dec, chg)
    assert att["all"][0] < 0.99
    assert att["outside 1 m band"][0] == pytest.approx(1.0)
