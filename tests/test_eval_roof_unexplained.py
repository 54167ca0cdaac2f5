"""The roof-window variant of benchmarks/eval_roof_unexplained.py: with nothing left out it is the pipeline's
evidence; a dark strip along an unchanged roof's rim at the target (a neighbour's shadow) raises the roof's
evidence, and leaving the strip's codes out of the roof's windows takes most of that back."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import eval_roof_unexplained as RU  # noqa: E402

from offnadir.change import cells as P  # noqa: E402


def _scene(strip: bool):
    rng = np.random.default_rng(3)
    n = 60
    elev = np.zeros((n, n), bool)
    elev[20:40, 20:40] = True
    tex = np.where(elev, 100.0 + 25.0 * rng.standard_normal((n, n)), 300.0 + 25.0 * rng.standard_normal((n, n)))
    base = tex + rng.normal(0, 2, (n, n))
    target = tex + rng.normal(0, 2, (n, n))
    if strip:  # a new neighbour's shadow on the ground along the roof's south rim, at the target only
        target[40:45, 18:42] = 20.0 + 5.0 * rng.standard_normal((5, 24))
    ok = np.ones((n, n), bool)
    drop = np.zeros((n, n), bool)
    drop[40:45, 18:42] = True
    return base, target, ok, elev, drop


ARGS = dict(window=11, offsets=((0, 0),), sigmas=(2.0, 2.0))


def test_nothing_left_out_is_the_pipelines_evidence():
    base, target, ok, elev, _ = _scene(True)
    ref = P.stratum_evidence(base, target, ok, ok, elev, ARGS["window"], ARGS["offsets"], ARGS["sigmas"])
    got = RU.roof_evidence_without(base, target, ok, ok, elev, ARGS["window"], ARGS["offsets"], ARGS["sigmas"],
                                   np.zeros(elev.shape, bool))
    np.testing.assert_array_equal(np.isnan(ref), np.isnan(got))
    np.testing.assert_allclose(got[np.isfinite(ref)], ref[np.isfinite(ref)])


def test_the_strips_codes_left_out_give_the_roof_its_evidence_back():
    rim = (slice(34, 40), slice(22, 38))  # roof cells whose window reaches the strip
    e = {}
    for name, strip, left_out in (("clean", False, False), ("strip", True, False), ("left out", True, True)):
        base, target, ok, elev, drop = _scene(strip)
        e[name] = float(np.nanmean(RU.roof_evidence_without(
            base, target, ok, ok, elev, ARGS["window"], ARGS["offsets"], ARGS["sigmas"],
            drop if left_out else np.zeros(elev.shape, bool))[rim]))
    assert e["strip"] > 1.5 * e["clean"]  # the inverted rim reads as change on the roof
    assert e["left out"] < 0.5 * (e["clean"] + e["strip"])  # most of it gone with the strip's codes
