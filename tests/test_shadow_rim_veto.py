"""rim_veto.rim_veto: a roof whose near-sensor rim stayed at both dates is not decided gone or raised by the
roof-wide shadow rules where the target's facade is dark; the others keep their decision; what was vetoed is recorded."""

import numpy as np

from offnadir.change import rim_veto as RV


def test_kept_rim_vetoes_only_its_roof():
    red_ids = np.array([3, 5, 8, 11])
    kept = {1: np.array([False, True, False, True])}  # roofs 5 and 11 keep their rim
    gone = {1: (np.array([3, 5, 8, 11]), np.array([0.9, 0.8, 0.1, 0.3]))}
    report = [{}, {}]
    out = RV.rim_veto(gone, red_ids, kept, {1: True}, report=report)
    ids, post = out[1]
    assert ids.tolist() == [3, 5, 8, 11]
    assert post.tolist() == [0.9, 0.0, 0.1, 0.0]
    assert report[1]["shadow_rules_rim_vetoed"] == 1  # roof 5 was decided; 11 was not
    assert gone[1][1].tolist() == [0.9, 0.8, 0.1, 0.3]  # the input is not changed


def test_subset_ids_and_missing_rim():
    red_ids = np.array([2, 4, 6, 9])
    kept = {1: np.array([True, False, False, True]), 2: None}
    gone = {1: (np.array([4, 9]), np.array([0.7, 0.6])), 2: (np.array([2]), np.array([0.95]))}
    out = RV.rim_veto(gone, red_ids, kept, {1: True, 2: True})
    assert out[1][1].tolist() == [0.7, 0.0]
    assert out[2][1].tolist() == [0.95]  # no rim table for target 2: unchanged


def test_lit_facade_no_veto():
    """Where the facade facing the sensor is lit, a raised roof's facade | roof step can read as a kept rim."""
    red_ids = np.array([5])
    gone = {1: (np.array([5]), np.array([0.8]))}
    report = [{}, {}]
    out = RV.rim_veto(gone, red_ids, {1: np.array([True])}, {1: False}, report=report)
    assert out[1][1].tolist() == [0.8]
    assert report[1]["shadow_rules_rim_vetoed"].startswith("off")


def test_raise_that_keeps_the_rim_keeps_the_longer_rule_claims_only():
    """Near nadir the least raise the longer-shadow rule asserts moves the rim by less than a cell: a raised roof
    may keep its rim, so its claims stand there; the claims of 'gone' (missing shadow, crowns) are still vetoed."""
    assert RV.raise_moves_rim(45.6, 25.0) and not RV.raise_moves_rim(37.1, 10.0)
    red_ids = np.array([1, 2, 3, 4])
    # after the crowns: 1 raised (longer rule), 2 gone (missing rule), 3 gone (a crown, on a non-planar roof),
    # 4 raised and gone (both patch rules)
    gone = {1: (np.array([1, 2, 3, 4]), np.array([0.9, 0.8, 0.96, 0.7]))}
    missing = {1: (np.array([1, 2, 3, 4]), np.array([0.0, 0.8, 0.36, 0.7]))}
    patch_rules = {1: (np.array([1, 2, 3, 4]), np.array([0.9, 0.8, 0.36, 0.7]))}  # before the crowns
    raised = RV.raised_claims(missing, patch_rules)
    assert raised[1][1].tolist() == [0.9, 0.0, 0.36, 0.0]
    kept = {1: np.array([True, True, True, True])}
    out = RV.rim_veto(gone, red_ids, kept, {1: True}, raised, {1: False})
    assert out[1][1].tolist() == [0.9, 0.0, 0.0, 0.0]
    out = RV.rim_veto(gone, red_ids, kept, {1: True}, raised, {1: True})
    assert out[1][1].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_for_run_crown_gone_vetoed_near_nadir():
    """for_run with the runner's tables: at a view where no raise moves the rim (10 deg off nadir), the crown
    rule's 'gone' on a roof whose rim stayed is taken back, the longer rule's 'raised' is not."""
    red_ids = np.array([7, 9])
    gone = {1: (np.array([7, 9]), np.array([0.95, 0.9]))}  # 7 a crown's, 9 the longer rule's
    missing = {1: (np.array([7, 9]), np.array([0.2, 0.0]))}
    patch_rules = {1: (np.array([7, 9]), np.array([0.2, 0.9]))}
    per_target = {1: {"rim_kept": np.array([True, True]), "facade_dark": True}}
    report = [{}, {"elevation": 37.1}]
    out = RV.for_run(gone, missing, patch_rules, red_ids, per_target, report, [5.0, 10.0])
    assert out[1][1].tolist() == [0.0, 0.9]
    assert report[1]["shadow_rules_rim_vetoed"] == 1
