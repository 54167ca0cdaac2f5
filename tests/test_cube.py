"""The co-registered cube through the public API (lazy, local threads)."""

from __future__ import annotations

import math
import warnings

import dask
import numpy as np
import pytest
import rasterio
from conftest import real
from synthetic import affine_rpc, box_scene, metres_per_degree, write_dsm, write_image

import offnadir
from offnadir.cube import geometry
from offnadir.cube.tile import ground_block
from offnadir.errors import DataError
from offnadir.pipeline import coregister, plan_cube

TRIPLET = real("s2p/tests/data/input_triplet")
TRIPLET_DSM = real("s2p/tests/data/expected_output/triplet/dsm.tif")
PAIR = real("s2p/tests/data/input_pair")
PAIR_DSM = real("s2p/tests/data/expected_output/pair/dsm.tif")


def _compute(ds):
    with dask.config.set(scheduler="threads"):
        return ds.compute()


@pytest.fixture(scope="module")
def triplet_cubes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # s2p DSMs declare no vertical datum (they are ellipsoidal)
        out = {}
        for chunk in (192, 300):
            ds = coregister(TRIPLET_DSM, [TRIPLET / "img_01.tif", TRIPLET / "img_02.tif"], chunk=chunk)
            out[chunk] = _compute(ds)
    return out


def test_chunk_size_does_not_change_the_cube(triplet_cubes):
    a, b = triplet_cubes[192], triplet_cubes[300]
    for name in ("row", "col", "visible", "dsm"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    np.testing.assert_allclose(a["value"].values, b["value"].values, rtol=0, atol=1e-3, equal_nan=True)
    vis = a["visible"].values
    assert (vis == 1).sum() > 100_000 and (vis == 0).sum() > 0  # real content, some relief occlusion


def test_cube_layout_and_coordinates(triplet_cubes):
    ds = triplet_cubes[192]
    assert ds["row"].dims == ("image", "y", "x") and ds["value"].dims == ("image", "band", "y", "x")
    assert ds["row"].dtype == np.float32 and ds["visible"].dtype == np.uint8
    assert list(ds["image"].values) == ["img_01", "img_02"]
    assert ds.rio.crs.to_epsg() == 32631
    with rasterio.open(TRIPLET_DSM) as src:
        assert ds.sizes["y"], ds.sizes["x"] == src.shape
        x0 = src.transform.c + 0.5 * src.transform.a
    assert ds["x"].values[0] == pytest.approx(x0)
    assert np.all(np.isfinite(ds["off_nadir"].values)) and np.all(ds["off_nadir"].values < 45)


def _correspondence_error(ds, pts1_rc, pts2_rc, roi=None):
    """Predict img_02 positions of img_01 positions from the cube (linear interpolation over cells
    visible in both images) and return the distance to the measured img_02 positions."""
    from scipy.interpolate import LinearNDInterpolator

    v = ds["visible"].values
    r0, c0, r1, c1 = ds["row"].values[0], ds["col"].values[0], ds["row"].values[1], ds["col"].values[1]
    ok = (v[0] == 1) & (v[1] == 1)
    lo = pts1_rc.min(axis=0) - 20
    hi = pts1_rc.max(axis=0) + 20
    sel = ok & (r0 > lo[0]) & (r0 < hi[0]) & (c0 > lo[1]) & (c0 < hi[1])
    f = LinearNDInterpolator(np.c_[r0[sel], c0[sel]], np.c_[r1[sel], c1[sel]])
    pred = f(pts1_rc[:, 0], pts1_rc[:, 1])
    return np.hypot(*(pred - pts2_rc).T), pred


def test_triplet_matches_real_sift(triplet_cubes):
    """481 real SIFT matches (s2p test data) vs the cube's prediction img_01 -> img_02."""
    m = np.loadtxt(real("s2p/tests/data/expected_output/units/matches_on_rpc_roi.txt"))
    err, pred = _correspondence_error(triplet_cubes[192], m[:, [1, 0]], m[:, [3, 2]])
    good = np.isfinite(err)
    assert good.sum() >= 200, "too few matches land on cells visible in both images"
    med = float(np.median(err[good]))
    print(f"triplet: {good.sum()} matches on visible cells, median error {med:.3f} px")
    assert med <= 1.0


def _ncc_matches(img1, img2, pred_pairs, half=10, search=4):
    """Measure img_02 positions of img_01 points by normalised cross-correlation around a guess."""
    from skimage.feature import match_template

    out = []
    for (r1, c1), (r2, c2) in pred_pairs:
        a, b = int(round(r1)), int(round(c1))
        tpl = img1[a - half:a + half + 1, b - half:b + half + 1]
        ra, cb = int(round(r2)), int(round(c2))
        win = img2[ra - half - search:ra + half + search + 1, cb - half - search:cb + half + search + 1]
        if tpl.shape != (2 * half + 1,) * 2 or win.shape != (2 * (half + search) + 1,) * 2 or tpl.std() < 1:
            out.append((np.nan, np.nan, 0.0))
            continue
        cc = match_template(win.astype(np.float64), tpl.astype(np.float64))
        i, j = np.unravel_index(np.argmax(cc), cc.shape)
        if 0 < i < cc.shape[0] - 1 and 0 < j < cc.shape[1] - 1:  # parabolic sub-pixel peak
            di = 0.5 * (cc[i - 1, j] - cc[i + 1, j]) / (cc[i - 1, j] - 2 * cc[i, j] + cc[i + 1, j])
            dj = 0.5 * (cc[i, j - 1] - cc[i, j + 1]) / (cc[i, j - 1] - 2 * cc[i, j] + cc[i, j + 1])
        else:
            di = dj = np.nan
        # template centre in img_02: window origin + peak + half; the integer start of tpl was (a, b)
        out.append((ra - search + i + di + (r1 - a), cb - search + j + dj + (c1 - b), cc[i, j]))
    return np.array(out)


def test_pair_agrees_with_image_correlation():
    """Réunion pair: no real matches ship with it, so measure correspondences from the pixels by
    normalised cross-correlation around the cube's prediction and compare."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _compute(coregister(PAIR_DSM, [PAIR / "img_01.tif", PAIR / "img_02.tif"], chunk=256))
    v = ds["visible"].values
    ok = (v[0] == 1) & (v[1] == 1)
    rng = np.random.default_rng(0)
    idx = rng.choice(np.flatnonzero(ok), 400, replace=False)
    r0, c0 = ds["row"].values[0].ravel()[idx], ds["col"].values[0].ravel()[idx]
    r1, c1 = ds["row"].values[1].ravel()[idx], ds["col"].values[1].ravel()[idx]
    with rasterio.open(PAIR / "img_01.tif") as a, rasterio.open(PAIR / "img_02.tif") as b:
        i1, i2 = a.read(1).astype(np.float64), b.read(1).astype(np.float64)
    meas = _ncc_matches(i1, i2, list(zip(zip(r0, c0), zip(r1, c1))))
    good = np.isfinite(meas[:, 0]) & (meas[:, 2] > 0.8)
    assert good.sum() >= 100
    err = np.hypot(meas[good, 0] - r1[good], meas[good, 1] - c1[good])
    print(f"pair: {good.sum()} correlation matches (ncc>0.8), median error {np.median(err):.3f} px")
    assert np.median(err) <= 1.0


# ----------------------------------------------------------------------------- synthetic geometry
def _scene(tmp_path, theta, phi, heights, rows=400, cols=400, name="img"):
    dsm = write_dsm(tmp_path / "dsm.tif", heights)
    img = write_image(tmp_path / f"{name}.tif", affine_rpc(theta, phi, rows=rows, cols=cols), rows, cols)
    return dsm, img


@pytest.mark.parametrize("theta,phi", [(20.0, 90.0), (30.0, 200.0), (25.0, 315.0)])
def test_box_building_hides_a_strip_of_width_h_tan_theta(tmp_path, theta, phi):
    bh, cell = 30.0, 0.5
    heights = box_scene(n=200, boxes=((80, 120, 80, 120, bh),))
    dsm, img = _scene(tmp_path, theta, phi, heights)
    ds = _compute(coregister(dsm, [img], chunk=64))
    vis = ds["visible"].values[0]
    expected = bh * math.tan(math.radians(theta)) / cell  # strip width in cells along the line of sight
    u_i, u_j = -math.cos(math.radians(phi)), math.sin(math.radians(phi))  # towards the sensor in (i, j)
    # distance (cells) from a ground cell towards the sensor until it meets the building footprint:
    # t_true for the raster footprint (cells 80..119 cover [79.5, 119.5]), t_loose for the footprint
    # grown by the half-cell ramp a bilinear surface puts around every wall
    ii, jj = np.mgrid[0:200, 0:200]
    # grown by the half-cell ramp a bilinear surface puts around every wall, t_inner for the part
    # of the footprint at full roof height in that surface (cell centres 80..119)
    t_true, t_loose, t_inner = (np.full(ii.shape, np.inf) for _ in range(3))
    for t in np.arange(0, expected + 10, 0.1)[::-1]:
        pi, pj = ii + t * u_i, jj + t * u_j
        t_true[(pi >= 79.5) & (pi <= 119.5) & (pj >= 79.5) & (pj <= 119.5)] = t
        t_loose[(pi >= 79) & (pi <= 120) & (pj >= 79) & (pj <= 120)] = t
        t_inner[(pi >= 80) & (pi <= 119) & (pj >= 80) & (pj <= 119)] = t
    ground = heights < 101
    hidden = vis == 0
    assert not hidden[~ground].any(), "roof cells must stay visible"
    # every hidden cell is behind the building, within the strip
    assert t_loose[hidden].max() <= expected + 1.0, (t_loose[hidden].max(), expected)
    # strip width behind each wall facing away from the sensor, counted in cells across the wall
    # (widest line crossing it: on oblique views the building's length cuts the strip short on the
    # other lines): h·tanθ times the share of the line of sight across that wall
    widths = []
    h0 = vis[80:120] == 0
    v0 = vis[:, 80:120] == 0
    if u_i < -0.1:
        widths.append((v0[120:].sum(axis=0).max(), expected * abs(u_i)))  # south wall
    if u_i > 0.1:
        widths.append((v0[:80].sum(axis=0).max(), expected * abs(u_i)))  # north wall
    if u_j < -0.1:
        widths.append((h0[:, 120:].sum(axis=1).max(), expected * abs(u_j)))  # east wall
    if u_j > 0.1:
        widths.append((h0[:, :80].sum(axis=1).max(), expected * abs(u_j)))  # west wall
    assert widths
    for got, want in widths:
        assert abs(got - want) <= 1.0, widths
    # every cell well inside the strip is hidden
    inside = ground & (t_inner >= 1.0) & (t_inner <= expected - 1.0)
    assert inside.sum() > 0.5 * expected * 40
    assert hidden[inside].all(), f"{(~hidden[inside]).sum()} cells inside the strip not hidden"
    # the side towards the sensor stays visible
    fi, fj = int(round(100 + 30 * u_i)), int(round(100 + 30 * u_j))
    assert vis[fi, fj] == 1


def test_tall_building_in_next_tile_hides_cells_in_this_one(tmp_path):
    # sensor to the east (phi=90): shadows of relief fall to the west; the building sits east of
    # the tile border at j=64, its hidden strip spills into the tile on the west
    heights = box_scene(n=160, boxes=((40, 120, 66, 90, 30.0),))
    dsm, img = _scene(tmp_path, 30.0, 90.0, heights)
    tiled = _compute(coregister(dsm, [img], chunk=64))["visible"].values[0]
    whole = _compute(coregister(dsm, [img], chunk=160))["visible"].values[0]
    np.testing.assert_array_equal(tiled, whole)
    assert (tiled[40:120, 30:64] == 0).sum() > 500  # hidden cells in the western tile
    expected = 30 * math.tan(math.radians(30)) / 0.5
    row = tiled[80]
    hidden = np.flatnonzero(row[:66] == 0)
    assert abs((66 - hidden.min()) - expected) <= 1.5


def test_values_are_sampled_at_the_projected_positions(tmp_path):
    heights = box_scene(n=120, boxes=((40, 70, 40, 70, 20.0),))
    dsm, img = _scene(tmp_path, 15.0, 45.0, heights)
    ds = _compute(coregister(dsm, [img], chunk=50))
    r, c = ds["row"].values[0].astype(np.float64), ds["col"].values[0].astype(np.float64)
    val = ds["value"].values[0, 0].astype(np.float64)
    ok = ds["visible"].values[0] != 2
    # the image encodes its own pixel position: bilinear sampling of a linear ramp is exact
    np.testing.assert_allclose(val[ok], 1000 + 10 * c[ok] + r[ok] / 100, atol=2e-3 * 10)
    assert ds["time"].values[0] == np.datetime64("2022-05-01T10:00:00")


def test_lattice_ground_coordinates_error_below_1e3_px():
    """pyproj on every cell vs the lattice interpolation, projected into a real image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_cube(TRIPLET_DSM, [TRIPLET / "img_01.tif"], chunk=256)
    cam = plan.images[0].camera
    worst = 0.0
    for step in (16, 32):
        p = plan.__class__(**{**plan.__dict__, "lattice_step": step})
        lon, lat, h = ground_block(p, 100, 356, 200, 456)
        I, J = np.mgrid[100:356, 200:456]
        lon_x, lat_x = geometry.cell_lonlat(plan.dsm, I, J)
        hh = np.where(np.isfinite(h), h, 150.0)
        r_a, c_a = cam.project(lon, lat, hh)
        r_x, c_x = cam.project(lon_x, lat_x, hh)
        err = float(np.max(np.hypot(r_a - r_x, c_a - c_x)))
        if step == 16:
            worst = err
    print(f"lattice step 16: max error {worst:.2e} px")
    assert worst <= 1e-3


def test_geoid_dsm_is_converted_to_ellipsoidal_heights(tmp_path):
    """An EGM96 DSM (SRTM .hgt) becomes ellipsoidal: stored + N(lon, lat) from the named grid."""
    hgt = real("shareloc/tests/data/dtm/srtm_ventoux/srtm90_non_void_filled/N44E005.hgt")
    gtx = real("shareloc/tests/data/dtm/geoid/egm96_15.gtx")
    img = real("shareloc/tests/data/image/phr_ventoux/left_image.tif")
    geom = real("shareloc/tests/data/rpc/phr_ventoux/left_image.geom")
    with pytest.raises(DataError, match="geoid"):
        plan_cube(hgt, [{"path": img, "model": geom}], chunk=256)
    plan = plan_cube(hgt, [{"path": img, "model": geom}], chunk=256, geoid=gtx)
    assert plan.dsm.vertical_datum == "egm96"
    lon, lat, h = ground_block(plan, 600, 610, 600, 610)
    stored = plan.dsm.read_block(600, 610, 600, 610)
    # independent twin: bilinear on the GTX grid read with rasterio
    with rasterio.open(gtx) as g:
        grid = g.read(1).astype(np.float64)
        t = g.transform
    fx = (lon - (t.c + t.a / 2)) / t.a
    fy = (lat - (t.f + t.e / 2)) / t.e
    x0, y0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
    ax, ay = fx - x0, fy - y0
    n = ((1 - ay) * ((1 - ax) * grid[y0, x0] + ax * grid[y0, x0 + 1])
         + ay * ((1 - ax) * grid[y0 + 1, x0] + ax * grid[y0 + 1, x0 + 1]))
    # N is interpolated on the 16-cell lattice (1.4 km here) like lon/lat: within 1 cm of the direct value
    np.testing.assert_allclose(h - stored, n, atol=1e-2)
    assert 40 < np.mean(n) < 60  # EGM96 undulation in Provence is about +50 m


def test_unknown_vertical_datum_warns(tmp_path):
    dsm = write_dsm(tmp_path / "dsm.tif", box_scene(n=40, boxes=()), tags={})
    img = write_image(tmp_path / "img.tif", affine_rpc(10, 0))
    with pytest.warns(UserWarning, match="assuming its heights are above the WGS84 ellipsoid"):
        plan_cube(dsm, [img], chunk=64)


def test_affine_test_camera_is_what_it_claims():
    """Guard for the synthetic camera: relief displacement h·tanθ away from the sensor."""
    rpc = affine_rpc(30.0, 90.0)
    cam = offnadir.Camera(rpc)
    k_e, _ = metres_per_degree()
    r0, c0 = cam.project(5.44, 43.26, 100.0)
    r1, c1 = cam.project(5.44, 43.26, 110.0)
    # 10 m up appears 10·tan30 m = 11.5 px... /0.5 m gsd, towards the west (away from an eastern sensor)
    assert c1 - c0 == pytest.approx(-10 * math.tan(math.radians(30)) / 0.5)
    assert r1 == pytest.approx(r0)
    assert cam.view_angles()["azimuth_deg"] == pytest.approx(90.0, abs=0.01)
    assert cam.view_angles()["off_nadir_deg"] == pytest.approx(30.0, abs=0.01)


@pytest.mark.parametrize("seed", [1, 4])
def test_visibility_agrees_with_the_ray_traced_simulator(tmp_path, seed):
    """The simulator renders by tracing image rays into the DSM; cells no ray reaches are occluded.
    The cube finds hidden cells by marching lines of sight from the cells. Two methods, one truth."""
    from scipy import ndimage

    from offnadir.simulate import simulate

    simulate(tmp_path / "s", seed=seed, size=160)
    ds = _compute(coregister(tmp_path / "s/dsm.tif", [tmp_path / "s/base.tif", tmp_path / "s/target.tif"],
                             chunk=64))
    with rasterio.open(tmp_path / "s/truth_occluded.tif") as f:
        occ = f.read(1)
    for k, bit in enumerate((1, 4)):  # base view, target view over the epoch-1 DSM (what the cube uses)
        vis = ds["visible"].values[k]
        truth = (occ & bit) > 0
        observable = vis != 2
        # cells on the rim of an occluded area are partly visible: either answer is right there
        rim = ndimage.binary_dilation(truth, iterations=1) & ~ndimage.binary_erosion(truth, iterations=1)
        agree = ((vis == 0) == truth)[observable & ~rim].mean()
        print(f"seed {seed} view {k}: {truth.sum()} truth-hidden cells, agreement off the rim {agree:.4f}")
        assert truth.sum() > 200
        assert agree >= 0.98
