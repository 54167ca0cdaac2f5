"""benchmarks/eval_shadow_edge.py's measuring machinery (issue 7, H2 sixth round): the step at a
predicted shadow's edge, per caster, on a box building over flat ground. A shadow that is there gives
the irradiance ratio whatever the albedo of the surface it falls on; one that went gives no step; the
veto reads the run's two centres. (The figures come from the evaluation command, not from tests.)"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import benchmark_module

CELL = 0.5
SHADE = 0.3  # diffuse over total irradiance of a shadow that is there


edge = benchmark_module("eval_shadow_edge")


def _run(present: bool, bright_surface: bool, seed: int = 0):
    """A 10 m box (patch 5) on flat ground, sun from the south at 40 degrees: its predicted cast
    shadow (codes 0) from the pipeline's own march; the image darkened by ``SHADE`` there if the
    shadow is ``present``; ``bright_surface``: the ground under and around the shadow 4x brighter."""
    from offnadir.change.sun_kernels import caster_distances

    n = 96
    h = np.zeros((n, n))
    h[60:72, 40:56] = 10.0
    patch = np.ones((n, n), np.int64)
    patch[60:72, 40:56] = 5
    elevated = (h > 0).astype(np.uint8)
    az, el = math.radians(180.0), math.radians(40.0)
    dist = np.empty(h.shape)
    caster_distances(h, math.tan(el) * CELL, -math.cos(az), math.sin(az), 0.3, float(n), dist)
    codes = np.where(dist > 0, 0, 100).astype(np.uint8)
    rng = np.random.default_rng(seed)
    albedo = np.exp(rng.normal(0.0, 0.2, h.shape)) * 100.0
    if bright_surface:
        albedo[20:60, 30:66] *= 4.0  # one surface spanning the shadow and its edges
    x = albedo * np.where((codes == 0) & present, SHADE, 1.0)
    value = np.stack([x, x])[:, None]  # two images, one band (the base is the target's copy)
    arr = dict(dsm=h.astype(np.float32), visible=np.ones((2, n, n), np.uint8), value=value.astype(np.float32),
               illumination=np.stack([codes, codes]), patch=patch, elevated=elevated)
    ctx = SimpleNamespace(sun=((az, el), (az, el)), cell=CELL)
    return dict(arr=arr), ctx


@pytest.mark.parametrize("every", [False, True])
@pytest.mark.parametrize("bright", [False, True])
def test_step_is_the_irradiance_ratio_whatever_the_albedo(edge, every, bright):
    run, ctx = _run(True, bright)
    steps = edge.caster_steps(run, ctx, 1, every=every)
    assert set(steps) == {5}  # the box's shadow only (the ground patch casts none)
    n, m, sd, med = steps[5]
    assert n >= 10
    assert abs(m - math.log(SHADE)) < 0.1, (m, math.log(SHADE))
    assert abs(med - math.log(SHADE)) < 0.15 and 0.1 < sd < 0.5
    gone, ctx = _run(False, bright)
    n0, m0, _, med0 = edge.caster_steps(gone, ctx, 1, every=every)[5]
    assert n0 == n  # the pairs are the prediction's, not the image's
    assert abs(m0) < 0.1 and abs(med0) < 0.15


def test_every_edge_has_more_pairs_than_the_far_edge(edge):
    run, ctx = _run(True, False)
    assert edge.caster_steps(run, ctx, 1, every=True)[5][0] > 2 * edge.caster_steps(run, ctx, 1)[5][0]


def test_lit_pairs_are_the_null(edge):
    run, ctx = _run(True, True)
    d = edge.lit_pairs(run, ctx, 1)
    assert len(d) > 1000
    assert abs(np.median(d)) < 0.05
    # two independent cells of log-sd 0.2: a step's sd is 0.2 sqrt 2 (the 4x surface's boundary adds a few)
    assert abs(1.4826 * np.median(np.abs(d - np.median(d))) - 0.2 * math.sqrt(2.0)) < 0.05


def test_veto_reads_the_two_centres(edge):
    ids = np.array([5, 6, 7, 8])
    post = np.array([0.9, 0.9, 0.9, 0.2])
    st = dict(m0=0.0, s0=0.2, mp=-1.0, steps={5: (40, -0.9, 0.3, -0.9), 6: (40, -0.05, 0.3, 0.0),
                                              7: (3, -1.0, 0.3, -1.0), 8: (40, -1.0, 0.3, -1.0)})
    out = edge.veto("edge_midz", ids, post, st, st)
    # 5: a step like the run's casters' -> not gone; 6: no step -> gone stays; 7: too few pairs to
    # speak; 8: not decided gone in the first place
    assert out.tolist() == [0.0, 0.9, 0.9, 0.2]
    # centres closer than SEPARATION null sds: the step witnesses nothing
    weak = dict(st, mp=-0.1)
    assert edge.veto("edge_midz", ids, post, weak, weak).tolist() == post.tolist()
    # half of the edge stepped (another, unpredicted shadow across it): the mean says a step, the
    # median does not
    half = dict(st, steps={5: (40, -0.55, 0.5, -0.05)})
    assert edge.veto("edge_midz", ids[:1], post[:1], half, half).tolist() == [0.0]
    assert edge.veto("edge_medz", ids[:1], post[:1], half, half).tolist() == [0.9]
