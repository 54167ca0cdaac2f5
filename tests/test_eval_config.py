"""``--config FILE`` of the evaluation commands (benchmarks/eval_config.py): a partial run config
merged over the evaluation's job and validated as ``offnadir run`` validates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import eval_config as E  # noqa: E402

from offnadir.errors import ConfigError  # noqa: E402

JOB = {"dsm": {"path": "/data/dsm.tif"}, "images": [{"path": "/data/a.tif"}, {"path": "/data/b.tif", "date": "2023-04-15"}],
       "output": {"path": "/out/x.zarr", "overwrite": True}, "cluster": {"n_workers": 1}, "change": {"enabled": True}}


def _file(tmp_path, text, name="opts.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_merge_is_field_by_field_and_the_file_wins():
    out = E.merged(JOB, {"change": {"criteria": ["structural"]}, "cluster": {"n_workers": 2},
                         "height_sweep": {"dsm_test": "off_level"}})
    assert out["change"] == {"enabled": True, "criteria": ["structural"]}
    assert out["cluster"] == {"n_workers": 2} and out["height_sweep"] == {"dsm_test": "off_level"}
    assert out["images"] == JOB["images"] and JOB["cluster"] == {"n_workers": 1}  # the job is not modified


def test_the_job_with_a_file_validates_and_round_trips_through_offnadir_run(tmp_path):
    from offnadir import config

    f = _file(tmp_path, "height_sweep:\n  dsm_test: off_level\ntie_bias:\n  enabled: false\n")
    dest = E.write_job(JOB, f, tmp_path / "job.json")
    cfg = config.load(dest)  # what `offnadir run job.json` runs
    assert cfg["height_sweep"]["dsm_test"] == "off_level" and cfg["tie_bias"]["enabled"] is False
    assert cfg == E.job_config(JOB, f)
    assert [im["date"] for im in cfg["images"]] == [None, "2023-04-15"]
    assert E.job_config(JOB, None)["height_sweep"]["dsm_test"] == "off_level"  # the default without a file


@pytest.mark.parametrize("text, words", [
    ("height_sweep:\n  dsm_tset: off_level\n", ["height_sweep.dsm_tset", "dsm_test"]),
    ("height_sweep:\n  dsm_test: sideways\n", ["height_sweep.dsm_test", "sideways"]),
    ("images:\n  - path: x.tif\n", ["images", "the evaluation sets its own inputs"]),
    ("output:\n  path: y.zarr\n", ["output.path"]),
    ("- height_sweep\n", ["a mapping of config sections"]),
])
def test_a_bad_file_is_a_config_error_naming_the_field(tmp_path, text, words):
    f = _file(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        E.check(f)
    assert all(w in str(e.value) for w in words) and str(f) in str(e.value)


@pytest.mark.parametrize("script", ["eval_hard_sim", "eval_change_real", "eval_sweep_real"])
def test_each_evaluation_refuses_a_bad_file_in_one_line_with_status_2(tmp_path, capsys, script):
    import importlib

    mod = importlib.import_module(script)
    f = _file(tmp_path, "change:\n  no_such_option: 1\n")
    assert E.main_with_errors(mod.main, ["--config", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "change.no_such_option" in err[0] and "Traceback" not in err[0]


def test_eval_hard_sim_runs_the_job_as_offnadir_run_of_the_merged_config(tmp_path, monkeypatch):
    """With --config, the stereo job (three images, the dates given as for detect) goes to
    ``offnadir run`` with the file's options; without, the ``offnadir detect`` command as before."""
    import eval_hard_sim as H

    d = tmp_path / "hard_stereo3"
    d.mkdir()
    views = {v: {"acquired": t} for v, t in (("base", "2020-05-01T10:00:00Z"), ("target", "2023-06-02T10:00:00Z"),
                                              ("target2", "2023-06-02T10:00:00Z"))}
    (d / "scene.json").write_text(json.dumps({"views": views, "stereo": {"base_to_height": 0.3}}))
    cmds = []
    monkeypatch.setattr(H, "_run", lambda cmd: cmds.append(cmd) or 0.0)
    monkeypatch.setattr(H, "score_target", lambda *a, **k: {})
    monkeypatch.setattr(H, "score_dh", lambda *a, **k: {})
    f = _file(tmp_path, "height_sweep:\n  dsm_test: off_level\n")
    H.one_seed(3, 64, tmp_path, 1, reuse=False, stereo=True, config=f)
    sim, run = cmds
    assert sim[3] == "simulate" and run[3:5] == ["run", str(tmp_path / "hard_stereo3.job.json")]
    job = json.loads(Path(run[4]).read_text())
    assert job["height_sweep"]["dsm_test"] == "off_level" and job["change"]["enabled"] is True
    assert [Path(im["path"]).name for im in job["images"]] == ["base.tif", "target.tif", "target2.tif"]
    assert [im["date"] for im in job["images"]] == ["2020-05-01", "2023-06-02", "2023-06-02"]
    assert job["output"]["path"] == str(tmp_path / "hard_stereo3.zarr") and job["cluster"]["n_workers"] == 1
    cmds.clear()
    H.one_seed(3, 64, tmp_path, 1, reuse=False, stereo=True)
    det = cmds[1]
    assert det[3] == "detect" and det.count("--date") == 3 and "run" not in det


def test_eval_hard_sim_true_sun_gives_each_image_its_sun_from_scene_json(tmp_path, monkeypatch):
    """--true-sun (the oracle of issue 7 H2, seventh round): the truth of scene.json per image, in
    image order, to ``offnadir detect`` (``--sun AZ,EL``) and to the run config's images."""
    import eval_hard_sim as H

    d = tmp_path / "hard5"
    d.mkdir()
    views = {"base": {"acquired": "2020-05-01T10:00:00Z", "sun_azimuth_deg": 142.5, "sun_elevation_deg": 31.25},
             "target": {"acquired": "2023-06-02T10:00:00Z", "sun_azimuth_deg": 189.0, "sun_elevation_deg": 70.0}}
    (d / "scene.json").write_text(json.dumps({"views": views}))
    cmds = []
    monkeypatch.setattr(H, "_run", lambda cmd: cmds.append(cmd) or 0.0)
    monkeypatch.setattr(H, "score_target", lambda *a, **k: {})
    H.one_seed(5, 64, tmp_path, 1, reuse=False, true_sun=True)
    det = cmds[1]
    i = [k for k, a in enumerate(det) if a == "--sun"]
    assert [det[k + 1] for k in i] == ["142.5,31.25", "189.0,70.0"]
    cmds.clear()
    H.one_seed(5, 64, tmp_path, 1, reuse=False)
    assert "--sun" not in cmds[1]  # the default estimates it
    cmds.clear()
    H.one_seed(5, 64, tmp_path, 1, reuse=False, config=_file(tmp_path, "change:\n  shadows: true\n"), true_sun=True)
    job = json.loads(Path(cmds[1][4]).read_text())
    assert [(im["sun_azimuth"], im["sun_elevation"]) for im in job["images"]] == [(142.5, 31.25), (189.0, 70.0)]
