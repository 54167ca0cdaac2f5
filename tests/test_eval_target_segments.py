"""benchmarks/eval_target_segments.py's measuring machinery (issue 7, H3 sixth round): the census ratio
pooled over a segment equals the pipeline's window ratio where the segment is that window, the target
segmentation covers exactly the ground cells the target sees, and the inverse-variance mean lies
between its two witnesses. (The figures come from the evaluation command, not from tests.)"""

from __future__ import annotations


import numpy as np
import pytest
from conftest import benchmark_module

from offnadir.change import evidence as EV


ets = benchmark_module("eval_target_segments")


def _pair(rng, n=48):
    base = rng.normal(size=(n, n)).cumsum(axis=1)
    target = 0.6 * base + rng.normal(scale=1.0, size=(n, n))  # partly related: 0 < R < 1
    ok_b, ok_t = rng.random((n, n)) > 0.05, rng.random((n, n)) > 0.05
    return base, target, ok_b, ok_t


@pytest.mark.parametrize("offsets", [[(0, 0)], [(0, 0), (1, -1), (2, -2), (-1, 1)]])
def test_pooled_ratio_of_a_square_segment_is_the_window_ratio(ets, offsets):
    rng = np.random.default_rng(3)
    base, target, ok_b, ok_t = _pair(rng)
    w, c = 11, 24
    lab = np.zeros(base.shape, np.int64)
    lab[c - w // 2:c + w // 2 + 1, c - w // 2:c + w // 2 + 1] = 1
    sig = (EV.noise_sigma(base, ok_b), EV.noise_sigma(target, ok_t))
    ground = np.ones(base.shape, bool)
    r = ets.segment_ratio(base, target, ok_b, ok_t, ground, lab, offsets, sig)
    ref = EV.structural_evidence_reference(base, target, ok_b, ok_t, w, offsets, sig)
    assert np.isnan(r[0])  # label 0: no segment
    assert 0.0 < r[1] < 1.2
    assert r[1] == pytest.approx(ref[c, c], rel=1e-9)


def test_pooled_counts_against_the_unpacked_codes(ets):
    from offnadir.change import census_codes as CW

    rng = np.random.default_rng(5)
    base, target, ok_b, ok_t = _pair(rng, 32)
    ca, va = EV.census(base, ok_b, 0.3)
    cb, vb = EV.census(target, ok_t, 0.3)
    lab = rng.integers(0, 4, base.shape)
    N, D, A, B = ets.pooled_counts(CW.pack(ca, va), CW.pack(cb, vb), lab)
    both = va & vb
    for k in range(4):
        m = both & (lab == k)[None]
        assert N[k] == m.sum() and D[k] == ((ca != cb) & m).sum()
        assert A[0][k] == ((ca == -1) & m).sum() and A[1][k] == ((ca == 1) & m).sum()
        assert B[0][k] == ((cb == -1) & m).sum() and B[1][k] == ((cb == 1) & m).sum()


def test_target_segments_cover_the_seen_ground(ets):
    rng = np.random.default_rng(7)
    n = 64
    vals = rng.normal(size=(1, n, n))
    vals[0, 20:36, 20:36] += 4.0  # a bright new roof
    dsm = np.zeros((n, n))
    ok = np.ones((n, n), bool)
    ok[:, :3] = False
    ground = np.ones((n, n), bool)
    ground[50:, 50:] = False
    lab = ets.target_segments(vals, dsm, ok, ground, step=8)
    assert ((lab > 0) == (ok & ground)).all()
    roof = np.bincount(lab[20:36, 20:36].ravel()).argmax()
    assert (lab == roof).sum() <= 1.5 * 16 * 16  # the roof's segment follows the roof
    assert (lab[20:36, 20:36] == roof).mean() > 0.2


def test_inverse_variance_mean_lies_between_its_witnesses(ets):
    rng = np.random.default_rng(11)
    n = 40
    wide = np.exp(rng.normal(-0.4, 0.1, (n, n)))
    lab = (np.arange(n * n).reshape(n, n) // 16 % 60 + 1).astype(np.int64)
    r = np.r_[np.nan, np.exp(rng.normal(-0.4, 0.2, 60))]
    size = np.bincount(lab.ravel()).astype(float)
    ground = np.ones((n, n), bool)
    out = ets.iv_combined(wide, r, size, lab, ground)
    lo, hi = np.fmin(wide, r[lab]), np.fmax(wide, r[lab])
    assert np.all((out >= lo * (1 - 1e-12)) & (out <= hi * (1 + 1e-12)))
    assert not np.allclose(out, wide)
