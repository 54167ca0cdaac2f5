"""The new-building shadow ray (:mod:`offnadir.change.shadow_ray`, issue 7, H6's measurement wired by
H9): the kernel counts what the offline tool's numpy ray counts (and the same on a tile's core as on
the whole grid), the likelihood ratio's fit is non-decreasing and neutral (None) with fewer than 100
ground cells decided changed, the typical height is the median of the elevated cells' height, and a
run records the rule in the store's calibration attribute (on by default, off by the option)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import benchmark_module, coregistered_sim

from offnadir.change import shadow_ray as SR
from offnadir.change.options import ChangeOptions
from offnadir.change.shadow_ray_kernels import ray_counts


esr = benchmark_module("eval_shadow_ray")


@pytest.mark.parametrize("az_deg,k", [(180.0, 10), (37.0, 7), (251.5, 23), (300.0, 2)])
def test_kernel_equals_the_offline_numpy_ray(esr, az_deg, k):
    rng = np.random.default_rng(int(az_deg))
    m = rng.random((60, 70)) < 0.2
    di, dj = SR.offsets(math.radians(az_deg), k)
    got = ray_counts(m.astype(np.uint8), di, dj, 0, 60, 0, 70) / k
    ref = esr.ray_share(m, math.radians(az_deg), k)
    assert np.array_equal(got, ref)
    assert got.max() > 0


def test_kernel_on_a_core_with_its_halo_equals_the_whole_grid():
    rng = np.random.default_rng(3)
    m = (rng.random((80, 80)) < 0.3).astype(np.uint8)
    di, dj = SR.offsets(math.radians(123.0), 12)
    whole = ray_counts(m, di, dj, 0, 80, 0, 80)
    win = m[20 - 14:50 + 14, 30 - 14:60 + 14].copy()  # core rows 20-50, columns 30-60, halo K + 2
    part = ray_counts(win, di, dj, 14, 44, 14, 44)
    assert np.array_equal(part, whole[20:50, 30:60])


def test_fit_is_non_decreasing_and_neutral_without_enough_changed_cells():
    unchanged = np.array([9000, 500, 300, 200, 100, 80, 60, 40, 20, 10])
    changed = np.array([300, 20, 40, 15, 30, 40, 50, 60, 70, 90])
    llr = SR.fit(np.stack([unchanged, changed]))
    assert llr is not None and np.all(np.diff(llr) >= -1e-12)
    assert llr[0] < 0 < llr[-1]  # cells without unexplained shadow down-sun lose, full rays gain
    few = np.stack([unchanged, np.array([50, 0, 0, 0, 0, 0, 0, 0, 0, 49])])
    assert SR.fit(few) is None


def test_typical_height_is_the_median_of_the_histogram():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 1000):
        h = rng.uniform(2.0, 30.0, n)
        hist = np.bincount((h / SR.HEIGHT_STEP).astype(np.int64), minlength=SR.HEIGHT_BINS)
        assert abs(SR.typical_height(hist) - np.median(h)) <= SR.HEIGHT_STEP
    assert math.isnan(SR.typical_height(np.zeros(SR.HEIGHT_BINS, np.int64)))


def test_ray_length_is_the_shadow_of_the_typical_height():
    assert SR.ray_length(10.0, math.radians(40.0), 0.5, 16) == 24  # 23.8 cells
    assert SR.ray_length(10.0, math.radians(20.0), 0.5, 8) == 32  # at most 4 windows
    assert SR.ray_length(0.1, math.radians(60.0), 1.0, 16) == 2  # at least 2 cells


def test_default_is_on_and_the_switch_is_a_change_option():
    assert ChangeOptions().new_building_shadows is True
    assert ChangeOptions.from_config({"new_building_shadows": False}).new_building_shadows is False


@pytest.mark.parametrize("on", [True, False])
def test_a_run_records_the_rule_in_the_calibration_attribute(tmp_path, on):
    import xarray as xr

    import offnadir.change as C

    out = coregistered_sim(tmp_path)
    C.detect(str(out), new_building_shadows=on)
    rec = json.loads(xr.open_zarr(out).attrs["change_calibration"])["shadow_ray"]
    assert rec["bins"] == SR.BINS and rec["min_changed"] == SR.MIN_CHANGED
    if not on:
        assert rec["rule"] == "off (change.new_building_shadows: false)"
        return
    suns = json.loads(xr.open_zarr(out).attrs["change_sun"])
    acc = suns[1]["shadow_classifier"]["accuracy_shadow"]
    if acc < 0.5:  # no witness: said so, nothing fitted
        assert rec["rule"].startswith("off")
        return
    assert 1.0 < rec["typical_height_m"] < 100.0
    t = rec["targets"]["1"]
    assert t["K"] >= 2 and t["ground_changed"] + t["ground_unchanged"] > 1000
    if t["ground_changed"] >= SR.MIN_CHANGED:
        assert len(t["log_lr"]) == SR.BINS and np.all(np.diff(t["log_lr"]) >= -1e-9)
    else:
        assert t["log_lr"] is None


def test_kernel_equals_its_per_cell_definition_on_random_windows():
    """The row-by-row kernel against the per-cell count it replaced: marks other than 0/1, rays
    leaving the grid on every side, empty and one-cell windows."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        ny, nx = (int(v) for v in rng.integers(1, 30, 2))
        m = ((rng.random((ny, nx)) < rng.random()) * rng.integers(1, 4, (ny, nx))).astype(np.uint8)
        k = int(rng.integers(1, 50))
        di, dj = SR.offsets(rng.uniform(0.0, 2.0 * math.pi), k)
        i0, j0 = int(rng.integers(0, ny)), int(rng.integers(0, nx))
        i1, j1 = int(rng.integers(i0, ny + 1)), int(rng.integers(j0, nx + 1))
        ref = np.zeros((i1 - i0, j1 - j0))
        for i in range(i0, i1):
            for j in range(j0, j1):
                a, b = i + di, j + dj
                ins = (a >= 0) & (a < ny) & (b >= 0) & (b < nx)
                ref[i - i0, j - j0] = np.count_nonzero(m[a[ins], b[ins]])
        assert np.array_equal(ray_counts(m, di, dj, i0, i1, j0, j1), ref)


def test_the_maps_pass_takes_what_the_ray_pass_handed_over_and_it_changes_nothing(tmp_path):
    """The ray pass hands its bins of S and the ground cells' probability to the maps pass
    (tileio.hand_over); a run that hands nothing over (the maps pass computes them again) writes
    the same arrays, bit for bit."""
    import shutil

    import zarr

    import offnadir.change as C
    from offnadir.change import tileio
    from offnadir.cli import main

    d = tmp_path / "scene"
    assert main(["simulate", str(d), "--seed", "0", "--size", "128"]) == 0
    a = tmp_path / "a.zarr"
    assert main(["coregister", "--dsm", str(d / "dsm.tif"), "--image", str(d / "base.tif"), "--image",
                 str(d / "target.tif"), "-o", str(a), "--workers", "1", "--quiet"]) == 0
    b = tmp_path / "b.zarr"
    shutil.copytree(a, b)
    taken, orig = [], tileio.take_over

    def spy(io, key):
        v = orig(io, key)
        taken.append((key[0], v is not None))
        return v
    tileio.take_over = spy
    try:
        C.detect(str(a))
    finally:
        tileio.take_over = orig
    rec = json.loads(zarr.open_group(str(a), mode="r").attrs["change_calibration"])["shadow_ray"]
    assert rec["targets"]["1"]["log_lr"] is not None  # the scene's rule is on: both arrays are used
    assert ("bins", True) in taken and ("ground_p", True) in taken
    keep = tileio.hand_over
    tileio.hand_over = lambda io, key, arr: False
    try:
        C.detect(str(b))
    finally:
        tileio.hand_over = keep
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    for name in ("probability", "change", "score", "change_ortho", "score_ortho"):
        assert np.array_equal(ga[name][...], gb[name][...], equal_nan=name in ("probability", "score")), name


def test_the_ray_counts_towards_the_localisations_gate(esr, tmp_path):
    """The maps pass adds the ray's log LR to the wide window's ground probability *before* the
    localisation (issue 7, n3 ninth round): the offline tool's ``first`` variant (that order)
    reproduces the stored probability, its ``both`` variant (the ray after the localisation, the
    order before) does not."""
    import offnadir.change as C

    store = coregistered_sim(tmp_path, seed=0, size=128)
    C.detect(str(store))
    d = esr.load(store)
    assert d["cal"]["shadow_ray"]["targets"]["1"]["log_lr"] is not None  # the rule is on here
    p0, _ = esr.ED.decide(d, "current")
    with np.errstate(invalid="ignore"):
        d["gone"] = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    fin = np.isfinite(d["prob"])
    first, _, _ = esr.decide(d, "first")
    both, _, _ = esr.decide(d, "both")
    assert np.nanmax(np.abs(first[fin] - d["prob"][fin])) < 1e-5
    assert np.nanmax(np.abs(both[fin] - d["prob"][fin])) > 1e-3
