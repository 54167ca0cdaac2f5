"""benchmarks/eval_geometries.py: the geometry list, the per-geometry runs (views passed to the
simulator, one work folder per geometry) and the table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import eval_geometries as G  # noqa: E402


def test_parse_geometry_names_and_explicit_views():
    assert G.parse_geometry("t_az0") == ("t_az0", "5,90", "25,0")
    assert G.parse_geometry("mine=20,45/30,225") == ("mine", "20,45", "30,225")
    with pytest.raises(SystemExit):
        G.parse_geometry("no_such_geometry")
    with pytest.raises(SystemExit):
        G.parse_geometry("bad=5,90/75,0")  # off-nadir out of range


def _row(f1, auc, fa, sun, miss_new):
    e = {"f1": f1}
    return {"elevated": e, "reference": {"f1": f1 / 2, "auc": auc}, "ground": {"false_alarm_rate": fa},
            "sun": [{"error_deg": sun}, {"error_deg": sun / 2}],
            "misses": {"new": miss_new, "raised": 1}, "false_alarms": {"roofs": 2, "ground": 3}}


def test_each_geometry_runs_its_views_in_its_own_folder_and_the_table_sums_the_seeds(tmp_path, monkeypatch, capsys):
    calls = []

    def one_seed(seed, size, work, workers, reuse, stereo=False, sim_views=()):
        calls.append((seed, Path(work).name, tuple(sim_views), stereo))
        return _row(0.5 + 0.1 * seed, 0.9, 0.01 * seed, 1.0 + seed, 10 * (seed + 1))

    monkeypatch.setattr(G.H, "one_seed", one_seed)
    out = tmp_path / "t.json"
    assert G.main(["--geometries", "t_az180", "x=20,0/20,180", "--seeds", "0", "1", "--work", str(tmp_path),
                   "--json", str(out)]) == 0
    assert calls == [(0, "t_az180", ("--base-view", "5,90", "--target-view", "25,180"), False),
                     (1, "t_az180", ("--base-view", "5,90", "--target-view", "25,180"), False),
                     (0, "x", ("--base-view", "20,0", "--target-view", "20,180"), False),
                     (1, "x", ("--base-view", "20,0", "--target-view", "20,180"), False)]
    table = json.loads(out.read_text())
    assert table["x"]["f1"] == [0.5, 0.6] and table["x"]["misses"] == {"new": 30, "raised": 2}
    assert table["x"]["sun_err"] == 2.0  # the worst image of any seed
    text = capsys.readouterr().out
    assert "t_az180" in text and "0.550" in text  # the mean elevated F1 of the two seeds


def test_stereo_rows_score_both_targets():
    r = _row(0.8, 0.9, 0.0, 1.0, 5)
    r["target2"] = _row(0.6, 0.8, 0.1, 1.0, 7)
    s = G.summarise([r], stereo=True)
    assert s["f1"] == [0.8, 0.6] and s["misses"]["new"] == 12 and s["auc"] == [0.9, 0.8]
