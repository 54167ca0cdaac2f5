"""The far-side strip of benchmarks/eval_far_occlusion.py: the ground cells just beyond a roof's
predicted hidden zone, away from the target's sensor, and the strip's likeness to the roof."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import eval_far_occlusion as F  # noqa: E402


def test_away_step_points_away_from_the_sensor():
    assert F.away_step(270.0) == (0, 1)  # sensor west: hidden ground east of a roof
    assert F.away_step(90.0) == (0, -1)
    assert F.away_step(0.0) == (1, 0)  # sensor north: hidden ground south (rows grow southwards)
    assert F.away_step(315.0) == (1, 1)


def _scene(raised: bool):
    ny, nx = 30, 60
    elev = np.zeros((ny, nx), bool)
    elev[5:25, 10:20] = True
    patch = np.where(elev, 7, 0)
    vis = np.ones((2, ny, nx), np.uint8)
    vis[1, 5:25, 20:26] = 0  # the old DSM's hidden zone beyond the roof (target sensor west)
    val = np.full((2, ny, nx), 300.0) + np.random.default_rng(0).normal(0, 5, (2, ny, nx))
    val[:, elev] = 100.0  # a dark roof on bright ground at both dates
    if raised:  # the raised roof hides 5 more cells: the target samples the roof there
        val[1, 5:25, 26:31] = 100.0
    return val, vis, elev, patch


def test_strip_and_beyond_band_follow_the_hidden_zone():
    val, vis, elev, patch = _scene(False)
    owner, kind = F.strips(patch, elev, vis[0], vis[1], (0, 1), 8)
    assert np.all(kind[5:25, 26:34] == 1) and np.all(owner[5:25, 26:34] == 7)
    assert np.all(kind[5:25, 34:42] == 2)
    assert not kind[:, :26].any() and not kind[5:25, 42:].any() and not kind[:5].any()


def test_a_raised_roof_flips_the_strip_and_an_unchanged_one_does_not():
    for raised in (False, True):
        val, vis, elev, patch = _scene(raised)
        (row,) = F.roof_table(val, vis, elev, patch, 1, 270.0, 8)
        assert row["q_base"] > 0.5  # the strip is ground at the base
        if raised:
            assert row["q_target"] < 0  # nearer the roof than the ground beyond at the target
        else:
            assert row["q_target"] > 0.5
