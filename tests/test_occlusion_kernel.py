"""Line-of-sight occlusion (offnadir.cube.kernels.visibility_los) against analytic geometry.

A satellite at off-nadir angle theta and azimuth phi (clockwise from north) over a north-up grid
of cell size c: the point imaging to the same pixel one metre higher is displaced towards the
sensor by tan(theta)/c cells, i.e. (di, dj) = tan(theta)/c * (-cos phi, sin phi) (north = -i).

A box building of height h on flat ground hides the ground strip behind it (away from the
sensor) whose width along the line of sight is h * tan(theta) / c cells; the kernel must give it
to within one cell, roofs and the sensor side visible, the same answer tiled or whole, and the
grazing slope as the exact threshold of self-occlusion on planes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from conftest import real
from offnadir.cube import kernels as K

CELL = 0.5
Z0 = 100.0


def los(theta_deg, az_deg, cell=CELL):
    n = math.tan(math.radians(theta_deg)) / cell
    a = math.radians(az_deg)
    return -n * math.cos(a), n * math.sin(a)


def run_whole(dsm, di, dj, z_tol=K.DEFAULT_Z_TOL, max_dist=np.inf):
    di = np.broadcast_to(np.asarray(di, float), dsm.shape).copy()
    dj = np.broadcast_to(np.asarray(dj, float), dsm.shape).copy()
    out = np.empty(dsm.shape, np.uint8)
    K.visibility_los(dsm, di, dj, 0, 0, dsm.shape[0], dsm.shape[1], np.nan, z_tol, max_dist, out)
    return out


def run_tiled(dsm, di, dj, tile, halo, z_tol=K.DEFAULT_Z_TOL, max_dist=np.inf, pad_nan=False):
    """Tile the DSM, give each tile a halo (clipped at the DSM edge, or NaN beyond it)."""
    H, W = dsm.shape
    di = np.broadcast_to(np.asarray(di, float), dsm.shape)
    dj = np.broadcast_to(np.asarray(dj, float), dsm.shape)
    src = np.pad(dsm, halo, constant_values=np.nan) if pad_nan else dsm
    out = np.full(dsm.shape, 255, np.uint8)
    for i0 in range(0, H, tile[0]):
        for j0 in range(0, W, tile[1]):
            i1, j1 = min(i0 + tile[0], H), min(j0 + tile[1], W)
            if pad_nan:
                bi0, bi1, bj0, bj1 = i0, i1 + 2 * halo, j0, j1 + 2 * halo   # in padded coords
                ci, cj = halo, halo
            else:
                bi0, bi1 = max(i0 - halo, 0), min(i1 + halo, H)
                bj0, bj1 = max(j0 - halo, 0), min(j1 + halo, W)
                ci, cj = i0 - bi0, j0 - bj0
            block = np.ascontiguousarray(src[bi0:bi1, bj0:bj1])
            core = np.empty((i1 - i0, j1 - j0), np.uint8)
            K.visibility_los(block, di[i0:i1, j0:j1].copy(), dj[i0:i1, j0:j1].copy(), ci, cj,
                             i1 - i0, j1 - j0, float(np.nanmax(block)), z_tol, max_dist, core)
            out[i0:i1, j0:j1] = core
    assert (out != 255).all()
    return out


# --------------------------------------------------------------------------- analytic box shadow


def ray_box_entry(shape, box, di, dj):
    """Distance (cells, along the ray from each cell centre towards the sensor) at which the ray
    enters the axis-aligned box [i_lo, i_hi] x [j_lo, j_hi] (continuous coords), and the chord
    length inside it; inf / 0 where the ray misses the box."""
    n = math.hypot(di, dj)
    u = (di / n, dj / n)
    ii, jj = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    t_lo = np.zeros(shape)
    t_hi = np.full(shape, np.inf)
    for p, ud, lo, hi in ((ii, u[0], box[0], box[1]), (jj, u[1], box[2], box[3])):
        if abs(ud) < 1e-15:
            miss = (p < lo) | (p > hi)
            t_hi[miss] = -np.inf
        else:
            ta, tb = (lo - p) / ud, (hi - p) / ud
            t_lo = np.maximum(t_lo, np.minimum(ta, tb))
            t_hi = np.minimum(t_hi, np.maximum(ta, tb))
    hit = t_hi >= t_lo
    return np.where(hit, t_lo, np.inf), np.where(hit, t_hi - t_lo, 0.0)


def box_scene(shape, roof, h):
    """Flat ground at Z0 with one building; roof = (i0, i1, j0, j1) cell slices (end excluded)."""
    dsm = np.full(shape, Z0)
    dsm[roof[0]:roof[1], roof[2]:roof[3]] += h
    is_roof = np.zeros(shape, bool)
    is_roof[roof[0]:roof[1], roof[2]:roof[3]] = True
    return dsm, is_roof


def true_walls(roof):
    """The building's footprint in continuous cell coords: walls half a cell outside the roof
    cell centres."""
    return (roof[0] - 0.5, roof[1] - 0.5, roof[2] - 0.5, roof[3] - 0.5)


def grown(box, d):
    return (box[0] - d, box[1] + d, box[2] - d, box[3] + d)


def near_other_class(mask, y, x):
    """True if a cell of the opposite class of mask[y, x] lies within Chebyshev distance 1."""
    win = mask[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
    return bool((win != mask[y, x]).any())


ROOF = (34, 44, 36, 46)      # 10 x 10 cells
H_BUILD = 10.0


@pytest.mark.parametrize("theta", [20.0, 35.0])
@pytest.mark.parametrize("az", [90.0, 225.0, 0.0, 300.0])
def test_box_building_shadow_is_analytic(theta, az):
    shape = (80, 82)
    dsm, is_roof = box_scene(shape, ROOF, H_BUILD)
    di, dj = los(theta, az)
    n = math.hypot(di, dj)
    hn = H_BUILD * n                                   # expected shadow length (cells)
    vis = run_whole(dsm, di, dj)
    hidden = vis == 0
    ground = ~is_roof
    assert (vis[is_roof] == 1).all(), "roof cells must be visible"

    # 1. sandwich (provable for the bilinear surface): the surface is h on the roof-centre box R
    #    and 0 outside R grown by one cell; a ray through R over >= 1 cell entering below
    #    h - 1 cell of rise must hide, a ray missing R+1 below h cannot.
    R = (ROOF[0], ROOF[1] - 1, ROOF[2], ROOF[3] - 1)
    s_R, chord_R = ray_box_entry(shape, R, di, dj)
    s_R1, _ = ray_box_entry(shape, grown(R, 1.0), di, dj)
    must = ground & (chord_R >= 1.0) & (s_R < hn - 1.0)
    may = ground & (s_R1 < hn)
    assert must.sum() > 20
    assert (hidden[must]).all(), "cells whose ray runs into the building below its roof are hidden"
    assert not (hidden & ~may).any(), "only cells whose ray meets the building can be hidden"

    # 2. against the true box (walls half a cell outside the roof centres; a cell is truly
    #    hidden when its ray meets a wall less than h*tan(theta)/c cells away): the kernel's
    #    shadow is the true one within one cell, i.e. it contains the truth shrunk by one cell and
    #    lies inside the truth grown by one cell (the far edge included), and every disagreement
    #    is a cell on the true shadow's boundary.
    s_true, _ = ray_box_entry(shape, true_walls(ROOF), di, dj)
    truth = ground & (s_true < hn)
    ring = np.ones((3, 3), bool)
    assert not (hidden & ~ndimage.binary_dilation(truth, ring)).any()
    assert hidden[ndimage.binary_erosion(truth, ring, border_value=1)].all()
    bad = np.argwhere(hidden != truth)
    assert all(near_other_class(truth, y, x) for y, x in bad), bad
    assert len(bad) <= 0.35 * truth.sum()

    # 3. the shadow lies on the side away from the sensor: behind the line of every wall that
    #    faces the sensor; and the ground along those walls is visible
    walls = {  # outward normal: (cells just outside the wall, wall line i or j coordinate)
        (-1, 0): ((slice(ROOF[0] - 1, ROOF[0]), slice(ROOF[2], ROOF[3])), ROOF[0] - 0.5),  # north
        (1, 0): ((slice(ROOF[1], ROOF[1] + 1), slice(ROOF[2], ROOF[3])), ROOF[1] - 0.5),   # south
        (0, -1): ((slice(ROOF[0], ROOF[1]), slice(ROOF[2] - 1, ROOF[2])), ROOF[2] - 0.5),  # west
        (0, 1): ((slice(ROOF[0], ROOF[1]), slice(ROOF[3], ROOF[3] + 1)), ROOF[3] - 0.5)}   # east
    facing = [w for w in walls if w[0] * di + w[1] * dj > 1e-9]
    assert facing
    yy, xx = np.nonzero(hidden)
    for w in facing:
        cells, line = walls[w]
        assert (vis[cells] == 1).all(), w
        coord = yy if w[0] else xx
        sign = w[0] or w[1]
        assert (sign * (coord - line) < 0).all(), w


@pytest.mark.parametrize("theta", [20.0, 35.0])
def test_strip_width_behind_wall_east_sensor(theta):
    """Sensor due east: every row crossing the building has a hidden run immediately west of the
    west wall, nothing else hidden in that row. The run holds the cells whose centre lies within
    h*tan(theta)/c of the wall, to one cell: the bilinear surface ramps from the ground centre to
    the roof centre, which moves the effective wall half a cell into the roof, and the ray must
    pass z_tol below the roof, so the run can be one cell short (never long): in continuous terms
    its length is within [hn - 1 - z_tol*|los|, hn]."""
    shape = (80, 82)
    dsm, _ = box_scene(shape, ROOF, H_BUILD)
    di, dj = los(theta, 90.0)
    vis = run_whole(dsm, di, dj)
    n = math.hypot(di, dj)
    hn = H_BUILD * n
    truth = sum(1 for k in range(1, ROOF[2] + 1) if k - 0.5 < hn)   # cell k centred k-0.5 from the wall
    for y in range(ROOF[0], ROOF[1]):
        west = vis[y, :ROOF[2]]
        hidden_cols = np.nonzero(west == 0)[0]
        width = len(hidden_cols)
        assert truth - 1 <= width <= truth, (y, width, truth, hn)
        assert hn - 1 - K.DEFAULT_Z_TOL * n <= width <= hn, (y, width, hn)
        # contiguous and touching the wall
        assert np.array_equal(hidden_cols, np.arange(ROOF[2] - width, ROOF[2]))
        assert (vis[y, ROOF[3]:] == 1).all()          # east side faces the sensor
    assert (vis[:ROOF[0]] == 1).all() and (vis[ROOF[1]:] == 1).all()


def test_neighbouring_tile_building_hides_cells_in_this_tile():
    """A 40 m tower in tile (1, 2) casts its occlusion into tile (1, 1); with the halo the tiled
    result equals the whole one, without it it does not."""
    shape, tile = (96, 96), (32, 32)
    dsm = np.full(shape, Z0)
    tower = (40, 48, 66, 72)
    dsm[tower[0]:tower[1], tower[2]:tower[3]] += 40.0
    for az in (90.0, 60.0):
        di, dj = los(20.0, az)
        n = math.hypot(di, dj)
        halo = K.halo_cells(np.nanmax(dsm) - np.nanmin(dsm), n)
        whole = run_whole(dsm, di, dj)
        hidden_in_left_tile = whole[32:64, 32:64] == 0
        assert hidden_in_left_tile.sum() > 50
        for pad_nan in (False, True):
            tiled = run_tiled(dsm, di, dj, tile, halo, pad_nan=pad_nan)
            np.testing.assert_array_equal(tiled, whole)
        no_halo = run_tiled(dsm, di, dj, tile, 0)
        assert (no_halo[32:64, 32:64] == 1).all()     # the tower is invisible without a halo


def _city(rng, shape, n_build=40):
    ii, jj = np.mgrid[0:shape[0], 0:shape[1]]
    dsm = 80.0 + 0.05 * ii + 0.5 * np.sin(jj / 9.0) + rng.normal(0, 0.1, shape)
    for _ in range(n_build):
        i0, j0 = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
        hi, wi = rng.integers(3, 12, 2)
        dsm[i0:i0 + hi, j0:j0 + wi] = np.nanmax(dsm[i0:i0 + hi, j0:j0 + wi]) + rng.uniform(3, 25)
    dsm[rng.random(shape) < 0.01] = np.nan
    dsm[10:14, 50:60] = np.nan
    return dsm


@pytest.mark.parametrize("pad_nan", [False, True])
def test_tiled_equals_whole_with_varying_los(pad_nan):
    rng = np.random.default_rng(11)
    shape = (96, 104)
    dsm = _city(rng, shape)
    ii, jj = np.mgrid[0:shape[0], 0:shape[1]]
    theta = 15.0 + 15.0 * jj / shape[1]                 # LOS varies across the scene
    az = np.radians(200.0 + 40.0 * ii / shape[0])
    nn = np.tan(np.radians(theta)) / CELL
    di, dj = -nn * np.cos(az), nn * np.sin(az)
    halo = K.halo_cells(np.nanmax(dsm) - np.nanmin(dsm), nn.max())
    if pad_nan:
        padded = np.pad(dsm, halo, constant_values=np.nan)
        whole = np.empty(shape, np.uint8)
        K.visibility_los(padded, di, dj, halo, halo, shape[0], shape[1], np.nan,
                         K.DEFAULT_Z_TOL, np.inf, whole)
    else:
        whole = run_whole(dsm, di, dj)
    assert 0.03 < (whole == 0).mean() < 0.5 and (whole == 2).any()
    for tile in ((32, 32), (17, 23), (64, 11), (5, 104)):
        tiled = run_tiled(dsm, di, dj, tile, halo, pad_nan=pad_nan)
        np.testing.assert_array_equal(tiled, whole, err_msg=str(tile))
        # the march never needs to go beyond the halo: max_dist = halo changes nothing
        tiled_md = run_tiled(dsm, di, dj, tile, halo, max_dist=float(halo), pad_nan=pad_nan)
        np.testing.assert_array_equal(tiled_md, whole, err_msg=str(tile))


# --------------------------------------------------------------------------- planes


def plane(shape, slope_m_per_cell, dir_deg):
    """Plane rising by slope_m_per_cell per cell towards azimuth dir_deg (clockwise from north)."""
    ii, jj = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    a = math.radians(dir_deg)
    return Z0 + slope_m_per_cell * (-ii * math.cos(a) + jj * math.sin(a))


@pytest.mark.parametrize("theta,az", [(20.0, 90.0), (35.0, 225.0), (45.0, 17.0), (35.0, 180.0)])
@pytest.mark.parametrize("plane_dir_offset", [0.0, 30.0, -50.0])
def test_gentle_back_facing_plane_all_visible(theta, az, plane_dir_offset):
    """A plane rising towards the sensor at 70 % of the grazing slope stays fully visible: exact,
    quantised to 1 cm, float32-rounded, and with noise up to z_tol + 0.15/|los| peak to peak."""
    shape = (48, 52)
    di, dj = los(theta, az)
    grazing = 1.0 / math.hypot(di, dj)                 # metres per cell along the LOS
    # the slope along the LOS is 70 % of grazing whatever the plane's own orientation
    slope = 0.7 * grazing / math.cos(math.radians(plane_dir_offset))
    dsm = plane(shape, slope, az + plane_dir_offset)
    rng = np.random.default_rng(5)
    amp = 0.5 * (K.DEFAULT_Z_TOL + 0.15 * grazing) * 0.99
    variants = {
        "exact": dsm,
        "cm": np.round(dsm, 2),
        "float32": dsm.astype(np.float32).astype(np.float64),
        "noise": dsm + rng.uniform(-amp, amp, shape),
    }
    for name, d in variants.items():
        vis = run_whole(d, di, dj)
        assert (vis == 1).all(), (name, (vis == 0).sum())


@pytest.mark.parametrize("theta,az", [(20.0, 90.0), (35.0, 225.0), (45.0, 333.0)])
def test_steep_back_facing_plane_hidden_and_front_facing_visible(theta, az):
    shape = (48, 52)
    di, dj = los(theta, az)
    grazing = 1.0 / math.hypot(di, dj)
    interior = (slice(3, -3), slice(3, -3))
    steep = run_whole(plane(shape, 1.3 * grazing, az), di, dj)
    assert (steep[interior] == 0).all()
    # sensor-facing slopes, however steep (here 5x grazing, falling towards the sensor)
    front = run_whole(plane(shape, 5.0 * grazing, az + 180.0), di, dj)
    assert (front == 1).all()


@pytest.mark.parametrize("theta,az", [(20.0, 90.0), (35.0, 225.0)])
def test_grazing_slope_is_the_threshold_with_zero_tolerance(theta, az):
    """With z_tol = 0 a plane at 99 % of the grazing slope is visible, at 101 % hidden."""
    shape = (40, 40)
    di, dj = los(theta, az)
    grazing = 1.0 / math.hypot(di, dj)
    below = run_whole(plane(shape, 0.99 * grazing, az), di, dj, z_tol=0.0)
    above = run_whole(plane(shape, 1.01 * grazing, az), di, dj, z_tol=0.0)
    assert (below == 1).all()
    assert (above[3:-3, 3:-3] == 0).all()


# --------------------------------------------------------------------------- real DSM


def test_real_stereo_dsm_tiled_equals_whole():
    """s2p's Marseille stereo DSM (0.5 m, NaN holes, 81-275 m), a 20 deg view from the SE."""
    rasterio = pytest.importorskip("rasterio")
    path = real("s2p/tests/data/expected_output/triplet/dsm.tif")
    with rasterio.open(path) as src:
        dsm = src.read(1).astype(np.float64)
        cell = abs(src.transform.a)
        if src.nodata is not None and not np.isnan(src.nodata):
            dsm[dsm == src.nodata] = np.nan
    dsm = np.ascontiguousarray(dsm[200:600, 250:650])
    di, dj = los(20.0, 135.0, cell)
    n = math.hypot(di, dj)
    halo = K.halo_cells(np.nanmax(dsm) - np.nanmin(dsm), n)
    whole = run_whole(dsm, di, dj, z_tol=0.5)
    frac_hidden = (whole == 0).sum() / (whole != 2).sum()
    assert 0.005 < frac_hidden < 0.4, frac_hidden
    np.testing.assert_array_equal(np.isnan(dsm), whole == 2)
    tiled = run_tiled(dsm, di, dj, (128, 96), halo, z_tol=0.5)
    np.testing.assert_array_equal(tiled, whole)
