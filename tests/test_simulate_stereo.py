"""The simulator's same-date pair at the second date (``new_views=2``): a second epoch-2 image from
another view of the same pass, everything else as the one-image scene of the seed."""

from __future__ import annotations

import hashlib
import json
import math
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from offnadir.errors import ConfigError, OutputExistsError
from offnadir.simulate import simulate
from offnadir.simulate.presets import STEREO_FILES, base_to_height, stereo_partner

SIZE = 64


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("stereo")
    mono = simulate(root / "mono", seed=2, size=SIZE, preset="hard")
    st = simulate(root / "stereo", seed=2, size=SIZE, preset="hard", new_views=2)
    return mono, st


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return ds.read(1), ds.tags(), ds.rpcs


def test_the_pair_adds_files_and_changes_no_other(pair):
    mono, st = pair
    for key, path in mono.paths.items():
        if key != "scene_json":
            assert _sha(path) == _sha(st.paths[key]), key
    assert set(st.paths) - set(mono.paths) == set(STEREO_FILES)
    for key in STEREO_FILES:
        assert st.paths[key].exists()
    # scene.json: the same document plus the pair's view and its summary
    a, b = (json.loads(s.paths["scene_json"].read_text()) for s in (mono, st))
    assert set(b["views"]) == {"base", "target", "target2"} and set(b) - set(a) == {"stereo"}
    b["views"].pop("target2"), b.pop("stereo")
    assert b["views"] == a["views"] and b["truth"] == a["truth"] and b["buildings"] == a["buildings"]


def test_the_second_image_is_the_same_date_and_sun_from_another_view(pair):
    _, st = pair
    v = st.meta["views"]
    assert v["target2"]["acquired"] == v["target"]["acquired"]
    assert (v["target2"]["sun_azimuth_deg"], v["target2"]["sun_elevation_deg"]) == \
        (v["target"]["sun_azimuth_deg"], v["target"]["sun_elevation_deg"])
    assert v["target2"]["radiometry"]["gain"] == v["target"]["radiometry"]["gain"]
    img2, tags2, _ = _read(st.paths["target2"])
    img1, tags1, _ = _read(st.paths["target"])
    # the hard preset's files carry no time and no sun, the pair's second image neither
    assert not any(k.startswith("SUN_") for k in tags2) and "TIFFTAG_DATETIME" not in tags2
    assert img2.shape != img1.shape or not np.array_equal(img2, img1)
    assert img2.std() > 0


def test_the_pair_has_the_stated_base_to_height_by_gdal(pair):
    """B/H measured through GDAL's RPC transformer on the RPCs in the two files: the ground point
    seen by the centre pixel moves by (B/H) metres across the pair per metre of height."""
    from rasterio.transform import RPCTransformer

    _, st = pair
    moves = []
    for key in ("target", "target2"):
        _, _, rpcs = _read(st.paths[key])
        r, c = (s / 2 for s in st.meta["views"][key]["shape"])
        with RPCTransformer(rpcs) as tr:
            h0 = st.meta["center_h"]
            (x0, x1), (y0, y1) = tr.xy([r, r], [c, c], zs=[h0, h0 + 20.0], offset="center")
        lat = math.radians(y0)
        east = (x1 - x0) * math.radians(1) * 6378137.0 * math.cos(lat)
        north = (y1 - y0) * math.radians(1) * 6378137.0
        moves.append(np.array([east, north]) / 20.0)
    bh = float(np.hypot(*(moves[0] - moves[1])))
    assert st.meta["stereo"]["base_to_height"] == pytest.approx(0.3, abs=0.01)
    assert bh == pytest.approx(st.meta["stereo"]["base_to_height"], rel=0.01)


def test_stereo_partner_geometry():
    for view in ((25.0, 270.0), (10.0, 45.0), (0.0, 0.0)):
        for bh in (0.2, 0.3, 0.5):
            p = stereo_partner(view, bh)
            assert base_to_height(view, p) == pytest.approx(bh, abs=1e-4)
    # the nearer-nadir direction of the two along the orbit is taken
    p = stereo_partner((25.0, 270.0), 0.3)
    assert p[0] < 28.0


def test_occlusion_truth_of_the_second_view(pair):
    _, st = pair
    o1, tags, _ = _read(st.paths["truth_occluded"])
    o2, tags2, _ = _read(st.paths["truth_occluded_target2"])
    assert np.array_equal(o1 & 9, o2 & 9)  # the base's bits are the base's
    assert ((o2 & 2) > 0).sum() == st.meta["stereo"]["occluded_target2_cells"] > 0
    assert not np.array_equal(o1 & 22, o2 & 22)  # another view hides other cells
    assert "target2" in tags2["MEANING"]
    assert (((o2 & 2) > 0) <= ((o2 & 16) > 0)).all()  # partly visible rims: 2 is within 16


def test_bad_new_views_and_stale_files(tmp_path):
    with pytest.raises(ConfigError, match="new_views"):
        simulate(tmp_path / "x", seed=0, size=32, new_views=3)
    d = tmp_path / "d"
    simulate(d, seed=0, size=32, new_views=2)
    with pytest.raises(OutputExistsError, match="target2.tif"):
        simulate(d, seed=0, size=32)
    simulate(d, seed=0, size=32, overwrite=True)  # one image: the pair's own files go
    assert not any((d / f).exists() for f in STEREO_FILES.values())


def test_cli_writes_the_pair(tmp_path, capsys):
    from offnadir.cli import main

    assert main(["simulate", str(tmp_path / "s"), "--size", "32", "--new-views", "2", "--target2-view", "20,300"]) == 0
    out = capsys.readouterr().out
    assert "target2" in out and "B/H" in out
    meta = json.loads((tmp_path / "s" / "scene.json").read_text())
    assert meta["views"]["target2"]["requested_off_nadir_deg"] == 20.0
    assert meta["views"]["target2"]["requested_azimuth_deg"] == 300.0
