"""Census code pairs compared by their cells' predicted sun transition (SP.sun_pair_word, H8).

A code is the order of two cells; a moved cast shadow multiplies both cells of a pair that it
covers (or uncovers) alike, so their order is kept: such pairs are compared, pairs across a moved
shadow edge are not."""

import numpy as np
import pytest

from offnadir.change import cells
from offnadir.change import evidence as EV
from offnadir.change import sun_pairs as SP


def _reference(base, target, ok, labels, window, offsets, sigmas):
    """The numpy formula: census codes of each image, a pair valid only where both cells carry
    the same label, census_ratio over the window, smallest over the target's offsets."""
    ca, va = EV.census(base, ok, sigmas[0])
    cb, vb = EV.census(target, ok, sigmas[1])
    for k, (di, dj) in enumerate(EV._NEIGH):
        same = EV.shift(labels.astype(np.int64), di, dj, -1) == labels
        va[k] &= same
        vb[k] &= same
    best = np.full(base.shape, np.nan)
    for di, dj in offsets:
        cbs = EV.shift(cb, di, dj, 0) if (di or dj) else cb
        vbs = EV.shift(vb, di, dj, False) if (di or dj) else vb
        best = np.fmin(best, EV.census_ratio(ca, va, cbs, vbs, window))
    best[~ok] = np.nan
    return best


def test_pair_word_compares_exactly_the_pairs_of_equal_labels():
    rng = np.random.default_rng(3)
    shape = (48, 56)
    labels = rng.integers(0, 3, shape).astype(np.uint8)
    labels[:20] = 0  # a region without moved shadows: the pairs the cell mask keeps
    base = rng.normal(0, 4, shape)
    target = base + rng.normal(0, 3, shape)
    ok = rng.random(shape) > 0.05
    offsets = [(0, 0), (1, 0), (0, -2)]
    got = EV.structural_evidence(base, target, ok, ok, 9, offsets, (1.0, 1.0), pairs=SP.pair_word(labels))
    ref = _reference(base, target, ok, labels, 9, offsets, (1.0, 1.0))
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=0, atol=1e-12)
    # every label equal: the word keeps every code (the evidence without pairs)
    plain = EV.structural_evidence(base, target, ok, ok, 9, offsets, (1.0, 1.0))
    same = EV.structural_evidence(base, target, ok, ok, 9, offsets, (1.0, 1.0),
                                  pairs=SP.pair_word(np.zeros(shape, np.uint8)))
    np.testing.assert_array_equal(same, plain)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (2, 2), (3, 5), (48, 56), (301, 257)])
def test_pair_word_equals_its_numpy_form(shape):
    # the one-pass kernel against the direction-by-direction numpy expressions, word for word
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    labels = rng.integers(0, 3, shape).astype(np.uint8)
    want = SP.pair_word_numpy(labels)
    got = SP.pair_word(labels)
    assert got.dtype == want.dtype == np.uint32
    np.testing.assert_array_equal(got, want)
    if shape[0] * shape[1] > 1:  # a changed label moves the words of its cell's pairs
        lab2 = labels.copy()
        nb = labels[0, 1] if shape[1] > 1 else labels[1, 0]  # a neighbour of cell (0, 0)
        lab2[0, 0] = nb if labels[0, 0] != nb else 3  # their pair flips between kept and not
        assert not np.array_equal(SP.pair_word(lab2), want)


def test_sun_labels_and_unknown_states():
    # base, target: 0 no direct sun, 1..254 lit, 255 unknown
    lit = np.array([[[9, 9, 0, 0, 255, 9]], [[9, 0, 9, 0, 0, 255]]], np.uint8)
    np.testing.assert_array_equal(SP.sun_labels(lit, 1)[0], [0, 1, 2, 0, 0, 0])
    assert SP.sun_pair_word(None, 1) is None


@pytest.fixture
def moved_shadow_scene():
    """Textured ground, lit in the base; at the target a block of it lies in a cast shadow the
    old DSM predicts there (direct sun lost: intensities times 0.3) and is otherwise the same."""
    rng = np.random.default_rng(11)
    n = 96
    base = 100.0 + rng.normal(0, 12, (n, n))
    shade = np.zeros((n, n), bool)
    shade[20:76, 20:76] = True
    target = np.where(shade, 0.3 * base, base) + rng.normal(0, 0.5, (n, n))
    lit = np.full((2, n, n), 200, np.uint8)
    lit[1][shade] = 0
    ok = np.ones((n, n), bool)
    return base, target, ok, lit, shade, rng


def test_cells_in_a_moved_shadow_are_compared_and_agree(moved_shadow_scene):
    base, target, ok, lit, shade, _ = moved_shadow_scene
    elev = np.zeros(base.shape, bool)
    args = (base, target, ok, ok, elev, 11, [(0, 0)], (1.0, 1.0))
    masked = cells.stratum_evidence(*args, compare=SP.same_sun(lit, 1))
    paired = cells.stratum_evidence(*args, pairs=SP.sun_pair_word(lit, 1))
    inner = np.zeros_like(shade)
    inner[30:66, 30:66] = True  # farther than half a window from the shadow's edge
    # the cell mask compares no code there: no evidence at all
    assert np.all(np.isnan(masked[inner]))
    # the pairs inside the moved shadow keep their order: agreement, far below R = 1 (unrelated);
    # not 0: the contrast shrank to 0.3 and the dead band (2 sigma) turns the smallest orders to 0
    assert np.nanmax(paired[inner]) < 0.5
    # outside the shadow nothing changes
    far = np.zeros_like(shade)
    far[:8] = True
    np.testing.assert_array_equal(paired[far], masked[far])


def test_a_new_surface_in_a_moved_shadow_is_still_seen(moved_shadow_scene):
    base, target, ok, lit, shade, rng = moved_shadow_scene
    changed = target.copy()
    new = np.zeros_like(shade)
    new[35:61, 35:61] = True
    changed[new] = 0.3 * (100.0 + rng.normal(0, 12, int(new.sum())))  # an unrelated surface, in the shadow
    elev = np.zeros(base.shape, bool)
    args = (base, changed, ok, ok, elev, 11, [(0, 0)], (1.0, 1.0))
    paired = cells.stratum_evidence(*args, pairs=SP.sun_pair_word(lit, 1))
    centre = np.zeros_like(shade)
    centre[43:53, 43:53] = True
    assert np.nanmin(paired[centre]) > 0.8  # about 1: no agreement beyond chance


def test_pairs_across_a_moved_shadow_edge_are_not_compared(moved_shadow_scene):
    """A cell beside the moved edge: its pairs to the shadowed side changed order (the shadow's
    doing); with those pairs compared it would look changed, with the pair rule it does not."""
    base, target, ok, lit, shade, _ = moved_shadow_scene
    rng = np.random.default_rng(5)
    base = 100.0 + rng.normal(0, 1.5, base.shape)  # faint texture: the edge's contrast dominates its pairs
    target = np.where(shade, 0.3 * base, base) + rng.normal(0, 0.2, base.shape)
    elev = np.zeros(base.shape, bool)
    args = (base, target, ok, ok, elev, 3, [(0, 0)], (0.3, 0.3))
    everything = cells.stratum_evidence(*args)
    paired = cells.stratum_evidence(*args, pairs=SP.sun_pair_word(lit, 1))
    edge = np.zeros_like(shade)
    edge[30:66, 19] = True  # lit cells whose right-hand neighbours go into the shadow
    # (with the edge pairs compared the two would be equal)
    assert np.nanmean(everything[edge]) > np.nanmean(paired[edge]) + 0.1
