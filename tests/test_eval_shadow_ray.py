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


def test_facade_strips_end_in_a_roof_step_down_the_lean(esr):
    """s3 eleventh round: a sensor to the west (lean east, grid azimuth 270) shows a new building's sunless west
    wall as a run of unexplained shadow along the lean, as wide as the relief displacement, ending in a step to
    the lit roof. Runs of the right width ending in a bright cell are strips; too short or too long runs, runs
    with no bright cell after them are not; the reversed lean finds the run only where a bright cell lies on its
    sensor side (lit ground there: the control then differs in the side it puts the footprint on)."""
    ny, nx = 12, 60
    U = np.zeros((ny, nx), bool)
    bright = np.ones((ny, nx), bool)
    U[2:8, 10:16] = True  # width 6, a roof east of it
    U[2:8, 30:32] = True  # width 2: too narrow
    U[2:8, 40:55] = True  # width 15: too wide
    bright &= ~U
    bright[2:8, 16] = False  # rows 2..7 of the first run: no step to a roof ...
    bright[5:8, 16] = True  # ... except rows 5..7
    az = math.radians(270.0)
    strip = esr.facade_strips(U, bright, az, 3, 12)
    assert strip[5:8, 10:16].all() and not strip[2:5].any()
    assert not strip[:, 25:].any()
    rev = esr.facade_strips(U, bright, az + math.pi, 3, 12)  # reversed: a bright cell west of the run ends it
    assert rev[5:8, 10:16].all()
    dark_west = bright.copy()
    dark_west[:, 9] = False
    assert not esr.facade_strips(U, dark_west, az + math.pi, 3, 12)[:, 10:16].any()
    # the facade ray: a footprint cell down the lean of its strip sees it; a cell towards the sensor does not
    d = dict(view_az=270.0, sun=dict(grid_north_deg=0.0), dsm=np.zeros((ny, nx)), elev=np.zeros((ny, nx), bool),
             cal=dict(window_cells=41), view_off=25.0, cell=0.5, ill=np.ones((ny, nx)), ok_t=np.ones((ny, nx), bool))
    d["dsm"][5, 5] = 6.0  # typical height 6 m: K = ceil(6 tan 25 / 0.5) = 6, strips of 3 .. 12 cells
    d["elev"][5, 5] = True
    U2 = U.copy()
    S, info = esr.facade_ray(d, "facade", U2)
    assert info["facade_K"] == 6
    assert S[6, 18] > 0.2 and S[6, 5] == 0.0
    Sa, _ = esr.facade_ray(d, "facade_against", U2)
    assert Sa[6, 18] == 0.0


def test_facade_wall_keeps_strips_with_a_neighbour_of_the_same_width(esr):
    """s3 eleventh round: ``facade_wall`` keeps a strip whose end has a neighbour across the lean ending a strip of
    the same width (a wall several rows long), and drops a dark run on one row alone."""
    ny, nx = 16, 40
    U = np.zeros((ny, nx), bool)
    U[2:7, 10:16] = True  # a wall five rows long, width 6
    U[11, 10:16] = True  # one row alone, width 6
    d = dict(view_az=270.0, sun=dict(grid_north_deg=0.0), dsm=np.zeros((ny, nx)), elev=np.zeros((ny, nx), bool),
             cal=dict(window_cells=41), view_off=25.0, cell=0.5, ill=np.ones((ny, nx)), ok_t=np.ones((ny, nx), bool))
    d["dsm"][14, 35] = 6.0  # typical height 6 m: K = 6
    d["elev"][14, 35] = True
    S, _ = esr.facade_ray(d, "facade", U)
    Sw, info = esr.facade_ray(d, "facade_wall", U)
    assert S[11, 17] > 0 and Sw[11, 17] == 0.0  # the lone row: a strip, not a wall
    assert Sw[4, 17] == pytest.approx(S[4, 17]) and Sw[4, 17] > 0
    assert info["strip_cells"] == 5 * 6
