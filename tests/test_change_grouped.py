"""Grouped sums of the change stage's per-patch tables (kernels.group_sums, level_counts,
merge_grouped) against obvious numpy twins on random data."""

from __future__ import annotations

import numpy as np

from offnadir.change import kernels as K


def test_group_sums_equal_bincount_per_column():
    rng = np.random.default_rng(0)
    inv = rng.integers(0, 50, 5000)
    v = rng.normal(size=(5000, 6))
    got = K.group_sums(inv, 60, v)
    want = np.stack([np.bincount(inv, v[:, c], minlength=60) for c in range(6)], axis=1)
    np.testing.assert_array_equal(got, want)  # the same additions in the same order
    assert got.shape == (60, 6) and (got[50:] == 0).all()


def test_level_counts_count_values_above_each_level():
    rng = np.random.default_rng(1)
    inv = rng.integers(0, 30, 4000)
    v = rng.exponential(2.0, 4000)
    v[::17] = np.nan
    levels = 2.0 ** (np.arange(-2, 11) / 2.0)
    got = K.level_counts(inv, 30, v, levels)
    with np.errstate(invalid="ignore"):
        want = np.stack([np.bincount(inv, (v > lv).astype(float), minlength=30) for lv in levels], axis=1)
    np.testing.assert_array_equal(got, want)


def test_merge_grouped_matches_a_dense_sum():
    rng = np.random.default_rng(2)
    ids_list, arrays = [], []
    for n in (40, 0, 25, 60):
        ids = np.unique(rng.integers(0, 80, n))
        ids_list.append(ids)
        arrays.append({"a": rng.normal(size=len(ids)), "b": rng.normal(size=(len(ids), 3, 2)),
                       "k": rng.integers(0, 9, len(ids))})
    uid, out = K.merge_grouped(ids_list, arrays)
    dense = {"a": np.zeros(80), "b": np.zeros((80, 3, 2)), "k": np.zeros(80, np.int64)}
    for ids, a in zip(ids_list, arrays):
        for name in dense:
            np.add.at(dense[name], ids, a[name])
    np.testing.assert_array_equal(uid, np.unique(np.concatenate(ids_list)))
    for name in dense:
        np.testing.assert_allclose(out[name], dense[name][uid], rtol=1e-14, atol=1e-14)
        assert out[name].dtype == arrays[0][name].dtype


def test_sparse_profiles_summed_over_tiles_equal_the_dense_sum():
    from offnadir.change import tile as T

    rng = np.random.default_rng(3)
    nk, parts, dense = 7, [], {}
    for _ in range(5):  # tiles: elevated ids, profiles with most (patch, offset) pairs empty
        eids = np.unique(rng.integers(1, 40, 12))
        prof = rng.normal(size=(len(eids), nk, 6))
        prof[rng.random((len(eids), nk)) < 0.8] = 0.0
        prof[..., 0] = np.where(prof[..., 0] != 0, np.abs(prof[..., 0]) + 1, 0)  # counts
        for e, row in zip(eids, prof):
            dense[e] = dense.get(e, 0.0) + row
        parts.append({"ids": eids, "rows": {"n": np.ones(len(eids))}, "eids": eids,
                      "erows": {"prof_1": T.sparse_profile(eids, prof)}})
    red = T.add_patch(T.add_patch(*parts[:3]), T.add_patch(*parts[3:]))  # a two-level tree
    got = T.dense_profile(red["eids"], red["erows"]["prof_1"])
    np.testing.assert_array_equal(red["eids"], sorted(dense))
    np.testing.assert_allclose(got, np.stack([dense[e] for e in red["eids"]]), rtol=1e-14, atol=1e-14)


def test_group_index_equals_np_unique():
    rng = np.random.default_rng(4)
    labels = np.repeat(rng.integers(1, 4_000_000, 3000), rng.integers(1, 60, 3000))  # runs, like patches
    rng.shuffle(labels[: len(labels) // 2])
    for ids in (labels, rng.integers(-(2**40), 2**40, 9000), np.full(5000, 7), labels[:100]):
        got, inv = K.group_index(ids)
        want, winv = np.unique(ids, return_inverse=True)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(inv, winv)


def test_sorted_lookup_equals_searchsorted():
    """kernels.sorted_lookup (one binary search per run of equal values) gives the numbers of
    ``idx = min(searchsorted(ids, v), len - 1); hit = ids[idx] == v`` (what cells.paint_index and
    segment.relabel used), for values in runs, shuffled, absent, below and above every id."""
    rng = np.random.default_rng(6)
    ids = np.unique(rng.integers(10, 5_000_000, 4000))
    runs = np.repeat(rng.choice(np.r_[ids, rng.integers(0, 6_000_000, 500), 0, 1, 6_000_000], 3000),
                     rng.integers(1, 40, 3000))
    mixed = runs.copy()
    rng.shuffle(mixed[: len(mixed) // 3])
    for v, i in ((runs, ids), (mixed, ids), (mixed[: len(mixed) // 7 * 7].reshape(-1, 7)[:, :5], ids), (runs[:50], ids[:1]),
                 (np.zeros(0, np.int64), ids)):
        idx, hit = K.sorted_lookup(v, i)
        want = np.minimum(np.searchsorted(i, v), len(i) - 1)
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_array_equal(hit, i[want] == v)
        assert idx.shape == v.shape and hit.dtype == bool
    assert K.sorted_lookup(runs, ids)[1].any() and not K.sorted_lookup(runs, ids)[1].all()


def test_prob_group_sums_equal_the_numpy_formula():
    """kernels.prob_group_sums gives the numbers of the gathered numpy sums it replaces
    (cells._patch_sums): NaN cells add zero to the sum and to the count, float32 widened."""
    rng = np.random.default_rng(7)
    lab = np.repeat(rng.integers(0, 40, (30, 8)), 6, axis=1)  # runs along rows, 0 = no patch
    prob = rng.random((3, 30, 48)).astype(np.float32)
    prob[rng.random(prob.shape) < 0.2] = np.nan
    prob[0, :3] = -0.0
    m = lab > 0
    ids, inv = K.group_index(lab[m])
    psum, pn = K.prob_group_sums(inv, len(ids), prob, m)
    p = prob[:, m].T.astype(np.float64)
    fin = np.isfinite(p)
    np.testing.assert_array_equal(psum, K.group_sums(inv, len(ids), np.where(fin, p, 0.0)))
    np.testing.assert_array_equal(pn, K.group_sums(inv, len(ids), fin.astype(np.float64)))
    assert np.array_equal(np.signbit(psum), np.signbit(K.group_sums(inv, len(ids), np.where(fin, p, 0.0))))
    assert pn.sum() == fin.sum() and 0 < pn.sum() < p.size


def test_corr_sums_equal_the_numpy_formula():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 9, 12))
    y = 0.5 * x + rng.normal(size=x.shape)
    n = rng.integers(0, 13, (400, 9))
    m = np.arange(12) < n[..., None]
    s = np.stack([n.astype(float), (x * m).sum(-1), (y * m).sum(-1), (x * x * m).sum(-1), (y * y * m).sum(-1),
                  (x * y * m).sum(-1)], -1)
    s[::5, :, 3] = s[::5, :, 1] ** 2 / np.maximum(s[::5, :, 0], 1)  # no variance
    nn, sx, sy, sxx, syy, sxy = np.moveaxis(s, -1, 0)
    with np.errstate(all="ignore"):
        vx, vy = sxx / nn - (sx / nn) ** 2, syy / nn - (sy / nn) ** 2
        r = (sxy / nn - sx * sy / nn**2) / np.sqrt(vx * vy)
        want = np.where((nn >= 3) & (vx > 1e-12) & (vy > 1e-12), np.clip(r, -1.0, 1.0), np.nan)
    got = K.corr_sums(s)
    np.testing.assert_array_equal(got, want)
    assert np.isfinite(got).any() and np.isnan(got).any()


def test_unique_inverse_is_numpys_unique_with_inverse():
    """group_kernels.unique_inverse (the shadow rules' casters grouped by label) returns what
    ``np.unique(a, return_inverse=True)`` returns: int64 through the hashed grouping (more than
    4096 values, few or many distinct), other dtypes and short arrays through numpy."""
    from offnadir.change.group_kernels import unique_inverse

    rng = np.random.default_rng(5)
    for a in (rng.integers(1, 40, 20000), rng.integers(1, 2**40, 9000), np.repeat(rng.integers(1, 500, 900), 9),
              rng.integers(0, 7, 100), rng.integers(1, 300, 6000).astype(np.int32), np.zeros(0, np.int64)):
        a = np.asarray(a)
        ids, inv = unique_inverse(a)
        ref_ids, ref_inv = np.unique(a, return_inverse=True)
        assert ids.dtype == ref_ids.dtype and np.array_equal(ids, ref_ids) and np.array_equal(inv, ref_inv)
