"""Relative bias from tie points (issue 8): the machinery. Accuracy targets on real and simulated
scenes are in ``benchmarks/eval_tiebias.py``."""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import dask
import numpy as np
import pytest

from offnadir.camera.bias import affine_displacement, apply_affine, choose_model_ftest, solve_bias_robust
from offnadir.cube import tiepoint_kernels as tk
from offnadir.cube.tiebias import MIN_POINTS, _fit_image, fit_tie_bias, format_report
from offnadir.cube.tiepoints import TieOptions
from offnadir.errors import ConfigError


# ------------------------------------------------------------------------------ kernels
def _texture(r, c):
    """A smooth analytic texture (known everywhere, so shifted samples are exact)."""
    return (np.sin(0.61 * r + 0.3) * np.cos(0.47 * c) + 0.5 * np.sin(0.23 * r - 0.37 * c + 1.0)
            + 0.3 * np.cos(0.83 * c + 0.29 * r))


def _windows(shift, n_pts=12, half=7, seed=0):
    """Templates at scattered sub-pixel positions; the image shows them ``shift`` px further on,
    with another gain and offset (other sun, other sensor)."""
    rng = np.random.default_rng(seed)
    rr, cc = np.meshgrid(np.arange(200.0), np.arange(220.0), indexing="ij")
    img = 3.0 * _texture(rr - shift[0], cc - shift[1]) + 10.0
    g = np.arange(-half, half + 1) * 0.93  # cell spacing of ~1 px, not on the pixel grid
    dr, dc = np.meshgrid(g, g, indexing="ij")
    centres = rng.uniform(30, 170, size=(n_pts, 2))
    rows = centres[:, :1] + dr.ravel()[None] + 0.21 * dc.ravel()[None]   # a slightly sheared window
    cols = centres[:, 1:] + dc.ravel()[None]
    tpl = _texture(rows, cols)
    return tpl, np.ascontiguousarray(rows), np.ascontiguousarray(cols), img


@pytest.mark.parametrize("shift", [(0.0, 0.0), (2.37, -1.62), (-4.5, 3.25)])
def test_search_and_refine_find_a_known_shift(shift):
    tpl, rows, cols, img = _windows(shift)
    P, n = tpl.shape
    radius = 6
    surf = np.full((P, 2 * radius + 1, 2 * radius + 1), np.nan)
    zero = np.zeros(P)
    tk.ncc_search(tpl, rows, cols, img, 0.0, 0.0, zero, zero, radius, int(0.8 * n), surf)
    best = np.nanargmax(surf.reshape(P, -1), axis=1)
    a, b = np.unravel_index(best, surf.shape[1:])
    # the integer peak is the nearest integer shift (ties at .5 may go either way)
    assert np.all(np.abs(a - radius - shift[0]) <= 0.51) and np.all(np.abs(b - radius - shift[1]) <= 0.51)
    out = np.full((P, 4), np.nan)
    tk.refine_shift(tpl, rows, cols, img, 0.0, 0.0, (a - radius).astype(float), (b - radius).astype(float),
                    20, 1.0, int(0.8 * n), out)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], shift[0], atol=0.05)
    np.testing.assert_allclose(out[:, 1], shift[1], atol=0.05)
    assert np.all(out[:, 2] > 0.99)          # gain and offset do not lower the correlation
    assert np.all(out[:, 3] < 0.05)


def test_refine_fails_cleanly_without_texture():
    tpl, rows, cols, _ = _windows((0.0, 0.0), n_pts=3)
    flat = np.full((200, 220), 7.0)
    out = np.zeros((3, 4))
    tk.refine_shift(tpl, rows, cols, flat, 0.0, 0.0, np.zeros(3), np.zeros(3), 20, 1.0, 100, out)
    assert np.isnan(out).all()


# ------------------------------------------------------------------------------ robust fit
def _points(n, aff, noise, seed, outliers=0.0):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0, 1000, size=(n, 2))
    meas = np.column_stack(apply_affine(aff, pred[:, 0], pred[:, 1])) + rng.normal(0, noise, (n, 2))
    k = int(outliers * n)
    meas[:k] += rng.uniform(-8, 8, size=(k, 2))  # real change, cars: anything within the search
    return pred, meas, k


def test_robust_fit_rejects_outliers_and_recovers_the_affine():
    aff = (1.0015, 0.002, 1.2, -0.001, 0.999, -2.0)
    pred, meas, k = _points(300, aff, 0.15, seed=1, outliers=0.25)
    bias, used, inl, sigma = solve_bias_robust(pred, meas, "auto")
    assert used == "affine"
    assert inl[k:].mean() > 0.95 and inl[:k].mean() < 0.2
    err = affine_displacement(np.array(bias) - np.array(aff) + np.array([1, 0, 0, 0, 1, 0]), (1000, 1000))
    assert err < 0.1
    assert 0.1 < sigma[0] < 0.2 and 0.1 < sigma[1] < 0.2


def test_ftest_keeps_the_shift_for_a_noisy_shift():
    # a pure shift with 0.2 px noise: the F-test at alpha 1e-3 should almost never pick the affine
    picks = [choose_model_ftest(*_points(300, (1, 0, 0.7, 0, 1, -0.4), 0.2, seed=s)[:2]) for s in range(40)]
    assert picks.count("affine") <= 2
    pred, meas, _ = _points(300, (1.0, 0.001, 0.7, 0.0, 1.0, -0.4), 0.2, seed=3)  # 1 px over the image
    assert choose_model_ftest(pred, meas) == "affine"


# ------------------------------------------------------------------------------ options / CLI
def test_options_and_cli_switch():
    assert TieOptions.from_config(None).enabled
    with pytest.raises(ConfigError, match="tie_bias.model"):
        TieOptions.from_config({"model": "spline"})
    with pytest.raises(ConfigError, match="unknown option"):
        TieOptions.from_config({"pionts": 3})
    from offnadir.cli import coregister as cc
    import argparse

    p = argparse.ArgumentParser()
    cc.add_cube_arguments(p)
    a = p.parse_args(["--dsm", "d.tif", "--image", "a.tif", "-o", "o.zarr", "--no-tie-bias"])
    assert a.tie_bias is False
    assert p.parse_args(["--dsm", "d.tif", "--image", "a.tif", "-o", "o.zarr"]).tie_bias is True


def test_too_few_points_keep_the_camera(caplog):
    from offnadir.camera.camera import IDENTITY

    class Im:
        name, shape = "t", (100, 100)

    with caplog.at_level(logging.WARNING, logger="offnadir.cube.tiepoints"):
        entry, corr = _fit_image(Im(), [], TieOptions())
    assert corr == IDENTITY and not entry["applied"] and entry["n_points"] == 0
    assert f"at least {MIN_POINTS}" in entry["warning"] and "kept as given" in caplog.text


# ------------------------------------------------------------------------------ simulator
@pytest.fixture(scope="module")
def sim_plan(tmp_path_factory):
    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    d = tmp_path_factory.mktemp("tiesim")
    simulate(d, seed=2, size=256)
    with dask.config.set(scheduler="threads", num_workers=1):
        plan = plan_cube(d / "dsm.tif", [d / "base.tif", d / "target.tif"], chunk=256)
    return d, plan


def test_fit_recovers_an_injected_bias_and_leaves_a_consistent_model(sim_plan):
    """The simulator's RPCs are fitted to the true cameras: a bias put on the target's camera must
    come off again (relative to the base); with none put on, the fit stays near zero."""
    _, sim_plan = sim_plan
    shape = sim_plan.images[1].shape
    centre = (np.asarray(shape, float) - 1) / 2
    L = np.array([[1.0015, 0.002], [-0.001, 0.999]])
    t = centre + np.array([2.5, -1.5]) - L @ centre
    inj = (L[0, 0], L[0, 1], t[0], L[1, 0], L[1, 1], t[1])
    tgt = sim_plan.images[1]
    biased = dataclasses.replace(sim_plan, images=(sim_plan.images[0],
                                                  dataclasses.replace(tgt, camera=tgt.camera.with_bias(inj))))
    with dask.config.set(scheduler="threads", num_workers=1):
        fitted, rep = fit_tie_bias(biased, TieOptions())
        same, rep0 = fit_tie_bias(sim_plan, TieOptions())
    e = rep[1]
    assert e["applied"] and e["n_points"] >= 30 and e["residual_before_median_px"] > 2.0
    # the target's model is the true one again: its bias undoes the injected one
    assert affine_displacement(fitted.images[1].camera.bias, shape) < 0.25
    assert e["residual_after_median_px"] < 0.3
    assert fitted.images[0].camera == sim_plan.images[0].camera   # the base never moves
    assert affine_displacement(same.images[1].camera.bias, shape) < 0.1
    text = format_report(rep)
    assert "tie points" in text and "residual median/p90" in text
    json.dumps(rep)  # the report is what goes into the store's attributes
    assert math.isfinite(e["max_correction_px"])


def test_same_date_mates_are_tied_to_each_other(sim_plan):
    """Two images of one later date (here the target twice, each with its own injected bias): the
    mate with more points is tied to the base, the other to it, and both biases come off."""
    _, sim_plan = sim_plan
    base, tgt = sim_plan.images
    shape = tgt.shape

    def shifted(dr, dc, name):
        inj = (1.0, 0.0, dr, 0.0, 1.0, dc)
        return dataclasses.replace(tgt, camera=tgt.camera.with_bias(inj), name=name, date="2030-01-01")

    plan = dataclasses.replace(sim_plan, images=(dataclasses.replace(base, date="2020-01-01"),
                                                 shifted(2.5, -1.5, "t1"), shifted(-1.0, 2.0, "t2")))
    with dask.config.set(scheduler="threads", num_workers=1):
        fitted, rep = fit_tie_bias(plan, TieOptions())
    roles = [e["role"] for e in rep]
    assert roles[0] == "base" and sorted(roles[1:]) == ["tied to base", f"tied to {rep[roles.index('tied to base')]['image']} (same date)"]
    mate = next(e for e in rep if e["role"].endswith("(same date)"))
    assert mate["applied"] and mate["residual_after_median_px"] < 0.3 and "cross_date_fit" in mate
    for k in (1, 2):  # each target's model is the true one again
        assert affine_displacement(fitted.images[k].camera.bias, shape) < 0.25, rep[k]


def test_cli_stores_the_report_and_can_switch_it_off(sim_plan, tmp_path, capsys):
    import zarr

    from offnadir.cli import main

    d = sim_plan[0]
    base = ["coregister", "--dsm", str(d / "dsm.tif"), "--image", str(d / "base.tif"), "--image",
            str(d / "target.tif"), "--workers", "1", "--chunk", "256"]
    assert main(base + ["-o", str(tmp_path / "on.zarr")]) == 0
    err = capsys.readouterr().err
    assert "relative bias from tie points" in err and "tie-point pass took" in err
    rep = json.loads(zarr.open_group(str(tmp_path / "on.zarr"), mode="r").attrs["tie_bias"])
    assert [e["image"] for e in rep] == ["base", "target"] and rep[1]["n_points"] > 0
    imgs = json.loads(zarr.open_group(str(tmp_path / "on.zarr"), mode="r").attrs["images"])
    assert imgs[1]["bias"] == pytest.approx(rep[1]["bias"])   # the cube used the fitted camera
    assert main(base + ["-o", str(tmp_path / "off.zarr"), "--no-tie-bias"]) == 0
    rep = json.loads(zarr.open_group(str(tmp_path / "off.zarr"), mode="r").attrs["tie_bias"])
    assert "switched off" in rep[1]["role"]
