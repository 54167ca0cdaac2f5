"""Bias compensation (Fraser & Hanley image-space affine) and GCP reading.

Real data: the Orthority QuickBird-2 basic-1B crop and its 5 surveyed field GCPs; the vendor RPC
misses them by ~3.6 px and the golden file (compiled from Orthority's tests) gives each miss.
Synthetic: a known bias injected into a real camera (s2p img_01) must be recovered.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import real

import offnadir
from offnadir.camera.bias import choose_model, leave_one_out, solve_bias
from offnadir.camera.gcps import GCPs
from offnadir.errors import GCPError

QB2 = real("orthority/tests/data/rpc/qb2_basic1b.tif")
QB2_GCPS = real("orthority/tests/data/rpc/gcps.geojson")
S2P = real("s2p/tests/data/input_pair/img_01.tif")
GOLDEN = real("golden/golden_values.json")


@pytest.fixture(scope="module")
def qb2():
    return offnadir.read_camera(QB2)


@pytest.fixture(scope="module")
def s2p():
    return offnadir.read_camera(S2P)


def _fit_quiet(*a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return offnadir.fit_bias(*a, **k)


def _loo_quiet(*a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return leave_one_out(*a, **k)


# --------------------------------------------------------------------------- real QuickBird-2
def test_qb2_vendor_rpc_misses_gcps_and_bias_fit_fixes_it(qb2):
    gcps = offnadir.read_gcps(QB2_GCPS)
    assert len(gcps) == 5
    # 2 of the 5 surveyed GCPs lie outside the 1450x850 crop (measured on the parent scene): warned, used
    with pytest.warns(UserWarning, match=r"2 of 5 GCPs lie outside the 1450x850 image"):
        fitted = offnadir.fit_bias(qb2, gcps)
    rep = fitted.bias_report
    assert [p["in_image"] for p in rep] == [True, False, True, True, False]

    miss = np.array([p["residual_before"] for p in rep])
    assert 3.0 < miss.mean() < 4.2, miss  # the vendor RPC's ~12 m bias (err_bias 12.15 m, 6 m pixels)
    # each miss vector agrees with Orthority's (golden: RPC minus GCP, in (col, row) order)
    golden = np.array(json.loads(GOLDEN.read_text())["orthority_qb2_field_gcps"]["rpc_minus_gcp_px_measured"])
    ours = -np.array([[p["residual_col_before"], p["residual_row_before"]] for p in rep])
    np.testing.assert_allclose(ours, golden, atol=6e-4)

    assert max(p["residual"] for p in rep) < 0.25
    loo = _loo_quiet(qb2, gcps)
    assert [d["id"] for d in loo] == list(gcps.id)
    assert max(d["residual"] for d in loo) < 1.0, [round(d["residual"], 3) for d in loo]
    # the compensated camera projects every GCP's ground point onto its measured pixel
    r, c = fitted.project(gcps.lon, gcps.lat, gcps.h)
    assert np.hypot(r - gcps.row, c - gcps.col).max() < 0.25


def test_qb2_auto_model_prefers_shift_because_affine_extrapolates_worse(qb2):
    gcps = offnadir.read_gcps(QB2_GCPS)
    loo = {m: np.array([d["residual"] for d in _loo_quiet(qb2, gcps, model=m)]) for m in ("shift", "affine")}
    # with 4 GCPs per fit the affine's extra parameters fit noise: its worst withheld GCP is > 1 px off
    assert np.sqrt((loo["affine"] ** 2).mean()) > np.sqrt((loo["shift"] ** 2).mean())
    assert loo["affine"].max() > loo["shift"].max()
    assert _fit_quiet(qb2, gcps).bias_report[0]["model"] == "shift"
    assert _fit_quiet(qb2, gcps, model="affine").bias_report[0]["model"] == "affine"


def test_qb2_gcp_tags_in_tif_match_the_geojson(qb2):
    """The tif's GCP tags hold the same numbers as the GeoJSON (Orthority wrote both in its
    centre-of-pixel convention); read as GDAL corner-based tags (the default) they are 0.5 px
    less."""
    geo = offnadir.read_gcps(QB2_GCPS)
    centre = offnadir.read_gcps(QB2, pixel_origin="center")
    corner = offnadir.read_gcps(QB2)
    for name in ("lon", "lat", "h", "row", "col"):
        np.testing.assert_array_equal(getattr(centre, name), getattr(geo, name))
    np.testing.assert_array_equal(corner.row, geo.row - 0.5)
    np.testing.assert_array_equal(corner.col, geo.col - 0.5)
    np.testing.assert_array_equal(corner.lon, geo.lon)
    assert corner.id == ("1", "2", "3", "4", "5")


# --------------------------------------------------------------------------- synthetic
def _synthetic_gcps(camera_true, n, rng, noise_px=0.0):
    """GCPs that know their answer: random pixels and heights, ground from the true camera."""
    nr, nc = camera_true.shape
    row = rng.uniform(0, nr - 1, n)
    col = rng.uniform(0, nc - 1, n)
    h = camera_true.rpc.height_off + rng.uniform(-0.4, 0.4, n) * camera_true.rpc.height_scale
    lon, lat = camera_true.localize(row, col, h)
    return GCPs(tuple(f"p{k}" for k in range(n)), lon, lat, h,
                row + rng.normal(0, noise_px, n), col + rng.normal(0, noise_px, n), source="synthetic")


def _grid_error(cam_a, cam_b):
    """Max pixel distance between two cameras' projections over a ground grid covering the image."""
    nr, nc = cam_a.shape
    r, c = np.meshgrid(np.linspace(0, nr - 1, 9), np.linspace(0, nc - 1, 9), indexing="ij")
    hs = cam_a.rpc.height_off + np.array([-0.4, 0.0, 0.4]) * cam_a.rpc.height_scale
    errs = []
    for h in hs:
        lon, lat = cam_a.localize(r, c, np.full_like(r, h))
        ra, ca = cam_a.project(lon, lat, h)
        rb, cb = cam_b.project(lon, lat, h)
        errs.append(np.hypot(ra - rb, ca - cb).max())
    return max(errs)


TRUE_AFFINE = (1.0006, -0.0004, 3.7, 0.0005, 0.9993, -2.4)


def test_synthetic_affine_bias_is_recovered(s2p):
    rng = np.random.default_rng(7)
    truth = s2p.with_bias(TRUE_AFFINE)
    gcps = _synthetic_gcps(truth, 10, rng)
    fitted = offnadir.fit_bias(s2p, gcps)
    assert fitted.bias_report[0]["model"] == "affine"
    assert _grid_error(fitted, truth) < 0.01
    assert max(p["residual"] for p in fitted.bias_report) < 1e-4
    # a camera that already carries some other bias is refitted from scratch
    refit = offnadir.fit_bias(s2p.with_bias((1.01, 0.0, -50.0, 0.0, 0.99, 20.0)), gcps)
    assert _grid_error(refit, truth) < 0.01
    # and the LOO of exact data is exact too
    assert max(d["residual"] for d in leave_one_out(s2p, gcps)) < 1e-3


def test_bias_is_fitted_on_top_of_the_crop_affine(s2p):
    crop = (1.0, 0.0, -100.25, 0.0, 1.0, -40.75)  # this file starts 100.25 rows, 40.75 cols into the scene
    cropped = s2p.replace(crop=crop, shape=(800, 900))
    truth = cropped.with_bias(TRUE_AFFINE)
    gcps = _synthetic_gcps(truth, 8, np.random.default_rng(3))
    fitted = offnadir.fit_bias(cropped, gcps)
    assert fitted.crop == crop
    np.testing.assert_allclose(fitted.bias, TRUE_AFFINE, rtol=0, atol=1e-6)
    assert _grid_error(fitted, truth) < 0.01


@pytest.mark.parametrize("n", [1, 2])
def test_shift_only_with_one_or_two_gcps(s2p, n):
    shift = (1.0, 0.0, -1.3, 0.0, 1.0, 2.2)
    truth = s2p.with_bias(shift)
    gcps = _synthetic_gcps(truth, n, np.random.default_rng(n))
    fitted = offnadir.fit_bias(s2p, gcps)  # auto -> shift
    assert fitted.bias_report[0]["model"] == "shift"
    np.testing.assert_allclose(fitted.bias, shift, atol=1e-6)
    assert _grid_error(fitted, truth) < 0.01
    with pytest.raises(GCPError, match=r"needs at least 3 GCPs; got %d" % n):
        offnadir.fit_bias(s2p, gcps, model="affine")


def test_noise_behaviour_is_sane(s2p):
    sigma, n = 0.3, 40
    rng = np.random.default_rng(11)
    truth = s2p.with_bias(TRUE_AFFINE)
    gcps = _synthetic_gcps(truth, n, rng, noise_px=sigma)
    fitted = offnadir.fit_bias(s2p, gcps)
    assert fitted.bias_report[0]["model"] == "affine"  # the injected affine is ~1 px across the image
    res = np.array([[p["residual_row"], p["residual_col"]] for p in fitted.bias_report])
    rms_axis = np.sqrt((res ** 2).mean())
    expected = sigma * np.sqrt((n - 3) / n)  # 3 parameters per axis absorbed
    assert 0.7 * expected < rms_axis < 1.3 * expected
    loo = np.array([[d["residual_row"], d["residual_col"]] for d in leave_one_out(s2p, gcps)])
    assert np.sqrt((loo ** 2).mean()) > rms_axis  # withheld points are predicted worse than fitted ones
    # the model error is well below the GCP noise (averaging over 40 GCPs)
    assert _grid_error(fitted, truth) < sigma


def test_auto_model_choice_rates():
    """"auto" picks the affine only when leave-one-out says it predicts better: rarely for a pure
    shift plus noise, always for a real ~1 px affine seen by 40 GCPs."""
    from offnadir.camera.bias import apply_affine

    rng = np.random.default_rng(5)

    def rate(aff, n, trials=200):
        hits = 0
        for _ in range(trials):
            pred = rng.uniform(0, 1024, (n, 2))
            meas = np.column_stack(apply_affine(aff, pred[:, 0], pred[:, 1])) + rng.normal(0, 0.3, (n, 2))
            hits += choose_model(pred, meas) == "affine"
        return hits / trials

    assert rate((1.0, 0.0, 2.0, 0.0, 1.0, -1.0), 12) < 0.2
    assert rate(TRUE_AFFINE, 40) > 0.95


def test_solve_bias_collinear_and_model_names():
    pred = np.array([[0.0, 0.0], [10.0, 10.0], [20.0, 20.0], [30.0, 30.0]])
    meas = pred + [1.0, -2.0]
    aff, used = solve_bias(pred, meas, "auto")
    assert used == "shift" and aff == (1.0, 0.0, 1.0, 0.0, 1.0, -2.0)
    assert choose_model(pred, meas) == "shift"
    with pytest.raises(GCPError, match="lie on one line"):
        solve_bias(pred, meas, "affine")
    with pytest.raises(offnadir.ConfigError, match="bias model must be one of"):
        solve_bias(pred, meas, "projective")


# --------------------------------------------------------------------------- GCP files
def test_csv_and_geojson_readers_agree(tmp_path):
    geo = offnadir.read_gcps(QB2_GCPS)
    lines = ["# surveyed GCPs, row/col are 0-based pixel centres", "ID; Lon; Lat; H; Row; Col"]
    for r in geo.to_records():
        lines.append(f"{r['id']};{r['lon']!r};{r['lat']!r};{r['h']!r};{r['row']!r};{r['col']!r}")
    (tmp_path / "g.csv").write_text("\n".join(lines) + "\n\n")
    csv = offnadir.read_gcps(tmp_path / "g.csv")
    assert csv.id == geo.id
    for name in ("lon", "lat", "h", "row", "col"):
        np.testing.assert_array_equal(getattr(csv, name), getattr(geo, name))
    # without an id column, ids are numbered; whitespace-separated columns work too
    (tmp_path / "w.csv").write_text("lon lat h row col\n24.4 -33.65 200 10 20\n24.41 -33.66 210 30 40\n")
    w = offnadir.read_gcps(tmp_path / "w.csv")
    assert w.id == ("gcp1", "gcp2") and w.row.tolist() == [10.0, 30.0]
    assert offnadir.read_gcps(tmp_path / "w.csv", pixel_origin="corner").col.tolist() == [19.5, 39.5]


def test_geojson_with_several_images_is_filtered_by_image(tmp_path):
    doc = json.loads(QB2_GCPS.read_text())
    other = json.loads(json.dumps(doc["features"][0]))
    other["properties"].update(filename="other.tif", id="elsewhere")
    doc["features"].append(other)
    (tmp_path / "multi.geojson").write_text(json.dumps(doc))
    gcps = offnadir.read_gcps(tmp_path / "multi.geojson", image=QB2)
    assert len(gcps) == 5 and "elsewhere" not in gcps.id
    assert offnadir.read_gcps(tmp_path / "multi.geojson", image="x/OTHER.TIF").id == ("elsewhere",)
    with pytest.raises(GCPError, match="several images"):
        offnadir.read_gcps(tmp_path / "multi.geojson")


def test_repeated_gcps_are_refused():
    """Nine GCPs at one point made leave-one-out report 0.00 px (issue 12): now a clean error."""
    import dataclasses


    cam = offnadir.read_camera(QB2)
    g = offnadir.read_gcps(QB2_GCPS)
    same = dataclasses.replace(g, id=tuple(f"p{k}" for k in range(9)), lon=np.full(9, g.lon[0]),
                               lat=np.full(9, g.lat[0]), h=np.full(9, g.h[0]), row=np.full(9, g.row[0]),
                               col=np.full(9, g.col[0]))
    with pytest.raises(GCPError, match="9 GCPs are the same point"):
        offnadir.leave_one_out(cam, same)
    with pytest.raises(GCPError, match="same point"):
        offnadir.fit_bias(cam, same[np.arange(3)])
    offnadir.fit_bias(cam, g)  # distinct points still fit
