"""benchmarks/eval_grown_crowns.py's witness on a synthetic texture: the image coordinates' height rate is
recovered from the stored coordinates, and a crown whose texture sits 2 m higher than the DSM says peaks at
+2 m (gain upward) while crowns at the DSM's height peak at 0 (no gain)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import eval_grown_crowns as EG  # noqa: E402


def test_height_rate_recovers_the_affine_height_term():
    rng = np.random.default_rng(0)
    h = 100.0 + 20.0 * rng.random((40, 50))
    yy, xx = np.mgrid[:40, :50]
    row = 5.0 + 1.0 * yy + 0.1 * xx - 0.15 * h
    col = -3.0 + 0.02 * yy + 0.9 * xx + 0.83 * h
    ok = rng.random(h.shape) > 0.2
    dr, dc = EG.height_rate(row, col, h, ok)
    assert abs(dr + 0.15) < 1e-9 and abs(dc - 0.83) < 1e-9


def test_a_crown_two_metres_higher_peaks_at_plus_two_metres():
    rng = np.random.default_rng(1)
    img = ndi.gaussian_filter(rng.normal(size=(120, 200)), 1.5)
    rate = (0.0, 0.85)
    labels, rows, cols, u = [], [], [], []
    for k, (y0, x0, grown) in enumerate([(10, 20, 0.0), (10, 90, 2.0), (60, 20, 0.0), (60, 90, 0.0)], start=1):
        yy, xx = np.mgrid[y0:y0 + 12, x0:x0 + 12]
        h = 10.0 + 0.3 * (yy - y0)  # the DSM's (old) heights
        r, c = yy.astype(float), xx + rate[1] * h  # where the target sees the old surface
        # the base texture is the point the target now shows at the true height h + grown
        u.append(ndi.map_coordinates(img, [r.ravel(), (c + rate[1] * grown).ravel()], order=1))
        rows.append(r.ravel())
        cols.append(c.ravel())
        labels.append(np.full(r.size, k))
    Z = EG.shift_curves(img, np.concatenate(rows), np.concatenate(cols), rate, np.concatenate(u),
                        np.concatenate(labels))
    best = EG.DZ[np.argmax(Z, 1)]
    assert best.tolist() == [0.0, 2.0, 0.0, 0.0]
    gain, z0, zb = EG.gain_up(Z)
    assert gain[1] > 1.0  # the grown crown: far better correlated 2 m up
    assert np.all(gain[[0, 2, 3]] < 0)  # the others: best at the DSM's height
    assert np.all(zb >= z0)
    # grown in proportion: 10 m above ground everywhere, so a factor 0.2 is the same 2 m
    Zp = EG.shift_curves(img, np.concatenate(rows), np.concatenate(cols), rate, np.concatenate(u),
                         np.concatenate(labels), EG.FACTORS, np.full(sum(len(r) for r in rows), 10.0))
    assert np.allclose(EG.FACTORS[np.argmax(Zp, 1)], [0.0, 0.2, 0.0, 0.0])
    assert EG.gain_up(Zp, EG.FACTORS, 0.1, 0.05)[0][1] > 1.0
