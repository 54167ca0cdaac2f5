"""benchmarks/_facade_object.py (issue 7, t1 twelfth round): the facade test as an object-level decision, its
parts. The q-values are monotone and equal test and null pass nothing; a wall is the rows of same-width strips
joined, and a block of dark cells taller than the strips' range is no wall across the lean; the roof side's
contrast is positive down the lean and negative for the reversed reading; a wall row's footprint runs from the
strip's first cell for the roof run's depth. (The figures come from ``eval_shadow_ray.py --variants fobj*``.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import benchmark_module

fo = benchmark_module("_facade_object")

EAST = math.radians(270.0)  # the lean of a sensor to the west: one step along it is one column east


def test_tail_fdr_is_a_monotone_q_value(fo):
    q = fo.tail_fdr(np.array([0.0, 8, 8, 2, 2]), np.array([2.0, 2, 2, 2]), 2)
    assert q.tolist() == [1.0, 0.0, 0.0, 0.5, 0.5]  # 2 null walls per draw of >= 2 rows against 4 tested
    same = fo.tail_fdr(np.array([0.0, 3, 3]), np.array([3.0, 3, 3, 3]), 2)
    assert (same == 1.0).all()  # the test no better than its null: nothing passes
    # the tail share at 5 rows alone would be 1; the rejection set from 2 rows (0.4) holds the 5-row wall too
    mono = fo.tail_fdr(np.array([2.0, 2, 2, 2, 5]), np.array([5.0, 5, 5, 5]), 2)
    assert mono[4] == pytest.approx(0.4) and (mono <= 1).all()


def _wall(rows=(2, 30), cols=(10, 16)):
    U = np.zeros((40, 50), bool)
    U[rows[0]:rows[1], cols[0]:cols[1]] = True
    return U, ~U


def test_wall_components_join_same_width_rows_and_not_across(fo):
    U, bright = _wall()
    lab, rows, length = fo.wall_components(U, bright, EAST, 6)  # strips of 3 .. 12 cells
    assert rows.max() == 28 and (rows >= 2).sum() == 1
    assert (length[lab > 0] == 6).all() and (np.nonzero(lab)[1] == 15).all()  # ends on the wall's east column
    # across the lean the dark block is 28 cells long: more than twice the typical displacement, no wall
    _, rows_across, _ = fo.wall_components(U, bright, EAST + math.pi / 2, 6)
    assert (rows_across >= 2).sum() == 0
    one, bone = _wall(rows=(5, 6))  # a dark run on one row alone is no wall
    assert fo.wall_components(one, bone, EAST, 6)[1].max() == 0


def test_side_contrast_reads_the_roof_side_down_the_lean(fo):
    U, bright = _wall()
    logr = np.zeros(U.shape)
    logr[:, 16:] = 1.0  # the roof side (east of the wall) differs from the base, the ground line's side does not
    lab, rows, length = fo.wall_components(U, bright, EAST, 6)
    assert fo.side_contrast(lab, rows, length, logr, EAST, 6).max() == pytest.approx(1.0)
    labr, rowsr, lengthr = fo.wall_components(U, bright, EAST + math.pi, 6)  # reversed: its "roof" is the west
    c = fo.side_contrast(labr, rowsr, lengthr, logr, EAST + math.pi, 6)
    assert rowsr.max() == 28 and c[rowsr.argmax()] == pytest.approx(-1.0)


def test_rows_footprint_is_the_roof_run_shifted_back_by_the_strip(fo):
    seg = np.zeros((5, 50), np.int64)
    seg[2, 16:30] = 5  # the displaced roof: 14 cells past the strip's end (column 15)
    pc = fo.rows_footprint(seg, np.array([2]), np.array([15]), np.array([6]), np.array([0.8]), np.array([5]),
                           EAST, 6)
    assert (pc[2, 10:24] == 0.8).all()  # from the strip's first cell (10) for the roof's 14 cells
    assert pc[2, :10].sum() == 0 and pc[2, 24:].sum() == 0 and pc[[0, 1, 3, 4]].sum() == 0
