"""Bad input gives one clean error (exit 2, the field or file named with the fix, no traceback,
nothing left behind), checked before any cluster starts: every case of tests/error_cases.py, plus the
config schema's ranges, the DSM's out-of-range heights and cell sizes in metres."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from error_cases import CASES, make_scene
from synthetic import LAT0, metres_per_degree

from offnadir import config
from offnadir.cli import main
from offnadir.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("bad_inputs"))


def _listing(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_clean_error(case, scene, capsys, monkeypatch):
    import offnadir.cluster

    def no_cluster(*a, **k):  # the error must come before any cluster starts
        raise AssertionError("a cluster was started for bad input")

    monkeypatch.setattr(offnadir.cluster, "dask_client", no_cluster)
    argv = case.argv(scene)
    before = _listing(scene)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == case.exit, err
    assert "Traceback" not in err and "Traceback" not in out
    assert err.count("offnadir: error:") == 1, err
    msg = err[err.index("offnadir: error:"):].strip()
    assert len(msg.splitlines()) == case.lines, msg
    for s in case.expect:
        assert s in msg, f"{s!r} not in {msg!r}"
    assert len(msg) < 1500
    after = [p for p in _listing(scene) if p not in before]
    assert after == [], f"left behind: {after}"


def test_alias_free_yaml_still_loads(tmp_path):
    (tmp_path / "job.yaml").write_text("dsm: &d {path: dsm.tif}\nimages: [a.tif]\noutput: {path: o.zarr}\n")
    cfg = config.load(tmp_path / "job.yaml")  # an anchor without alias is harmless
    assert cfg["dsm"]["path"] == str(tmp_path / "dsm.tif")


def test_ranges_and_finiteness_of_fields():
    F = config.Field
    check = config._check_value
    assert check("s", "x", F(float, 1.0, "", lo=0, lo_open=True), 3, None) == 3.0
    for f, v in [(F(float, 1.0, "", lo=0, lo_open=True), 0), (F(float, 1.0, "", lo=0), -1e-9),
                 (F(float, 1.0, "", hi=1, hi_open=True), 1.0), (F(float, 1.0, ""), math.inf),
                 (F(float, 1.0, ""), -math.inf), (F(float, 1.0, ""), math.nan), (F(int, 1, ""), 2**31),
                 (F(float, 1.0, ""), 10**400), (F(list, [], "", items=str), ["a", 1]),
                 (F(list, [], "", items=str), ["a", True])]:
        with pytest.raises(ConfigError, match=r"s\.x"):
            check("s", "x", f, v, None)
    assert check("s", "x", F(float, 1.0, "", lo=0, hi=1), 1, None) == 1.0  # inclusive by default
    assert check("s", "x", F(int, 1, "", lo=1, hi=10), 10, None) == 10


def test_every_numeric_field_has_a_range_or_the_default_int_bound():
    """No number in the schema is unchecked: floats are finite, ints bounded, and each default is in range."""
    for sec, fields in config.schema().items():
        for name, f in fields.items():
            if f.default is not None and f.type in (int, float):
                assert config._check_value(sec, name, f, f.default, None) == f.default


def test_show_never_echoes_a_huge_value():
    assert len(config.show("x" * 10**6)) < 100
    assert "digits" in config.show(10**500)
    assert "items" in config.show(list(range(10**4)))


def test_all_problems_reported_together(tmp_path):
    raw = {"dsm": {"path": "d.tif", "band": 0}, "images": ["a.tif"], "output": {"path": "o.zarr"},
           "tiling": {"chunk": 8}, "cluster": {"n_workers": 0}, "nonsense": 1}
    with pytest.raises(ConfigError) as e:
        config.validate(raw)
    lines = str(e.value).splitlines()
    assert lines[0].endswith("4 problems:")
    for s in ("dsm.band", "tiling.chunk", "cluster.n_workers", "nonsense"):
        assert sum(s in line for line in lines[1:]) == 1, s


def test_change_options_refuse_list_items_without_type_error():
    from offnadir.change.options import ChangeOptions

    with pytest.raises(ConfigError, match="criteria"):
        ChangeOptions(criteria=(["spectral"],)).check()


# --------------------------------------------------------------------------- DSM heights


def _dsm_with(tmp_path, name, value, block):
    from synthetic import box_scene, write_dsm

    h = box_scene(n=64, boxes=((20, 40, 20, 40, 15.0),))
    h[block] = value
    return write_dsm(tmp_path / name, h)


@pytest.mark.parametrize("value", [-9999.0, 1e6])
def test_out_of_range_heights_warn_and_read_as_nodata(tmp_path, value):
    from offnadir.cube.tile import block_stats
    from offnadir.io.dsm import DsmValueWarning, open_dsm_source

    p = _dsm_with(tmp_path, "d.tif", value, (slice(0, 10), slice(0, 10)))
    with pytest.warns(DsmValueWarning, match=r"100 DSM cells .* read as nodata") as rec:
        src = open_dsm_source(p)
    if value == -9999.0:
        assert "gdal_edit.py -a_nodata -9999" in str(rec[0].message)
    h = src.read_block(0, 64, 0, 64)
    assert np.isnan(h[:10, :10]).all() and np.isfinite(h[10:, 10:]).all()
    h_min, h_max, n = block_stats(src, 0, 64, 0, 64)
    assert (h_min, h_max, n) == (100.0, 115.0, 64 * 64 - 100)


def test_large_dsms_are_scanned_by_sampled_blocks(tmp_path, monkeypatch):
    """Above SCAN_CELLS whole blocks spread over the grid are read: a -9999 quarter is still found."""
    import rasterio
    from rasterio.transform import from_origin

    from offnadir.io import dsm as dsm_mod

    h = np.full((128, 128), 100.0, np.float32)
    h[:64, :64] = -9999.0
    p = tmp_path / "tiled.tif"
    with rasterio.open(p, "w", driver="GTiff", width=128, height=128, count=1, dtype="float32", tiled=True,
                       blockxsize=16, blockysize=16, crs="EPSG:32631", transform=from_origin(5e5, 4.8e6, 0.5, 0.5)) as dst:
        dst.write(h, 1)
    monkeypatch.setattr(dsm_mod, "SCAN_CELLS", 16 * 16 * 16)  # 16 of the 64 blocks
    with pytest.warns(dsm_mod.DsmValueWarning, match=r"of 4096 sampled DSM cells .* -9999"):
        dsm_mod._scan_heights(p, 1, None, (128, 128))


def test_heights_in_range_give_no_warning(tmp_path):
    from offnadir.io.dsm import open_dsm_source

    p = _dsm_with(tmp_path, "d.tif", 8800.0, (slice(0, 2), slice(0, 2)))  # a summit is a height
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        src = open_dsm_source(p)
    assert np.nanmax(src.read_block(0, 64, 0, 64)) == 8800.0


def test_spike_and_undeclared_nodata_run_to_a_normal_halo(tmp_path, capsys):
    """The whole command on a DSM with a +1e6 m spike and a -9999 block: a warning, a halo set by
    the real heights (not 1e6 m), and a store."""
    from synthetic import affine_rpc, box_scene, write_dsm, write_image

    h = box_scene(n=64, boxes=((20, 40, 20, 40, 15.0),))
    h[5, 5] = 1e6
    h[50:60, 0:20] = -9999.0
    dsm = write_dsm(tmp_path / "spiky.tif", h)
    img = write_image(tmp_path / "a.tif", affine_rpc(10.0, 60.0))
    code = main(["coregister", "--dsm", str(dsm), "--image", str(img), "-o", str(tmp_path / "o.zarr"),
                 "--workers", "1", "--chunk", "32"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err and "does not overlap" not in err
    assert err.count("offnadir: warning:") >= 1 and "201 DSM cells" in err
    halo = int(err.split("halo ")[1].split(" ")[0])
    assert halo < 20  # 15 m of relief at 10 deg off-nadir on 0.5 m cells: about 6 cells, not 1e6 m worth


# --------------------------------------------------------------------------- cell sizes in metres


def test_cell_size_in_metres_of_a_geographic_grid_matches_the_ellipsoid_radii():
    """Against the meridian / prime-vertical radii of curvature (tests/synthetic.metres_per_degree)."""
    from offnadir.io.dsm import cell_size_m

    deg = 1e-4
    dy, dx = cell_size_m("EPSG:4326", (deg, 0, 5.44 - 50 * deg, 0, -deg, LAT0 + 50 * deg), (100, 100))
    k_e, k_n = metres_per_degree(LAT0)
    assert dx == pytest.approx(k_e * deg, rel=1e-6)
    assert dy == pytest.approx(k_n * deg, rel=1e-6)


def test_cell_size_of_projected_grids_uses_the_crs_unit():
    from offnadir.io.dsm import cell_size_m

    assert cell_size_m("EPSG:32631", (0.5, 0, 5e5, 0, -2.0, 4.8e6), (10, 10)) == (2.0, 0.5)
    dy, dx = cell_size_m("EPSG:2263", (1.0, 0, 0, 0, -1.0, 0), (10, 10))  # US survey feet
    assert dx == pytest.approx(1200 / 3937, rel=1e-9) and dy == dx


def test_change_cell_size_accepts_square_geographic_cells_and_refuses_the_rest():
    from offnadir.io.dsm import change_cell_size

    k_e, k_n = metres_per_degree(LAT0)
    dlat = 0.5 / k_n
    dlon = 0.5 / k_e  # 0.5 m square cells in degrees at the scene's latitude
    size = change_cell_size("EPSG:4326", (dlon, 0, 5.44, 0, -dlat, LAT0 + 32 * dlat), (64, 64))
    assert size == pytest.approx(0.5, rel=1e-4)
    with pytest.raises(DataError, match="square cells"):
        change_cell_size("EPSG:4326", (dlat, 0, 5.44, 0, -dlat, LAT0), (64, 64))
    with pytest.raises(DataError, match="shrink"):  # square at the centre, 5 degrees of latitude tall
        n = int(5 / dlat)
        change_cell_size("EPSG:4326", (dlon, 0, 5.44, 0, -dlat, LAT0 + n / 2 * dlat), (n, 64))
    with pytest.raises(DataError, match="rotated"):
        change_cell_size("EPSG:32631", (0.5, 0.1, 0, 0.1, -0.5, 0), (64, 64))
