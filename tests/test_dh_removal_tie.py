"""The combination's ties decided by a removal down to the local ground (dh_evidence.combine,
removal_to_ground; q4 tenth round)."""
import numpy as np
import pytest

from offnadir.change import dh_evidence as DE
from offnadir.change.dh_evidence import combine, removal_to_ground
from offnadir.change.tileio import MemoryIO
from offnadir.cube.plan import Tile


def test_a_tie_goes_to_the_removal_only():
    ps = np.array([1e-9, 1e-9, 1e-9, 0.3, 1e-9])
    pdh = np.array([1 - 1e-9, 1 - 1e-9, 0.99, 1 - 1e-9, np.nan])
    rem = np.array([True, False, True, True, True])
    p = combine(ps, pdh, rem)
    assert p[0] == 0.5  # the tie, a removal: the decision probability (change)
    assert p[1] < 0.5  # the tie, not a removal: as before
    assert p[2] < 0.01  # no tie: the magnitudes decide
    np.testing.assert_allclose(p[3], combine(ps, pdh)[3])
    assert p[4] == ps[4]  # no dh: the structural probability
    np.testing.assert_array_equal(combine(ps, pdh, None), combine(ps, pdh))


def test_the_tie_rule_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(DE, "REMOVAL_TIE", False)
    assert combine(np.array([0.0]), np.array([1.0]), np.array([True]))[0] < 0.5


def _scene():
    """A 20 m block and a 10 m crown on a ground sloping by 2 m over the grid; the block lowered to
    the ground, the crown lowered by 6 m only (still 4 m above the ground), a ground cell with a
    false lower peak."""
    ny, nx = 90, 120
    yy, xx = np.mgrid[0:ny, 0:nx]
    ground = 100.0 + 2.0 * xx / nx
    h = ground.copy()
    block = (yy >= 20) & (yy < 40) & (xx >= 20) & (xx < 50)
    crown = (yy >= 60) & (yy < 70) & (xx >= 80) & (xx < 90)
    h[block] += 20.0
    h[crown] += 10.0
    elev = block | crown
    dh = np.full((2, ny, nx), 0.0)
    dh[:, block] = -20.0 + 0.4
    dh[:, crown] = -6.0
    dh[:, 5, 5] = -8.0
    return h, elev, dh, block, crown


def test_a_removal_to_the_ground_is_found_and_a_partial_lowering_is_not():
    h, elev, dh, block, crown = _scene()
    io = MemoryIO({"dsm": h})
    r = removal_to_ground(io, Tile(0, 0, 0, 90, 0, 120), (90, 120), dh, elev, 2.5, 25)
    assert r.shape == dh.shape
    assert r[:, block].all()
    assert not r[:, crown].any()
    assert not r[:, 5, 5].any()  # ground: not elevated
    assert removal_to_ground(io, Tile(0, 0, 0, 90, 0, 120), (90, 120), np.zeros_like(dh), elev, 2.5, 25) is None


@pytest.mark.parametrize("size", [17, 40])
def test_removal_to_ground_does_not_depend_on_the_tiling(size):
    h, elev, dh, block, crown = _scene()
    io = MemoryIO({"dsm": h})
    whole = removal_to_ground(io, Tile(0, 0, 0, 90, 0, 120), (90, 120), dh, elev, 2.5, 25)
    out = np.zeros_like(whole)
    for a, i0 in enumerate(range(0, 90, size)):
        for b, j0 in enumerate(range(0, 120, size)):
            t = Tile(a, b, i0, min(i0 + size, 90), j0, min(j0 + size, 120))
            sl = (slice(None), slice(t.i0, t.i1), slice(t.j0, t.j1))
            r = removal_to_ground(io, t, (90, 120), dh[sl], elev[sl[1:]], 2.5, 25)
            out[sl] = False if r is None else r
    np.testing.assert_array_equal(out, whole)


def test_tie_removals_reads_the_dsm_only_for_ties():
    from offnadir.change.dh_evidence import tie_removals

    h, elev, dh, block, crown = _scene()
    tile = Tile(0, 0, 0, 90, 0, 120)
    ps = np.full(h.shape, 1e-9)
    pdh = np.full(h.shape, 1 - 1e-9)

    class NoRead(MemoryIO):
        def read(self, name, sl):
            raise AssertionError("read without a tie")

    # no tie anywhere: nothing is read
    assert tie_removals(NoRead({"dsm": h}), tile, h.shape, np.full(h.shape, 0.3), pdh, dh[0], elev, 2.5, 25) is None
    io = MemoryIO({"dsm": h})
    memo = {}
    r = tie_removals(io, tile, h.shape, ps, pdh, dh[0], elev, 2.5, 25, memo)
    np.testing.assert_array_equal(r, removal_to_ground(io, tile, h.shape, dh, elev, 2.5, 25)[0])
    assert "hg" in memo  # the ground estimate is kept for the tile's other images
    ps2 = ps.copy()
    ps2[block] = 0.2  # no tie on the block: not a removal there
    assert not tie_removals(io, tile, h.shape, ps2, pdh, dh[0], elev, 2.5, 25, memo)[block].any()
