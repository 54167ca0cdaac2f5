"""benchmarks/eval_shadow_ray.py's measuring machinery (issue 7, H6 seventh round): the ray runs away
from the sun (a shadow north of a cell counts under a southern sun, not under a northern one), the
likelihood ratio's fit is non-decreasing and keeps the weighted mean, and the typical height is the
elevated cells' height above the window's floor. (The figures come from the evaluation command.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import benchmark_module


esr = benchmark_module("eval_shadow_ray")


def test_ray_points_away_from_the_sun(esr):
    m = np.zeros((40, 40), bool)
    m[10:15, 18:23] = True  # a shadow 6-10 rows north of (20, 20)
    south_sun = esr.ray_share(m, math.radians(180.0), 10)  # shadows fall north
    north_sun = esr.ray_share(m, math.radians(0.0), 10)
    assert south_sun[20, 20] == pytest.approx(0.5)  # k = 6..10 of 10
    assert north_sun[20, 20] == 0.0
    assert north_sun[5, 20] == pytest.approx(0.5)  # the same shadow seen from its northern side
    east_sun = esr.ray_share(m, math.radians(90.0), 10)  # shadows fall west
    assert east_sun[12, 28] == pytest.approx(0.5) and east_sun[12, 10] == 0.0


def test_shift_is_an_index_offset(esr):
    a = np.arange(30.0).reshape(5, 6)
    s = esr.shift(a, 1, -2)
    assert s[0, 2] == a[1, 0] and s[3, 5] == a[4, 3]
    assert s[4].sum() == 0 and s[:, :2].sum() == 0


def test_pav_up_is_non_decreasing_and_keeps_the_mean(esr):
    rng = np.random.default_rng(2)
    y, w = rng.normal(size=10), rng.random(10) + 0.1
    f = esr.pav_up(y, w)
    assert (np.diff(f) >= -1e-12).all()
    assert np.dot(f, w) == pytest.approx(np.dot(y, w))
    up = np.sort(y)
    assert np.allclose(esr.pav_up(up, w), up)


def test_typical_height_over_the_window_floor(esr):
    dsm = np.full((60, 60), 100.0) + np.linspace(0, 3, 60)[None]  # sloping ground
    elev = np.zeros((60, 60), bool)
    elev[20:30, 20:30] = True
    dsm[elev] += 8.0
    d = dict(dsm=dsm, elev=elev, cal=dict(window_cells=41))
    h = esr.typical_height(d)
    assert 8.0 < h < 9.5  # the roof over the lowest ground within the window (slope 0.05 m a cell)


def test_relief_ray_runs_away_from_the_sensor(esr):
    """q3 tenth round: a sensor to the west (view azimuth 270) leans a building's roof east of its footprint, so
    the relief ray of a cell counts what the fine window says on the K cells east of it; the controls point
    elsewhere; the asymmetry form keeps only what the sensor side does not show."""
    n = 60
    dsm = np.full((n, n), 100.0)
    elev = np.zeros((n, n), bool)
    elev[:6, :6] = True
    dsm[elev] += 10.0  # typical height 10 m: K = ceil(10 tan 25 / 0.5) = 10 cells
    says = np.zeros((n, n), bool)
    says[20:40, 30:40] = True  # a displaced roof east of column 29
    d = dict(dsm=dsm, elev=elev, cal=dict(window_cells=41), cell=0.5, view_az=270.0, view_off=25.0,
             sun=dict(grid_north_deg=0.0), ok_t=np.ones((n, n), bool))
    S, info = esr.lean_ray(d, "lean", says)
    assert info["lean_K"] == 10
    assert S[30, 25] == pytest.approx(0.6)  # cells 26..35: 30..35 say change
    assert S[30, 45] == 0.0  # the roof lies west of this cell: towards the sensor
    against, _ = esr.lean_ray(d, "lean_against", says)
    assert against[30, 45] == pytest.approx(0.5) and against[30, 25] == 0.0
    diff, _ = esr.lean_ray(d, "lean_diff", says)
    assert diff[30, 25] == pytest.approx(0.6)
    assert diff[30, 35] == 0.0  # inside: 4 cells east, 5 west
