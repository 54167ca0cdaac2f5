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


def test_raise_that_keeps_the_rim_vetoes_the_missing_rule_only():
    """Near nadir the least raise the longer-shadow rule asserts moves the rim by less than a cell: a raised roof
    may keep its rim, so only the missing-shadow rule's 'gone' is vetoed there."""
    assert RV.raise_moves_rim(45.6, 25.0) and not RV.raise_moves_rim(37.1, 10.0)
    red_ids = np.array([1, 2])
    gone = {1: (np.array([1, 2]), np.array([0.9, 0.8]))}  # 1: raised (longer rule), 2: gone (missing rule)
    missing = {1: (np.array([1, 2]), np.array([0.0, 0.8]))}
    kept = {1: np.array([True, True])}
    out = RV.rim_veto(gone, red_ids, kept, {1: True}, missing, {1: False})
    assert out[1][1].tolist() == [0.9, 0.0]
    out = RV.rim_veto(gone, red_ids, kept, {1: True}, missing, {1: True})
    assert out[1][1].tolist() == [0.0, 0.0]
