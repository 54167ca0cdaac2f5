"""missing_shadow.rim_veto: a roof whose near-sensor rim stayed at both dates is not decided gone or raised by the
roof-wide shadow rules where the target's facade is dark; the others keep their decision; what was vetoed is recorded."""

import numpy as np

from offnadir.change import missing_shadow as MS


def test_kept_rim_vetoes_only_its_roof():
    red_ids = np.array([3, 5, 8, 11])
    kept = {1: np.array([False, True, False, True])}  # roofs 5 and 11 keep their rim
    gone = {1: (np.array([3, 5, 8, 11]), np.array([0.9, 0.8, 0.1, 0.3]))}
    report = [{}, {}]
    out = MS.rim_veto(gone, red_ids, kept, {1: True}, report)
    ids, post = out[1]
    assert ids.tolist() == [3, 5, 8, 11]
    assert post.tolist() == [0.9, 0.0, 0.1, 0.0]
    assert report[1]["shadow_rules_rim_vetoed"] == 1  # roof 5 was decided; 11 was not
    assert gone[1][1].tolist() == [0.9, 0.8, 0.1, 0.3]  # the input is not changed


def test_subset_ids_and_missing_rim():
    red_ids = np.array([2, 4, 6, 9])
    kept = {1: np.array([True, False, False, True]), 2: None}
    gone = {1: (np.array([4, 9]), np.array([0.7, 0.6])), 2: (np.array([2]), np.array([0.95]))}
    out = MS.rim_veto(gone, red_ids, kept, {1: True, 2: True})
    assert out[1][1].tolist() == [0.7, 0.0]
    assert out[2][1].tolist() == [0.95]  # no rim table for target 2: unchanged


def test_lit_facade_no_veto():
    """Where the facade facing the sensor is lit, a raised roof's facade | roof step can read as a kept rim."""
    red_ids = np.array([5])
    gone = {1: (np.array([5]), np.array([0.8]))}
    report = [{}, {}]
    out = MS.rim_veto(gone, red_ids, {1: np.array([True])}, {1: False}, report)
    assert out[1][1].tolist() == [0.8]
    assert report[1]["shadow_rules_rim_vetoed"].startswith("off")
