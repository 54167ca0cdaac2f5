"""STAC in and out (issue 9 items 1 and 3): a small simulated scene described as a STAC
ItemCollection and as a static catalog; ``offnadir detect --stac`` against the same run with the
images on the command line; filters; bad input; the collection written beside the store, checked
with pystac's object model and validated against the STAC JSON schemas."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from offnadir.cli import main
from offnadir.store import _quiet_zarr

UTC = dt.timezone.utc
VIEW = "https://stac-extensions.github.io/view/v1.0.0/schema.json"
#: STAC dates on purpose other than the images' own acquisition tags (2021 / 2023): the store
#: must carry these, proving the date came from STAC
DATES = {"base": dt.datetime(2020, 3, 4, 10, 0, tzinfo=UTC), "target": dt.datetime(2022, 7, 8, 10, 0, tzinfo=UTC),
         "late": dt.datetime(2024, 1, 2, 10, 0, tzinfo=UTC)}


@pytest.fixture(scope="module")
def cluster():
    """One in-process dask cluster for the module: kernels compile once, no worker processes."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as c, Client(c):
        yield c.scheduler_address


def _without_rpc(src: Path, image: Path, rpb: Path) -> None:
    """A copy of ``src`` without RPC tags, its RPC as an .RPB file in another folder (so GDAL's
    own sidecar search does not find it: only the STAC asset names it)."""
    import rasterio

    with rasterio.open(src) as s:
        prof, data, rpcs = s.profile, s.read(), s.rpcs
    prof.update(driver="GTiff")
    image.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(image, "w", PROFILE="BASELINE", **prof) as d:  # BASELINE: RPC goes to <stem>.RPB
        d.write(data)
        d.rpcs = rpcs
    Path(str(image) + ".aux.xml").unlink(missing_ok=True)
    rpb.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(image.with_suffix(".RPB"), rpb)


def _item(iid, href, view, when, *, rpc=None, off_nadir=None, bands=("blue", "green", "red", "nir")):
    import pystac

    props = {"view:off_nadir": view["off_nadir_deg_at_centre"] if off_nadir is None else off_nadir,
             "view:azimuth": view["azimuth_deg_at_centre"], "view:sun_azimuth": view["sun_azimuth_deg"],
             "view:sun_elevation": view["sun_elevation_deg"], "platform": "simulated"}
    it = pystac.Item(id=iid, geometry={"type": "Point", "coordinates": [5.44, 43.26]}, bbox=[5.44, 43.26, 5.44, 43.26],
                     datetime=when, properties=props, stac_extensions=[VIEW])
    it.add_asset("thumbnail", pystac.Asset(href="thumb.png", media_type=pystac.MediaType.PNG, roles=["thumbnail"]))
    a = pystac.Asset(href=href, media_type=pystac.MediaType.COG, roles=["data"])
    a.extra_fields["eo:bands"] = [{"name": b} for b in bands]
    it.add_asset("image", a)
    if rpc:
        it.add_asset("rpc", pystac.Asset(href=rpc, media_type="text/plain", roles=["metadata"]))
    return it


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Simulated base/target + an ItemCollection (items/items.json; hrefs relative to it) and a
    static catalog of the same items (catalog/catalog.json)."""
    import pystac

    from offnadir.simulate import simulate

    d = tmp_path_factory.mktemp("stac")
    sim = simulate(d / "sim", seed=4, size=64, base_view=(5.0, 270.0), target_view=(25.0, 90.0), supersample=1)
    views = json.loads(sim.paths["scene_json"].read_text())["views"]
    _without_rpc(sim.paths["target"], d / "data" / "target_norpc.tif", d / "data" / "rpc" / "target.RPB")
    (d / "items").mkdir()
    items = [_item("target", "../data/target_norpc.tif", views["target"], DATES["target"], rpc="../data/rpc/target.RPB"),
             _item("base", str(sim.paths["base"]), views["base"], DATES["base"]),
             _item("late", "../sim/target.tif", views["target"], DATES["late"], off_nadir=31.0)]
    ic = pystac.ItemCollection([it.clone() for it in items])
    ic.save_object(dest_href=str(d / "items" / "items.json"))
    cat = pystac.Catalog(id="sim", description="simulated scene")
    for it in items:
        it = it.clone()
        for a in it.assets.values():  # hrefs of the catalog's copy: absolute (they move with the item files)
            if not Path(a.href).is_absolute():
                a.href = str((d / "items" / a.href).resolve())
        cat.add_item(it)
    cat.normalize_hrefs(str(d / "catalog"))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return {"dir": d, "sim": sim, "views": views, "items": d / "items" / "items.json",
            "catalog": d / "catalog" / "catalog.json"}


def _open(path):
    with _quiet_zarr():
        return xr.open_zarr(str(path)).load()


# ---------------------------------------------------------------------------------- STAC in
def test_items_give_images_dates_suns_and_sidecar_rpcs(scene):
    from offnadir.io.stac import select

    ims = select(scene["items"])
    assert [im.item_id for im in ims] == ["base", "target", "late"]  # the earliest is the base, then by date
    base, target, late = ims
    assert Path(base.path) == scene["sim"].paths["base"] and base.model is None  # RPC in the image tags
    assert Path(target.path) == scene["dir"] / "data" / "target_norpc.tif"  # relative to the item file
    assert Path(target.model) == scene["dir"] / "data" / "rpc" / "target.RPB"  # the metadata asset
    assert Path(late.path) == scene["sim"].paths["target"]
    v = scene["views"]["target"]
    assert target.sun == pytest.approx((v["sun_azimuth_deg"], v["sun_elevation_deg"]))
    assert target.date == "2022-07-08" and target.bands == ["blue", "green", "red", "nir"]
    e = target.entry()
    assert e["stac_item"] == "target" and e["name"] == "target" and e["date"] == "2022-07-08"
    # the static catalog (walked with pystac) gives the same images
    for src in (scene["catalog"], scene["catalog"].parent):  # the catalog file, or its folder
        cat = select(src)
        assert [(im.item_id, im.path, im.model, im.date, im.sun) for im in cat] == \
               [(im.item_id, im.path, im.model, im.date, im.sun) for im in ims]
    # a JSON list of item files, as several --stac files would give
    listed = scene["dir"] / "catalog" / "list.json"
    listed.write_text(json.dumps(sorted(str(q.relative_to(listed.parent)) for q in listed.parent.glob("*/*.json"))))
    assert [im.item_id for im in select(listed)] == ["base", "target", "late"]


@pytest.mark.parametrize("kw, ids", [
    ({"start": "2021-01-01"}, ["target", "late"]),
    ({"end": "2022-07-08"}, ["base", "target"]),  # the end date is inclusive
    ({"start": "2020-03-04", "end": "2020-03-04"}, ["base"]),
    ({"max_off_nadir": 26.0}, ["base", "target"]),  # late says 31 degrees
    ({"max_off_nadir": 4.0}, None),
    ({"base_item": "late"}, ["late", "base", "target"]),
    ({"base_item": "target", "end": "2023-01-01"}, ["target", "base"]),
])
def test_filters_select_the_right_items(scene, kw, ids):
    from offnadir.io.stac import StacError, select

    if ids is None:
        with pytest.raises(StacError, match="none of its 3 items passes the filters"):
            select(scene["items"], **kw)
        return
    assert [im.item_id for im in select(scene["items"], **kw)] == ids


def test_items_off_the_dsm_are_dropped(scene, tmp_path):
    from offnadir.io.stac import select

    d = json.loads(scene["items"].read_text())
    d["features"][2]["bbox"] = [10.0, 50.0, 10.1, 50.1]  # "late", far from the DSM
    p = scene["items"].parent / "items_far.json"
    p.write_text(json.dumps(d))
    assert [im.item_id for im in select(p, dsm=scene["sim"].paths["dsm"])] == ["base", "target"]


def test_config_stac_section(scene, tmp_path):
    from offnadir.config import load

    cfg_path = tmp_path / "job.yaml"
    cfg_path.write_text(f"dsm: {{path: {scene['sim'].paths['dsm']}}}\n"
                        f"stac: {{path: {scene['items']}, end: 2023-01-01, base_item: target}}\n"
                        f"output: {{path: {tmp_path / 'o.zarr'}}}\n")
    cfg = load(cfg_path)
    assert [e["name"] for e in cfg["images"]] == ["target", "base"]
    assert cfg["images"][0]["model"].endswith("target.RPB") and cfg["images"][1]["stac_item"] == "base"
    from offnadir.config import validate

    assert validate(cfg)["images"] == cfg["images"]  # a validated config validates to itself


#: a static-file HTTP server that honours Range (what GDAL's /vsicurl/ sends; python's own handler
#: sends whole files). It runs in its own process: rasterio holds the GIL while GDAL waits for the
#: answer, so a server thread in the test's process would never answer.
RANGE_SERVER = r"""
import http.server, io, re, sys
from pathlib import Path
root = Path(sys.argv[1])
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def send_head(self):
        path = root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        m = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range") or "")
        lo, hi = 0, len(data) - 1
        if m and (m[1] or m[2]):
            lo, hi = (int(m[1]), min(int(m[2] or hi), hi)) if m[1] else (max(0, len(data) - int(m[2])), hi)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(hi - lo + 1))
        self.end_headers()
        return io.BytesIO(data[lo:hi + 1])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


def test_items_with_http_assets(scene):
    """Image and RPC assets named by URL (a local HTTP server): the image is opened by range
    requests, the RPC sidecar fetched whole (offnadir.io.remote); the camera is the local one."""
    import subprocess
    import sys

    import pystac

    from offnadir.io.image import open_image_source
    from offnadir.io.stac import select

    srv = subprocess.Popen([sys.executable, "-c", RANGE_SERVER, str(scene["dir"])], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(srv.stdout.readline())}"
        v = scene["views"]
        items = [_item("web_base", f"{url}/sim/base.tif", v["base"], DATES["base"]),
                 _item("web_target", f"{url}/data/target_norpc.tif", v["target"], DATES["target"],
                       rpc=f"{url}/data/rpc/target.RPB")]
        p = scene["dir"] / "items" / "web.json"
        pystac.ItemCollection(items).save_object(dest_href=str(p))
        base, target = select(p)
        assert (base.path, base.model) == (f"{url}/sim/base.tif", None)
        assert (target.path, target.model) == (f"{url}/data/target_norpc.tif", f"{url}/data/rpc/target.RPB")
        local = open_image_source(scene["dir"] / "data" / "target_norpc.tif",
                                  model=scene["dir"] / "data" / "rpc" / "target.RPB")
        remote = open_image_source(target.path, model=target.model)
        assert remote.shape == local.shape
        # one array of the (row, col) pair: pytest >= 9.2 refuses approx over a tuple of 0-d arrays
        assert np.asarray(remote.camera.project(5.44, 43.26, 150.0)) == pytest.approx(
            np.asarray(local.camera.project(5.44, 43.26, 150.0)))
    finally:
        srv.kill()
        srv.wait()


# ---------------------------------------------------------------------------------- bad input
def _bad(tmp_path, obj) -> Path:
    p = tmp_path / "bad.json"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def _one_item(scene, **change):
    d = json.loads(scene["items"].read_text())["features"][1]  # "base" (absolute href)
    d = json.loads(json.dumps(d))
    for k, v in change.items():
        d[k] = v
    return {"type": "FeatureCollection", "features": [d]}


@pytest.mark.parametrize("case, expect", [
    ("missing", "STAC file not found"),
    ("json", "not valid JSON"),
    ("no_image", "item base: no image asset"),
    ("no_rpc", "item base: no RPC camera model"),
    ("image_gone", "item base: image asset image ->"),
    ("filters", "none of its 3 items passes the filters"),
    ("base_item", "stac.base_item 'nope' is not among the selected items"),
    ("with_base", "--stac gives the images"),
])
def test_bad_stac_input_is_one_line_exit_2(scene, tmp_path, capsys, case, expect):
    sim = scene["sim"]
    extra = []
    src = scene["items"]
    if case == "missing":
        src = tmp_path / "nope.json"
    elif case == "json":
        src = _bad(tmp_path, '{"type": "FeatureCollection", "features": [')
    elif case == "no_image":
        src = _bad(tmp_path, _one_item(scene, assets={"meta": {"href": "x.xml", "roles": ["metadata"]}}))
    elif case == "no_rpc":
        src = _bad(tmp_path, _one_item(scene, assets={"image": {"href": str(scene["dir"] / "data" / "target_norpc.tif"),
                                                                "type": "image/tiff", "roles": ["data"]}}))
    elif case == "image_gone":
        src = _bad(tmp_path, _one_item(scene, assets={"image": {"href": "gone.tif", "roles": ["data"],
                                                                "type": "image/tiff"}}))
    elif case == "filters":
        extra = ["--max-off-nadir", "1"]
    elif case == "base_item":
        extra = ["--base-item", "nope"]
    elif case == "with_base":
        extra = ["--base", str(sim.paths["base"])]
    out = tmp_path / "out.zarr"
    rc = main(["detect", "--dsm", str(sim.paths["dsm"]), "--stac", str(src), "-o", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("offnadir: error:") and expect in lines[0], err
    assert "Traceback" not in err and not out.exists()


# ---------------------------------------------------------------------------------- detect --stac
@pytest.fixture(scope="module")
def runs(scene, cluster, tmp_path_factory):
    """The same detection from STAC and from the command line (same images, RPC files, dates, suns)."""
    sim, d = scene["sim"], tmp_path_factory.mktemp("runs")
    common = ["--dsm", str(sim.paths["dsm"]), "--chunk", "64", "--scheduler", cluster, "--quiet"]
    a = d / "stac.zarr"
    assert main(["detect", "--stac", str(scene["items"]), "--stac-end", "2023-12-31", "-o", str(a), *common]) == 0
    vb, vt = scene["views"]["base"], scene["views"]["target"]
    b = d / "cli.zarr"
    assert main(["detect", "--base", str(sim.paths["base"]), "--target", str(scene["dir"] / "data" / "target_norpc.tif"),
                 "--model", "none", "--model", str(scene["dir"] / "data" / "rpc" / "target.RPB"),
                 "--date", "2020-03-04", "--date", "2022-07-08",
                 "--sun", f"{vb['sun_azimuth_deg']!r},{vb['sun_elevation_deg']!r}",
                 "--sun", f"{vt['sun_azimuth_deg']!r},{vt['sun_elevation_deg']!r}", "-o", str(b), "--no-stac-out",
                 *common]) == 0
    c = d / "cube.zarr"  # coregister takes --stac too; --base-item picks the base
    assert main(["coregister", "--stac", str(scene["items"]), "--stac-end", "2023-12-31", "--base-item", "target",
                 "-o", str(c), *common]) == 0
    return a, b, c


def test_detect_from_stac_equals_the_command_line_run(runs, scene):
    a, b = (_open(p) for p in runs[:2])
    assert list(a["image"].values) == ["base", "target"]  # item ids name the images
    compared = [v for v in ("change", "probability", "score", "dh", "row", "col", "visible", "value", "patch")
                if v in b]
    assert {"change", "probability", "row", "visible"} <= set(compared)
    for v in compared:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
    # the dates and suns came from STAC (the images' own tags say 2021-06-01 and 2023-09-12)
    assert [str(t)[:10] for t in a["time"].values] == ["2020-03-04", "2022-07-08"]
    assert all("STAC view:sun_azimuth/view:sun_elevation of item" in str(s) for s in a["sun_source"].values)
    vt = scene["views"]["target"]
    assert float(a["sun_azimuth"].values[1]) == pytest.approx(vt["sun_azimuth_deg"])
    cfg = json.loads(a.attrs["config"])
    assert cfg["stac"]["path"] == str(scene["items"]) and [e["stac_item"] for e in cfg["images"]] == ["base", "target"]
    assert cfg["images"][1]["bands"] == ["blue", "green", "red", "nir"]


def test_coregister_from_stac_with_a_base_item(runs):
    c = _open(runs[2])
    assert list(c["image"].values) == ["target", "base"]
    assert [str(t)[:10] for t in c["time"].values] == ["2022-07-08", "2020-03-04"]
    assert "change" not in c and not runs[2].with_name(runs[2].name + ".stac").exists()  # a cube: no change map


# ---------------------------------------------------------------------------------- STAC out
def test_stac_out_beside_the_store(runs, scene):
    import pystac
    from pystac.extensions.datacube import DatacubeExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.view import ViewExtension

    store = runs[0]
    col = pystac.read_file(str(store.with_name(store.name + ".stac") / "collection.json"))
    assert isinstance(col, pystac.Collection)
    items = list(col.get_items())
    assert [it.id for it in items] == ["stac-target"]
    it = items[0]
    assert it.datetime.date() == dt.date(2022, 7, 8)
    assert it.common_metadata.start_datetime.date() == dt.date(2020, 3, 4)
    ds = _open(store)
    proj = ProjectionExtension.ext(it)
    assert proj.code == ds.attrs["proj:code"] and proj.shape == [64, 64]
    assert proj.transform[:6] == pytest.approx(ds.attrs["spatial:transform"])
    cube = DatacubeExtension.ext(it)
    assert set(cube.dimensions) == {"x", "y", "time"} and "change" in cube.variables
    assert {"change", "probability"} <= set(cube.variables)
    assert cube.dimensions["x"].extent == pytest.approx([float(ds.x.min()), float(ds.x.max())])
    view = ViewExtension.ext(it)
    assert view.sun_azimuth == pytest.approx(scene["views"]["target"]["sun_azimuth_deg"])
    assert view.off_nadir == pytest.approx(float(ds["off_nadir"].values[1]))
    zarr = it.assets["zarr"]
    assert zarr.media_type == "application/vnd+zarr" and "data" in zarr.roles
    assert Path(zarr.get_absolute_href()).resolve() == store.resolve()
    # the footprint holds the grid's centre (the DSM is centred on 5.44 E, 43.26 N)
    w, s, e, n = it.bbox
    assert w < 5.44 < e and s < 43.26 < n and (e - w) < 0.001


def test_cog_export_adds_assets(runs, capsys):
    import pystac

    store = runs[0]
    assert main(["export", str(store), "--to", "cog", "--variable", "change", "-q"]) == 0, capsys.readouterr().err
    it = next(pystac.read_file(str(store.with_name(store.name + ".stac") / "collection.json")).get_items())
    cog = it.assets["change_cog"]
    assert cog.media_type == pystac.MediaType.COG and Path(cog.get_absolute_href()).is_file()


def _schema_cache(tmp_path_factory) -> Path:
    """Where the downloaded sdists are kept between runs (like pip's own cache): $OFFNADIR_SCHEMA_CACHE,
    else ~/.cache/offnadir/stac-schemas, else a temporary folder."""
    import os

    d = Path(os.environ.get("OFFNADIR_SCHEMA_CACHE") or Path.home() / ".cache" / "offnadir" / "stac-schemas")
    try:
        d.mkdir(parents=True, exist_ok=True)
        return d
    except OSError:
        return tmp_path_factory.mktemp("stac_schemas")


def _extension_schemas(cache_dir: Path) -> dict:
    """The JSON schemas of the projection, datacube and view extensions as recorded (VCR
    cassettes) in the source distributions of the pystac-ext-* packages installed here, fetched
    from PyPI once with pip and kept in ``cache_dir``."""
    import importlib.metadata
    import subprocess
    import sys

    from offnadir.stac_out import schemas_from_dir

    wanted = {}
    for pkg in ("pystac-ext-projection", "pystac-ext-datacube", "pystac-ext-view"):
        try:
            wanted[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{pkg} is not installed (pystac < 1.14 bundles its extensions): no recorded schemas")

    def sdist(pkg):
        return next(iter(cache_dir.glob(f"{pkg.replace('-', '_')}-{wanted[pkg]}.tar.gz")), None)

    missing = [f"{p}=={v}" for p, v in wanted.items() if sdist(p) is None]
    if missing:  # one pip call for all (pip's start-up is most of the time)
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                            "-d", str(cache_dir), *missing], capture_output=True, text=True, timeout=300)
        if r.returncode or any(sdist(p) is None for p in wanted):
            last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
            pytest.skip(f"the STAC extension schemas cannot be had offline: pip download {' '.join(missing)} "
                        f"failed ({last})")
    return schemas_from_dir(cache_dir)


def test_stac_out_validates_against_the_schemas(runs, tmp_path_factory):
    import pystac
    import pystac.validation
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    from offnadir.errors import OffnadirError
    from offnadir.stac_out import validate_catalog

    schemas = _extension_schemas(_schema_cache(tmp_path_factory))
    col_path = runs[0].with_name(runs[0].name + ".stac") / "collection.json"
    assert validate_catalog(col_path, schemas=schemas) == 2  # the collection and its item
    validator = JsonSchemaSTACValidator()
    validator.schema_cache.update(schemas)
    pystac.validation.set_validator(validator)
    try:
        col = pystac.read_file(str(col_path))
        for it in col.get_items():
            assert it.validate()  # the schema URIs it was checked against: core + 3 extensions
            it.properties["view:sun_elevation"] = 123.0  # the schemas can fail
            with pytest.raises(pystac.STACValidationError):
                it.validate()
    finally:
        pystac.validation.set_validator(JsonSchemaSTACValidator())
    # the same through offnadir's function, on a broken copy
    broken = col_path.parent.parent / "broken.stac"
    shutil.copytree(col_path.parent, broken)
    ip = next(broken.glob("*/*.json"))
    d = json.loads(ip.read_text())
    d["properties"]["proj:shape"] = [64]
    ip.write_text(json.dumps(d))
    with pytest.raises(OffnadirError, match="STAC validation failed"):
        validate_catalog(broken / "collection.json", schemas=schemas)
    # the command line: offnadir stac STORE --validate --schemas DIR
    assert main(["stac", str(runs[0]), "--validate", "--schemas", str(_schema_cache(tmp_path_factory)), "-q"]) == 0


def test_run_from_a_config_with_a_stac_section_writes_stac_out(scene, cluster, tmp_path):
    import pystac

    out = tmp_path / "run.zarr"
    job = tmp_path / "job.yaml"
    job.write_text(f"dsm: {{path: {scene['sim'].paths['dsm']}}}\n"
                   f"stac: {{path: {scene['catalog']}, max_off_nadir: 26}}\n"
                   f"output: {{path: {out}}}\ntiling: {{chunk: 64}}\n")
    assert main(["run", str(job), "--scheduler", cluster, "--quiet"]) == 0
    col = pystac.read_file(str(tmp_path / "run.zarr.stac" / "collection.json"))
    assert [it.properties["offnadir:image"] for it in col.get_items()] == ["target"]


def test_stac_command_writes_what_no_stac_out_skipped(runs, capsys):
    b = runs[1]
    folder = b.with_name(b.name + ".stac")
    assert not folder.exists()  # detect --no-stac-out
    assert main(["stac", str(b), "-q"]) == 0, capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] and (folder / "collection.json").is_file()
    assert not [p for p in b.parent.iterdir() if p.name.startswith("_offnadir_stac_")]  # no temporary folder left
