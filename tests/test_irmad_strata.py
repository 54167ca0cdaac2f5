"""irmad.mad_strata (one pass) equals fit.mad_cells then the per-stratum division by the robust
scales (the numpy formula), with missing models and scales falling back to stratum 0's."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.change import fit as F
from offnadir.change import irmad


def _model(rng, p=4):
    return irmad.MadModel(mean_x=rng.normal(size=p), mean_y=rng.normal(size=p), A=rng.normal(size=(p, p)),
                          B=rng.normal(size=(p, p)), rho=np.sort(rng.uniform(0.2, 0.9, p))[::-1], weight=1.0, n=100.0)


def _twin(models, scales, x, y, stratum):
    M = F.mad_cells(models, x, y, stratum)
    for k in range(len(models)):
        sc = scales[k] if scales[k] is not None else scales[0]
        sel = stratum == k
        if sc is not None and sel.any():
            M[sel] = M[sel] / sc
    return M


@pytest.mark.parametrize("missing", [(), (1,), (0,), (0, 1)])
def test_mad_strata_equals_mad_cells_divided_per_stratum(missing):
    rng = np.random.default_rng(len(missing))
    models = [_model(rng), _model(rng)]
    scales = [rng.uniform(0.5, 2.0, 4), rng.uniform(0.5, 2.0, 4)]
    for k in missing:
        models[k] = None
        scales[k] = None
    x = rng.normal(size=(500, 4)).astype(np.float32)  # the stage passes float32 or float64 rows
    y = rng.normal(size=(500, 4))
    stratum = rng.integers(0, 3, 500)  # 2: no such stratum -> NaN
    got = irmad.mad_strata(models, scales, x, y, stratum)
    np.testing.assert_array_equal(got, _twin(models, scales, x, y, stratum))
    assert np.isnan(got[stratum == 2]).all()
