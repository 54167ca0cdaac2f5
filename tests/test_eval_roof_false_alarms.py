"""The ``--regions`` census of ``benchmarks/eval_roof_false_alarms.py``: regions, whole roof or fragment, sole source."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import eval_roof_false_alarms as RF  # noqa: E402


def _flags(shape):
    return {k: np.zeros(shape, bool) for k in RF.NAMES}


def test_whole_roof_and_fragment_with_their_sources():
    idx = np.zeros((20, 20), np.int64)
    idx[2:8, 2:8] = 1  # roof 1: 36 cells
    idx[10:18, 10:18] = 2  # roof 2: 64 cells
    roof = idx > 0
    flags = _flags(idx.shape)
    fa = np.zeros(idx.shape, bool)
    fa[2:8, 2:8] = True  # roof 1 flagged whole, by the shadow rules alone
    flags["shadow rules"][2:8, 2:8] = True
    fa[10:12, 10:14] = True  # 8 of roof 2's 64 cells: a fragment, census and spectral both
    flags["census"][10:12, 10:14] = True
    flags["spectral"][10:12, 10:14] = True
    rows = sorted(RF.flagged_regions(fa, roof, idx, flags), key=lambda r: r["index"])
    assert [(r["index"], r["cells"], r["roof"], r["shape"], r["source"]) for r in rows] == [
        (1, 36, 36, "whole", "shadow rules"), (2, 8, 64, "fragment", "several")]
    assert rows[1]["share"] == 8 / 64


def test_diagonal_cells_join_and_majority_source():
    idx = np.ones((6, 6), np.int64)
    roof = np.ones((6, 6), bool)
    fa = np.zeros((6, 6), bool)
    fa[0, 0] = fa[1, 1] = fa[2, 2] = True  # 8-connected: one region
    flags = _flags(fa.shape)
    flags["outline"][0, 0] = flags["outline"][1, 1] = True
    flags["census"][2, 2] = True
    (r,) = RF.flagged_regions(fa, roof, idx, flags)
    assert r["cells"] == 3 and r["source"] == "outline" and r["shape"] == "fragment"
