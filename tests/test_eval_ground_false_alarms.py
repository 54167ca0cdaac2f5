"""benchmarks/eval_ground_false_alarms.py: the census's parts (issue 7, t6)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import eval_ground_false_alarms as G  # noqa: E402

from offnadir.change import localise as L  # noqa: E402


def test_edge_distance_counts_from_the_other_state():
    m = np.zeros((5, 7), bool)
    m[:, 4:] = True
    d = G.edge_distance(m)
    np.testing.assert_array_equal(d[0], [4, 3, 2, 1, 1, 2, 3])
    assert np.isinf(G.edge_distance(np.zeros((3, 3), bool))).all()
    assert G.dist_labels() == ["<=1", "1-3", "3-10", "10-20", ">20"]
    np.testing.assert_array_equal(G.dist_bin(np.array([0.0, 1.0, 1.5, 3.0, 9.9, 20.0, 21.0, np.inf])),
                                  [0, 0, 1, 1, 2, 3, 4, 4])


def test_stage_of_takes_the_first_stage_over_one_half():
    d = {"elev": np.array([False] * 6 + [True]), "prob": np.array([0.9, 0.7, 0.6, 0.5, 0.8, 0.3, 0.9], np.float32)}
    st = {"wide": np.array([0.7, 0.2, 0.2, 0.1, 0.1, 0.1, np.nan]),
          "local": np.array([0.6, 0.6, 0.2, 0.1, 0.1, 0.1, np.nan]),
          "patch": np.array([0.0, 0.0, 0.8, 0.0, 0.0, 0.0, 0.0])}
    fa = np.array([True, True, True, True, True, False, True])
    np.testing.assert_array_equal(G.stage_of(d, st, fa), [0, 1, 2, 3, 4, -1, 5])


def test_floored_llr_is_the_fixed_one_where_nothing_underflows_and_above_it_where_it_did():
    wide = {"fallback": False, "pi": [0.85, 0.15], "mean": [-0.5, -0.1], "sd": [0.3, 0.1]}
    np.testing.assert_allclose(G._floored_llr(wide), L.log_likelihood_ratio(wide), atol=1e-9)
    narrow = {"fallback": False, "pi": [0.83, 0.17], "mean": [-0.418, -0.145], "sd": [0.195, 0.081]}
    old, new = G._floored_llr(narrow), L.log_likelihood_ratio(narrow)
    assert np.all(new <= old + 1e-12)
    assert old[0] == 0.0 and new[0] == -L.LLR_BOUND
    np.testing.assert_allclose(old[old > 0], new[old > 0], atol=1e-9)  # the raising half is untouched
