"""offnadir detect / run / evaluate from the command line, on a local dask cluster, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from offnadir.cli import main
from offnadir.store import _quiet_zarr

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from offnadir.simulate import simulate

    return simulate(tmp_path_factory.mktemp("sim"), seed=4, size=192, base_view=(5.0, 270.0),
                    target_view=(25.0, 90.0))


def _open(path):
    """The store with its stored codes, as offnadir's readers open it (xarray's default decoding
    turns the maps' CF _FillValue into NaN: patch 0, change 2)."""
    from offnadir.store import open_dataset

    with _quiet_zarr():
        return open_dataset(path).load()


@pytest.mark.slow
def test_detect_then_evaluate_on_a_local_cluster(sim, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    table = tmp_path / "patches.csv"
    argv = ["detect", "--dsm", str(sim.paths["dsm"]), "--base", str(sim.paths["base"]), "--target",
            str(sim.paths["target"]), "--gcps", str(sim.paths["gcps_base"]), "--gcps", str(sim.paths["gcps_target"]),
            "-o", str(out), "--chunk", "96", "--workers", "2", "--table-csv", str(table), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    ds = _open(out)
    for name in ("row", "visible", "value", "patch", "elevated", "illumination", "change", "score", "change_ortho",
                 "score_ortho", "patch_change", "patch_spectral", "patch_structural"):
        assert name in ds, name
    assert ds["change"].dims == ("image", "y", "x") and ds["patch"].dtype == np.int64
    assert ds["change"].encoding["chunks"] == (1, 96, 96)
    assert ds.attrs["change_method"] == "patch" and "change_irmad" in ds.attrs
    assert "config" in ds.attrs and "proj:wkt2" in ds.attrs  # the cube's attributes survive
    assert (ds["change_tiles"].values == 5).all()  # every tile segmented (1) and written (4)
    assert ds.rio.crs is not None
    # the same run in memory gives the same maps
    from offnadir.change import detect
    cube = ds[["row", "col", "visible", "value", "dsm"]]
    cube.attrs.update({k: v for k, v in ds.attrs.items() if not k.startswith("change")})
    mem = detect(cube, chunk=96)
    np.testing.assert_array_equal(mem["patch"].values, ds["patch"].values)
    np.testing.assert_array_equal(mem["change"].values, ds["change"].values)
    # the CSV table: one row per patch of the target
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == ds.sizes["patch_id"] and rows[0]["image"] == "target"
    assert {"patch_id", "spectral", "structural", "change", "score", "n_cells"} <= set(rows[0])
    capsys.readouterr()
    assert main(["evaluate", str(out), str(sim.paths["truth_change"]), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    res = rep["images"]["target"]
    assert set(res) == {"patch", "ortho", "gain_f1"}
    assert res["patch"]["elevated"]["f1"] > res["ortho"]["elevated"]["f1"]
    print(f"seed 4 (192 cells, view B): elevated F1 {res['patch']['elevated']['f1']:.3f}, ortho "
          f"{res['ortho']['elevated']['f1']:.3f}")


def test_method_ortho_writes_only_the_baseline(sim, tmp_path, capsys):
    out = tmp_path / "ortho.zarr"
    assert main(["detect", "--dsm", str(sim.paths["dsm"]), "--base", str(sim.paths["base"]), "--target",
                 str(sim.paths["target"]), "-o", str(out), "--chunk", "192", "--workers", "1", "--method", "ortho",
                 "--quiet"]) == 0, capsys.readouterr().err
    ds = _open(out)
    assert "change" in ds and "patch" not in ds and "change_ortho" not in ds
    assert ds.attrs["change_method"] == "ortho"
    assert set(np.unique(ds["change"].values[1])) <= {0, 1, 2}
    capsys.readouterr()
    assert main(["evaluate", str(out), str(sim.paths["truth_change"])]) == 0
    assert "ortho" in capsys.readouterr().out


def test_run_config_with_a_change_section(sim, tmp_path, capsys):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"dsm:\n  path: {sim.paths['dsm']}\nimages:\n  - path: {sim.paths['base']}\n"
                   f"  - path: {sim.paths['target']}\noutput:\n  path: out.zarr\ntiling:\n  chunk: 192\n"
                   f"cluster:\n  n_workers: 1\nchange:\n  criteria: [spectral]\n  baseline: false\n")
    assert main(["run", str(cfg), "--quiet"]) == 0, capsys.readouterr().err
    ds = _open(tmp_path / "out.zarr")
    assert "change" in ds and "change_ortho" not in ds
    assert json.loads(ds.attrs["change_options"])["criteria"] == ["spectral"]
    assert "patch_structural" not in ds


def test_template_lists_the_change_section_and_is_in_sync(capsys):
    from offnadir.config import template

    assert main(["template-config"]) == 0
    text = capsys.readouterr().out
    assert "\nchange:\n" in text and "spectral_sigma: 3.5" in text and "method: patch" in text
    assert (ROOT / "configs" / "template.yaml").read_text().strip() == template().strip()


def _fails(argv, capsys, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def test_bad_input(sim, tmp_path, capsys):
    out = tmp_path / "bad.zarr"
    common = ["--dsm", str(sim.paths["dsm"]), "--base", str(sim.paths["base"]), "-o", str(out), "--quiet"]
    _fails(["detect"] + common + ["--target", str(tmp_path / "missing.tif")], capsys, "missing.tif", "not found")
    assert not out.exists()
    _fails(["detect"] + common, capsys, "--target")  # argparse: required
    _fails(["detect"] + common + ["--target", str(sim.paths["target"]), "--gcps", str(sim.paths["gcps_base"])],
           capsys, "1 --gcps given for 2 images")
    cfg = tmp_path / "job.yaml"
    base = (f"dsm:\n  path: {sim.paths['dsm']}\nimages:\n  - path: {sim.paths['base']}\n  - path: {sim.paths['target']}"
            f"\noutput:\n  path: o.zarr\n")
    cfg.write_text(base + "change:\n  spectral_sigmaa: 3\n")
    _fails(["run", str(cfg)], capsys, "change.spectral_sigmaa", "spectral_sigma")
    cfg.write_text(base + "change:\n  criteria: [spectral, magic]\n")
    _fails(["run", str(cfg)], capsys, "change.criteria", "structural")
    cfg.write_text(base + "change:\n  method: pixel\n")
    _fails(["run", str(cfg)], capsys, "change.method", "patch")
    assert not (tmp_path / "o.zarr").exists()
