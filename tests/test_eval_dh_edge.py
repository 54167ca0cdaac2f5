"""benchmarks/eval_dh_offline.py's ``edge`` replay variant (issue 7, n6 ninth round, measured and not
adopted): a "within" answer whose sweep window holds the coherence quadrant of coherent beyond-bound
answers is no measurement; far from any change, and at the default share, a lone strip of beyond
answers smaller than the quadrant leaves the zeros alone."""

from __future__ import annotations

import numpy as np
from conftest import benchmark_module

dho = benchmark_module("eval_dh_offline")


def _d(dh):
    n = dh.shape[0]
    return {"dh": {1: dh.astype(np.float32)}, "dh_sigma": {1: np.full((n, n), 0.2, np.float32)},
            "bound": 2.5, "elevated_dsm": np.zeros((n, n), bool)}


def test_zero_beside_a_raised_block_is_no_measurement(dho):
    E = dho
    dh = np.zeros((60, 60))
    dh[20:40, 30:50] = 9.0  # a raised block, larger than the 13² window
    cur = E.variant(_d(dh), 1, "current")
    edge = E.variant(_d(dh), 1, "edge")
    assert np.isfinite(cur[30, 28]) and cur[30, 28] < 1e-6  # the zero vetoes today
    assert np.isnan(edge[30, 28])  # two cells west of the block: its window holds > the quadrant
    assert np.isfinite(edge[30, 10]) and edge[30, 10] < 1e-6  # far from it the zero stays
    assert edge[30, 40] > 0.99  # the block's own cells keep their dh
    # a majority share: the cell beside the block's edge keeps its zero (its window is < half the block)
    assert np.isfinite(E.variant(_d(dh), 1, "edge:0.5")[30, 28])


def test_a_strip_below_the_quadrant_leaves_zeros(dho):
    E = dho
    dh = np.zeros((60, 60))
    dh[29:31, 10:50] = 9.0  # two cells wide: 26 of 169 window cells at most, below 49
    # (the strip itself is incoherent, so it is no coherent "beyond" either)
    edge = E.variant(_d(dh), 1, "edge")
    assert np.isfinite(edge[33, 30]) and edge[33, 30] < 1e-6
