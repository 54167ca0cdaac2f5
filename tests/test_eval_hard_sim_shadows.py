"""benchmarks/eval_hard_sim.py's measuring machinery added for issue 7 H6: the split of the ground
false alarms by how the predicted shadows match the true ones, and the views passed to the
simulator. (The figures themselves come from the evaluation command, not from tests.)"""

from __future__ import annotations


import numpy as np
import pytest
from conftest import benchmark_module


ehs = benchmark_module("eval_hard_sim")


def test_shadow_classes_one_cell_per_case(ehs):
    # cells: (pred base, pred target, truth bits) -> expected class
    cases = [
        ((False, False, 0), "lit"),
        ((True, False, 1), "as_predicted"),  # the base's shadow, predicted
        ((True, True, 3), "as_predicted"),  # shadowed at both dates, predicted at both
        ((False, True, 2), "as_predicted"),
        ((False, False, 2), "unexplained"),  # a new caster's shadow at the new date
        ((True, False, 3), "unexplained"),  # base right, the new date's shadow unpredicted
        ((False, False, 1), "unexplained"),
        ((True, True, 1), "missing"),  # predicted at the new date, truly lit: the caster went
        ((False, True, 0), "missing"),
        ((True, False, 0), "missing"),
    ]
    pb = np.array([c[0][0] for c in cases])
    pt = np.array([c[0][1] for c in cases])
    sh = np.array([c[0][2] for c in cases], np.uint8)
    got = ehs.shadow_classes(pb, pt, sh)
    for i, (_, want) in enumerate(cases):
        hits = [k for k, m in got.items() if m[i]]
        assert hits == [want], (cases[i], hits)


def test_views_reach_the_simulator(ehs, monkeypatch, tmp_path):
    calls = []

    def fake_run(cmd):
        calls.append(cmd)
        raise SystemExit(0)  # stop after the first command: only its arguments matter here

    monkeypatch.setattr(ehs, "_run", fake_run)
    with pytest.raises(SystemExit):
        ehs.main(["--seeds", "3", "--work", str(tmp_path), "--target-view", "30,270", "--base-view", "10,45"])
    cmd = calls[0]
    assert "simulate" in cmd
    i = cmd.index("--target-view")
    assert cmd[i + 1] == "30,270"
    j = cmd.index("--base-view")
    assert cmd[j + 1] == "10,45"
    calls.clear()
    with pytest.raises(SystemExit):
        ehs.main(["--seeds", "3", "--work", str(tmp_path)])
    assert "--target-view" not in calls[0] and "--base-view" not in calls[0]
