"""benchmarks/eval_small_window_replay.py's narrow-roof variants (issue 7, t3 twelfth round, measured and not
adopted): where the DSM step is taken (``step_cells``) and the ``firm`` filter (a small "within" answer
replaces a 13² beyond answer only where it rejects it by two of its standard errors)."""

from __future__ import annotations

import numpy as np
from conftest import benchmark_module

rep = benchmark_module("eval_small_window_replay")


def _tower(n=60):
    """Flat ground at 0 with a 29 m tower (rows/cols 20..27) the 13² window measured at the ground (-28 m)."""
    h = np.zeros((n, n))
    h[20:28, 20:28] = 29.0
    dh6 = np.zeros((n, n))
    dh6[20:28, 20:28] = -28.0
    dh6[45:55, 45:55] = 9.0  # beyond on flat DSM, far from any step
    return h, dh6


def test_step_places(rep):
    h, dh6 = _tower()
    win = rep.step_cells("win", h, dh6)
    own = rep.step_cells("own3", h, dh6)
    assert win[20:28, 20:28].all() and win[15, 15] and not win[50, 50]  # the window straddles the tower
    assert own[20, 20:28].all() and own[19, 20:28].all() and not own[23, 23]  # the rim only: the interior is flat
    assert own.sum() < win.sum()
    lands = rep.step_cells("lands", h, dh6)
    assert lands[20:28, 20:28].all() and not lands[50, 50]  # the tower's answer lands on the ground's height
    minor = rep.step_cells("minor", h, dh6)
    assert minor[20:28, 20:28].all() and not minor[5, 5]  # the tower holds < half of its cells' windows


def test_firm_takes_only_a_small_zero_that_rejects_the_large_height(rep):
    h, dh6 = _tower()
    dh3 = np.where(dh6 == -28.0, 0.0, dh6)
    s3 = np.full(h.shape, 0.2)
    s3[21, 20:28] = 20.0  # an unresolved small zero (its sigma reaches the offset): not firm
    z = {"g1_2_ref_dh": dh6, "g1_2_r6_dh": dh6, "g1_2_r3_dh": dh3, "g1_2_r6_sigma": s3, "g1_2_r3_sigma": s3}

    class Z(dict):
        files = list(z)

    zz = Z(z)
    loose = rep.take_mask("step:zero:win", zz, h)
    firm = rep.take_mask("step:zero:win:firm", zz, h)
    assert loose[20:28, 20:28].all() and not loose[45:55, 45:55].any()
    assert firm[20, 20:28].all() and not firm[21, 20:28].any() and firm[22:28, 20:28].all()
    dh, _ = rep.combine_rule("step:zero:win:firm", zz, h)
    assert (dh[20, 20:28] == 0).all() and (dh[21, 20:28] == -28).all() and (dh[50, 50] == 9)


def test_sig_keeps_the_large_height_and_floors_its_sigma(rep):
    h, dh6 = _tower()
    dh3 = np.where(dh6 == -28.0, 0.0, dh6)
    s = np.full(h.shape, 0.2)
    z = {"g1_2_ref_dh": dh6, "g1_2_r6_dh": dh6, "g1_2_r3_dh": dh3, "g1_2_r6_sigma": s, "g1_2_r3_sigma": s}

    class Z(dict):
        files = list(z)

    dh, sig = rep.combine_rule("step:zero:win:firm:sig", Z(z), h)
    assert np.array_equal(dh, dh6)  # the sweep's height unchanged
    assert np.allclose(sig[20:28, 20:28], 14.0) and np.allclose(sig[50, 50], 0.2) and np.allclose(sig[5, 5], 0.2)
