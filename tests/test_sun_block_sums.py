"""The sun estimate's per-block sums kernels against np.bincount (the definition they replace),
to the bit: random codes (shaded, lit, unknown), masks, labels and float64 weights of every scale."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.change.sun_block_sums import block_sums, shaded_row_sums

SHADED, UNKNOWN = np.uint8(0), np.uint8(255)


def _random(seed, n, nb):
    rng = np.random.default_rng(seed)
    codes = rng.choice(np.array([0, 1, 57, 254, 255], np.uint8), n, p=[0.3, 0.2, 0.2, 0.2, 0.1])
    block = rng.integers(0, nb, n)
    # weights spanning magnitudes: sums that depend on the order of the additions
    w = rng.uniform(0, 1, n) * 10.0 ** rng.integers(-8, 9, n)
    return rng, codes, block, w


@pytest.mark.parametrize("seed, n, nb", [(0, 1, 16), (1, 1000, 16), (2, 65536, 16), (3, 5003, 3)])
def test_block_sums_are_bincount_to_the_bit(seed, n, nb):
    rng, codes, block, r = _random(seed, n, nb)
    ok = rng.uniform(size=n) < 0.8
    use = ok & (codes != UNKNOWN)
    sh = use & (codes == SHADED)
    want = np.stack([np.bincount(block[use], minlength=nb), np.bincount(block[sh], minlength=nb),
                     np.bincount(block[use], r[use], minlength=nb),
                     np.bincount(block[sh], r[sh], minlength=nb)]).astype(np.float64)
    got = block_sums(codes, ok, block, r, SHADED, UNKNOWN, nb)
    assert got.dtype == np.float64 and np.array_equal(got, want)


@pytest.mark.parametrize("seed, n, nb", [(4, 1, 16), (5, 4096, 16), (6, 65536, 16)])
def test_shaded_row_sums_are_bincount_to_the_bit(seed, n, nb):
    rng, codes, block, _ = _random(seed, n, nb)
    x = rng.uniform(0, 1, (18, n)) * 10.0 ** rng.integers(-8, 9, (18, n))
    sh = np.flatnonzero(codes == SHADED)
    want = np.stack([np.bincount(block[sh], row[sh], minlength=nb) for row in x])
    assert np.array_equal(shaded_row_sums(codes, block, x, SHADED, nb), want)
    assert np.array_equal(shaded_row_sums(codes, block, np.asfortranarray(x), SHADED, nb), want)
