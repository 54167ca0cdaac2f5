"""The structural criterion from the parallax profile's non-empty (patch, offset) pairs (what the
tiles send, tile.sparse_profile) gives exactly what it gives from the dense table."""

import numpy as np

from offnadir.change import criteria as C
from offnadir.change import tile as T
from offnadir.change.options import ChangeOptions


def _table(rng, n=300, nk=21):
    ids = np.arange(1, n + 1) * 7
    elevated = rng.random(n) < 0.6
    eids = ids[elevated]
    m = len(eids)
    x = rng.normal(size=(m, nk, 40))
    y = 0.7 * x + rng.normal(size=(m, nk, 40))
    cnt = rng.integers(0, 40, (m, nk))
    cnt[rng.random((m, nk)) < 0.7] = 0  # most pairs empty (small roofs at long offsets)
    mask = np.arange(40)[None, None, :] < cnt[..., None]
    prof = np.stack([cnt.astype(float), (x * mask).sum(-1), (y * mask).sum(-1), (x * x * mask).sum(-1),
                     (y * y * mask).sum(-1), (x * y * mask).sum(-1)], axis=-1)
    c0 = np.abs(rng.normal(size=(n, 6))) * 50
    c0[:, 0] = rng.integers(0, 200, n)
    base = dict(ids=ids, n_cells=np.full(n, 100.0), elevated=elevated, used=rng.integers(0, 200, n).astype(float),
                mean_rob=rng.normal(size=(n, 2)), frac_above=rng.random((n, 3)), c0=c0,
                shift_cells=np.linspace(-10, 10, nk), noise_var=0.01, cell=0.5,
                profile_rows=np.searchsorted(ids, eids))
    return base, eids, prof


def test_structural_from_pairs_equals_dense():
    rng = np.random.default_rng(5)
    base, eids, prof = _table(rng)
    keys, sums, nk = T.sparse_profile(eids, prof)
    assert len(keys) < 0.5 * prof.shape[0] * prof.shape[1]
    dense = C.TargetTable(profile=prof, **base)
    pairs = C.TargetTable(profile=None, profile_pairs=(np.searchsorted(eids, keys // nk), keys % nk, sums),
                          profile_nk=nk, **base)
    opts = ChangeOptions()
    v1, s1 = C.structural(dense, opts)
    v2, s2 = C.structural(pairs, opts)
    assert np.isfinite(dense.extra["corr_ref"]).any()  # the profiles decided something
    assert np.array_equal(v1, v2) and np.array_equal(s1, s2)
    for k in ("corr_ref", "shift_cells", "corr_expected"):
        assert np.array_equal(dense.extra[k], pairs.extra[k], equal_nan=True)
