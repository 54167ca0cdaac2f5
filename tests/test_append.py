"""``offnadir append``: a date appended to a detect store gives the maps of one run over all dates,
bit for bit, without touching the earlier dates' chunks; it computes only the new image's tiles,
resumes after a failure, and refuses stores it cannot extend. The per-cell history is checked on
a case small enough to verify by hand."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from offnadir.change.history import DAY_FILL, history_block
from offnadir.cli import main

CHUNK = 48


def _cfg(dsm, images, out):
    from offnadir.config import validate

    cfg = validate({"dsm": {"path": str(dsm)}, "images": [str(p) for p in images], "output": {"path": str(out)},
                    "tiling": {"chunk": CHUNK}}, base=".", source="test")
    return cfg


def _open(p):
    return xr.open_zarr(str(p), consolidated=False, mask_and_scale=False)


def _hashes(p: Path) -> dict:
    """sha1 of every chunk file of the store (metadata files left out)."""
    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
    return {str(f.relative_to(p)): hashlib.sha1(f.read_bytes()).hexdigest()
            for f in p.rglob("*") if f.is_file() and f.name not in meta}


def _assert_same(got, want):
    for v in sorted(set(want.variables) | set(got.variables)):
        assert v in got and v in want, f"{v} only in {'got' if v in got else 'want'}"
        a, b = got[v].values, want[v].values
        assert a.shape == b.shape, v
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=v)
        else:
            assert np.array_equal(a, b), v


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Three dates (four images), one-shot detect over all of them, and a two-date detect store."""
    from distributed import Client

    from offnadir.pipeline import detect_config
    from offnadir.simulate.series import DEFAULT_SERIES, simulate_series

    tmp = tmp_path_factory.mktemp("series")
    # three dates, the third a stereo pair (two images of one day): appended together, they are tied
    # to each other and swept for heights as a group, as in detect
    views = list(DEFAULT_SERIES[:3]) + [(20.0, 30.0, DEFAULT_SERIES[2][2][:11] + "10:16:00Z")]
    s = simulate_series(tmp / "data", seed=5, size=96, views=views)
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        one = detect_config(_cfg(s.dsm, s.images, tmp / "one.zarr"), quiet=True, client=client)
        two = detect_config(_cfg(s.dsm, s.images[:2], tmp / "two.zarr"), quiet=True, client=client)
    return tmp, s, one, two


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_append_equals_one_shot_and_leaves_earlier_chunks_alone(series):
    from offnadir.append import append_images

    tmp, s, one, two = series
    store = _copy(two, tmp / "app.zarr")
    before = _hashes(store)
    summary = append_images(store, [{"path": str(p)} for p in s.images[2:]])
    after = _hashes(store)
    derived = ("first_change", "last_change", "n_changes", "last_observed")  # recomputed from all dates
    changed = [k for k in before if before[k] != after.get(k) and not k.startswith(derived)]
    assert changed == []
    assert any(k.startswith("row/") for k in after if k not in before)  # the new image's chunks
    n_tiles = 4  # 96 cells / 48 per tile, squared
    assert summary["cube_tiles"] == n_tiles and summary["change_tiles"] == 2 * n_tiles
    assert summary["sweep_tiles"] == n_tiles
    got = _open(store)
    assert np.isfinite(got["dh"].values[2:]).any() and np.isnan(got["dh"].values[:2]).all()  # the pair's sweep
    _assert_same(got, _open(one))
    # STAC out (as `offnadir append` writes it beside the store): one item per target, new dates included
    from offnadir.stac_out import write_stac

    col = json.loads(write_stac(store).read_text())
    items = [json.loads((store.with_name(store.name + ".stac") / ln["href"]).read_text())
             for ln in col["links"] if ln["rel"] == "item"]
    assert sorted(i["properties"]["datetime"][:10] for i in items) == sorted(s.dates[1:])
    rec = json.loads(_open(store).attrs["offnadir:appends"])
    assert rec[-1]["n_before"] == 2 and rec[-1]["cube_tiles"] == n_tiles
    assert _open(store).attrs["offnadir:status"] == "complete"


def test_append_resumes_after_failures(series, monkeypatch):
    """A crash while the arrays are being resized (some longer than others), then a crash among
    the cube tiles: each resume finishes the recorded append, computing only what is missing."""
    import dask
    import zarr

    from offnadir import append_layout
    from offnadir.append import append_images

    tmp, s, one, two = series
    store = _copy(two, tmp / "resume.zarr")
    new = [{"path": str(p)} for p in s.images[2:]]

    def crash_layout(path, *a, **k):
        row = zarr.open_group(str(path), mode="r+", use_consolidated=False)["row"]
        row.resize((3,) + row.shape[1:])
        raise OSError("simulated crash while laying out")

    monkeypatch.setattr(append_layout, "layout", crash_layout)
    with pytest.raises(OSError):
        append_images(store, new)
    monkeypatch.undo()
    real, calls = append_layout.cube_tile, []

    def flaky(path, plan, tile, first):  # the third tile task crashes (tasks run one by one here)
        calls.append(tile)
        if len(calls) == 3:
            raise OSError("simulated crash")
        return real(path, plan, tile, first)

    monkeypatch.setattr(append_layout, "cube_tile", flaky)
    with dask.config.set(scheduler="synchronous"), pytest.raises(OSError):
        append_images(store, [], resume=True)  # the layout is undone and done again, then tiles crash
    monkeypatch.undo()
    assert _open(store).attrs["offnadir:status"] == "incomplete"
    g = zarr.open_group(str(store), mode="r", use_consolidated=False)
    left = int(np.count_nonzero(np.asarray(g[append_layout.PROGRESS][...]) & 8 == 0))
    assert left == 2  # the two tiles written before the crash are kept
    assert main(["append", str(store), "--image", str(s.images[2]), "--image", str(s.images[3]),
                 "--quiet"]) == 2  # says: use --resume
    summary = append_images(store, [], resume=True)
    assert summary["cube_tiles"] == left  # only the tiles not written before
    _assert_same(_open(store), _open(one))


def test_against_previous_date(series):
    """--against-previous: the new date is also compared with the previous one; cells changed at
    the previous date are change against the base but mostly not against the previous date."""
    from offnadir.append import append_images

    tmp, s, one, two = series
    store = _copy(two, tmp / "prev.zarr")
    summary = append_images(store, [{"path": str(p)} for p in s.images[2:]], against_previous=True)
    assert summary["previous_tiles"] == 8
    ds = _open(store)
    prev, base = ds["change_prev"].values, ds["change"].values
    assert (prev[:2] == 2).all()  # only the new image has maps against its previous date
    at1 = (s.change_date == 1) & (prev[2] != 2) & (base[2] != 2)
    assert at1.sum() > 50
    assert (base[2][at1] == 1).mean() > (prev[2][at1] == 1).mean() + 0.2
    rec = json.loads(ds.attrs["change_prev"])
    assert rec["2"]["against"] == rec["3"]["against"] == str(ds["image"].values[1])  # a mate is no earlier date
    for v in ("change", "probability", "first_change"):  # the maps against the base are those of a one-shot run
        np.testing.assert_array_equal(ds[v].values, _open(one)[v].values)


def test_append_refuses_what_it_cannot_extend(series, tmp_path, capsys):
    from offnadir import store as S

    tmp, s, one, two = series
    img = str(s.images[2])
    # not a store of detect: a folder, then a store without change maps
    assert main(["append", str(s.out_dir), "--image", img]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a store written by `offnadir detect`" in err[0]
    # an unfinished detect store
    bad = _copy(two, tmp_path / "unfinished.zarr")
    import zarr

    zarr.open_group(str(bad), mode="r+", use_consolidated=False).attrs[S.STATUS_ATTR] = S.INCOMPLETE
    assert main(["append", str(bad), "--image", img]) == 2
    assert "incomplete" in capsys.readouterr().err
    # another DSM given, and the store's DSM replaced
    other = tmp_path / "other_dsm.tif"
    shutil.copy(s.dsm, other)
    assert main(["append", str(two), "--image", img, "--dsm", str(other)]) == 2
    assert "was made with the DSM" in capsys.readouterr().err
    data = _copy(s.out_dir, tmp_path / "data")
    moved = _copy(two, tmp_path / "moved.zarr")
    g = zarr.open_group(str(moved), mode="r+", use_consolidated=False)
    cfg = json.loads(g.attrs["config"])
    cfg["dsm"]["path"] = str(data / "dsm.tif")
    g.attrs["config"] = json.dumps(cfg)
    assert main(["append", str(moved), "--image", str(data / "image_2.tif")]) == 2
    assert "DSM" in capsys.readouterr().err
    # a new image on the date of an image of the store (it would join that date's group)
    assert main(["append", str(two), "--image", img, "--date", s.dates[1]]) == 2
    assert "is the date of" in capsys.readouterr().err
    # an image already in the store
    st = os.stat(s.images[1])
    assert st.st_size > 0
    assert main(["append", str(two), "--image", str(s.images[1]), "--workers", "1", "--quiet"]) == 2
    assert "in the store already" in capsys.readouterr().err
    assert _open(two).sizes["image"] == 2  # nothing written


def test_stac_items_not_in_the_store_are_appended_in_date_order(series):
    """``offnadir append --stac items.json``: the series' STAC items (written with pystac) minus the
    images the store holds, as config entries with their dates and suns."""
    from offnadir.cli import build_parser
    from offnadir.cli.append import _entries

    tmp, s, one, two = series
    args = build_parser().parse_args(["append", str(two), "--stac", str(s.items)])
    got = _entries(args)
    assert [Path(e["path"]).name for e in got] == ["image_2.tif", "image_3.tif"]
    assert got[0]["date"] == s.dates[2]
    assert abs(got[0]["sun_elevation"] - s.suns[2][1]) < 1e-9
    args = build_parser().parse_args(["append", str(two), "--stac", str(s.items), "--start", "2099-01-01"])
    with pytest.raises(Exception, match="none of its"):
        _entries(args)


def test_history_by_hand():
    # one row of cells, base + 4 dates given out of order; change codes 0 no, 1 yes, 2 unobservable
    days = np.array([100, 400, 200, 300, 500])  # base, then targets at days 400, 200, 300, 500
    change = np.array([
        # cell:  a  b  c  d  e
        [0, 0, 0, 2, 0],  # base (2: not seen in the base)
        [1, 0, 2, 1, 2],  # day 400
        [0, 0, 2, 2, 2],  # day 200
        [1, 1, 1, 2, 2],  # day 300
        [1, 0, 0, 1, 2],  # day 500
    ], np.uint8)[:, None, :]
    h = {k: v[0] for k, v in history_block(change, days).items()}
    # a: 0,0(200),1(300),1(400),1(500): one change at 300
    # b: 0,0,1(300),0(400),0: changed at 300 and back at 400
    # c: 0,-(200),1(300),-(400),0(500): 300 and 500
    # d: unseen in the base, 1 at 400 (differs from the base: a change), 1 at 500
    # e: seen in the base only
    assert h["n_changes"].tolist() == [1, 2, 2, 1, 0]
    assert h["first_change"].tolist() == [300, 300, 300, 400, DAY_FILL]
    assert h["last_change"].tolist() == [300, 400, 500, 400, DAY_FILL]
    assert h["last_observed"].tolist() == [500, 500, 500, 500, 100]


def test_history_of_one_shot_detect_matches_its_change_maps(series):
    from offnadir.change.history import decode_days

    tmp, s, one, two = series
    ds = _open(one)
    assert {"first_change", "last_change", "n_changes", "last_observed"} <= set(ds.data_vars)
    ch = ds["change"].values
    first = decode_days(ds["first_change"].values)
    # with dates in image order, the first change is the first target that says "changed"
    t = ds["time"].values.astype("datetime64[D]")
    want = np.full(first.shape, np.datetime64("NaT"), "datetime64[D]")
    for k in range(ch.shape[0] - 1, 0, -1):
        want = np.where(ch[k] == 1, t[k], want)
    # cells unseen by an earlier target and changed later keep that later date; where an earlier
    # target said 0 after a 1, the first change is still the first 1
    assert np.array_equal(first.view("int64"), want.view("int64"))  # NaT included
    assert np.isfinite(first.view("int64")).all() and (~np.isnat(first)).sum() > 0
    assert ds["n_changes"].dtype == np.uint16


def test_append_equals_one_shot_with_widened_shadows(tmp_path):
    """With ``change.shadow_margin`` on, an appended image's predicted shadows are widened as a
    one-shot run widens them (the append path traces its own illumination tiles)."""
    from distributed import Client

    from offnadir.append import append_images
    from offnadir.config import validate
    from offnadir.pipeline import detect_config
    from offnadir.simulate.series import DEFAULT_SERIES, simulate_series

    s = simulate_series(tmp_path / "data", seed=6, size=96, views=list(DEFAULT_SERIES[:3]))

    def cfg(images, out):
        return validate({"dsm": {"path": str(s.dsm)}, "images": [str(p) for p in images],
                         "output": {"path": str(out)}, "tiling": {"chunk": CHUNK},
                         "change": {"shadow_margin": True}}, base=".", source="test")

    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        one = detect_config(cfg(s.images, tmp_path / "one.zarr"), quiet=True, client=client)
        two = detect_config(cfg(s.images[:2], tmp_path / "two.zarr"), quiet=True, client=client)
    sun = json.loads(_open(one).attrs["change_sun"])
    assert all(rec.get("shadow_relative_error", 0) > 0 for rec in sun)  # the widening was on
    append_images(two, [{"path": str(s.images[2])}])
    _assert_same(_open(two), _open(one))
