"""The cut crown's texture witness (:mod:`offnadir.change.crown_texture`) and its use by the crowns'
decision (:func:`offnadir.change.crown_shadow.decide_crowns`)."""

from __future__ import annotations

import numpy as np

from offnadir.change import crown_shadow as CS
from offnadir.change import crown_texture as CT


def _sums(u, v):
    return np.array([len(u), u.sum(), v.sum(), (u * u).sum(), (v * v).sum(), (u * v).sum()])


def test_fisher_z_is_numpys_correlation_and_needs_cells():
    rng = np.random.default_rng(0)
    u = rng.normal(size=50)
    v = 0.6 * u + rng.normal(size=50)
    z = CT.fisher_z(np.stack([_sums(u, v), _sums(u[:CT.MIN_CELLS - 1], v[:CT.MIN_CELLS - 1]),
                              _sums(np.ones(20), v[:20])]))
    assert np.isclose(z[0], np.arctanh(np.corrcoef(u, v)[0, 1]))
    assert np.isnan(z[1]) and np.isnan(z[2])  # too few cells; no spread


def test_the_sums_add_over_a_crowns_patches():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=40), rng.normal(size=40)
    parts = [_sums(u[:15], v[:15]), _sums(u[15:], v[15:]), _sums(u[:9], -v[:9])]
    cr = dict(ids=np.array([3, 7, 9]), crown=np.array([0, 0, 1]), count=2)
    per = CT.per_crown(cr, np.array([3, 7, 9]), np.stack(parts))
    assert np.allclose(per[0], _sums(u, v)) and np.allclose(per[1], parts[2])
    # a patch the table lacks adds nothing
    per = CT.per_crown(cr, np.array([3, 9]), np.stack([parts[0], parts[2]]))
    assert np.allclose(per[0], parts[0])


def test_an_uncorrelated_crown_among_correlated_ones_is_evidence_of_a_cut_and_only_it():
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(0.9, 0.3, 30), [0.0, np.nan]])
    llr, m, s = CT.log_lr(z)
    assert 0.7 < m < 1.1 and 0.15 < s < 0.5
    assert np.isclose(llr[30], m * m / (2 * s * s)) and llr[30] > 2
    assert llr[31] == 0  # no correlation: no evidence
    assert np.all(llr[:30][z[:30] >= m / 2] == 0)  # correlating like the unchanged ones: none (never negative)
    assert np.all(llr >= 0)
    # the crowns do not correlate in this run (median <= 0): the texture witnesses nothing
    assert not np.any(CT.log_lr(z - 2.0)[0])
    assert not np.any(CT.log_lr(np.array([0.0, np.nan]))[0])  # too few crowns


def test_inner_cells_have_four_elevated_neighbours():
    e = np.zeros((7, 8), np.uint8)
    e[1:6, 2:7] = 1
    got = CT.inner(e)
    want = np.zeros(e.shape, bool)
    want[2:5, 3:6] = True
    assert np.array_equal(got, want)


def _crowns_and_sums(n_t, s_t, n_0, s_0):
    """Three one-patch crowns and their missing-shadow sums (target 1)."""
    cr = dict(ids=np.array([10, 20, 30]), crown=np.array([0, 1, 2]), count=3, bound=0.5, plane_tolerance=0.001,
              cells=np.array([50, 50, 50]))
    rows = {"csh_n": np.stack([n_0, n_t], 1).astype(float), "csh_llr": np.stack([s_0, s_t], 1).astype(float)}
    return cr, {"ids": np.array([10, 20, 30]), "rows": rows}


def test_texture_evidence_adds_to_a_crowns_shadow_but_does_not_decide_a_shadow_still_there(monkeypatch):
    from types import SimpleNamespace

    import offnadir.change.missing_shadow as MS

    clf = SimpleNamespace(accuracy_shadow=0.8, mean_llr_shadow=-2.0, mean_llr_lit=2.0, prior=0.0)
    # crown 0: its shadow seen lit, weakly (L 1.5); crown 1: its shadow seen as shadow; crown 2: lit, strong
    cr, sums = _crowns_and_sums(np.array([10, 10, 40]), np.array([13.5, -20.0, 80.0]),
                                np.array([10, 10, 40]), np.array([-40.0, -40.0, -90.0]))
    fixed = -2.0  # the prior held fixed: only the evidence moves

    monkeypatch.setattr(MS, "classifiers", lambda report: (clf, clf))

    def post(texture):
        return CS.decide_crowns(cr, sums, (1,), report=[{}, {}], prior_log_odds=fixed, texture=texture)[1]["post"]

    base = post(None)
    assert np.array_equal(post({1: (np.zeros(3), 1.0, 0.3)}), base)  # no texture evidence: as before
    assert base[0] < 0.5 and base[2] >= 0.5
    more = post({1: (np.array([3.0, 9.0, 0.0]), 1.0, 0.3)})
    assert more[0] >= 0.5  # the weak shadow evidence and the texture together
    assert more[1] == 0.0  # a shadow still there (looks shadowed) is not decided by the texture alone


def test_the_texture_alone_decides_no_crown_without_a_sure_shadow_of_its_own(monkeypatch):
    from types import SimpleNamespace

    import offnadir.change.missing_shadow as MS

    clf = SimpleNamespace(accuracy_shadow=0.8, mean_llr_shadow=-2.0, mean_llr_lit=2.0, prior=0.0)
    monkeypatch.setattr(MS, "classifiers", lambda report: (clf, clf))
    # crowns 0 and 1 cast no sure shadow cell of their own; crown 2 does, and it is seen (L -2)
    cr, sums = _crowns_and_sums(np.array([0, 0, 20]), np.array([0.0, 0.0, -18.0]), np.array([0, 0, 20]),
                                np.array([0.0, 0.0, -40.0]))
    d = CS.decide_crowns(cr, sums, (1,), report=[{}, {}], prior_log_odds=-2.0,
                         texture={1: (np.array([50.0, 0.0, 50.0]), 1.0, 0.3)})[1]
    assert d["ids"].tolist() == [30] and d["post"][0] == 0.0  # crown 2's shadow is there: not gone either
