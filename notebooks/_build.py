"""Write the notebooks of this folder from the Python below: ``python notebooks/_build.py``.

The ``.ipynb`` files are generated (no outputs, fixed cell ids) so that a review reads this file
and a diff of the notebooks stays small; ``tests/test_notebooks.py`` checks that the committed
notebooks are what this script writes and executes each of them in a fresh kernel.

``python notebooks/_build.py --check`` exits 1 when a committed notebook differs from its source here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _nb(name: str, cells: list[tuple[str, str]]):
    """A notebook from ("md"|"py", source) pairs; cell ids are stable (name and position)."""
    out = []
    for i, (kind, src) in enumerate(cells):
        src = src.strip("\n")
        cell = new_markdown_cell(src) if kind == "md" else new_code_cell(src)
        cell["id"] = f"{name}-{i:02d}"
        out.append(cell)
    nb = new_notebook(cells=out, metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})
    nbformat.validate(nb)
    return nb


QUICKSTART = [
    ("md", """
# offnadir quick start

A small simulated city seen from two off-nadir views two years apart (known buildings, changes and
occlusions), change detection from Python, the result opened with xarray, and its accuracy against
the simulator's truth. The same run from a shell: `offnadir demo`.

Everything is written under `quickstart-out/` in the notebook's folder (about 6 MB); delete it when done.
"""),
    ("py", """
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import rioxarray
import xarray as xr

import offnadir
from offnadir.change.evaluate import format_report

OUT = Path("quickstart-out")
SIZE = 256  # DSM cells per side (0.5 m cells: 128 m); 256-1024 run in seconds to minutes
"""),
    ("md", """
## 1. A scene that knows its answer

`offnadir.simulate` ray-traces a box city into two pushbroom images (4 bands, RPC tags, acquisition
time and sun in the files) and writes the DSM of the first date together with the truth rasters.
"""),
    ("py", """
scene = offnadir.simulate(OUT / "scene", seed=0, size=SIZE, overwrite=True)
for view in ("base", "target"):
    v = scene.meta["views"][view]
    print(f"{view:6s} {v['acquired'][:10]}  off-nadir {v['off_nadir_deg_at_centre']:4.1f} deg, "
          f"azimuth {v['azimuth_deg_at_centre']:5.1f} deg")
print(sorted(p.name for p in (OUT / "scene").iterdir()))
"""),
    ("md", """
## 2. Detect change

`offnadir.run` takes the same configuration as `offnadir run CONFIG.yaml` (`offnadir template-config`
lists every field), as a dict here. It starts a local dask cluster sized to the CPUs this process may
use, writes the co-registered cube, then the change maps, into one Zarr store, and returns its path.
To use a dask cluster you already have, pass `client=` (see `existing_client.ipynb`).
"""),
    ("py", """
config = {
    "dsm": {"path": str(scene.paths["dsm"])},
    "images": [{"path": str(scene.paths["base"]), "name": "base"},
               {"path": str(scene.paths["target"]), "name": "target"}],
    "output": {"path": str(OUT / "result.zarr"), "overwrite": True},
    "tiling": {"chunk": 128},
    "change": {"enabled": True},
}
store = offnadir.run(config)
store
"""),
    ("md", """
## 3. Open the store with xarray

Every product is on the DSM grid (`y`, `x`, with its CRS for rioxarray), with one entry per image
along `image`. `change` is stored as 0 (no change), 1 (change) or 2 (not observable: hidden or outside
in either image), and 2 is its CF `_FillValue` (GDAL's nodata): xarray's default decoding reads it as
NaN, `mask_and_scale=False` keeps the codes. The automatic choices of the run are in the attributes.
"""),
    ("py", """
ds = xr.open_zarr(store, mask_and_scale=False)  # the stored codes
print(ds.rio.crs, dict(ds.sizes))
print(ds["change"].attrs["flag_meanings"])
change = ds["change"].sel(image="target").values
assert change.shape == (SIZE, SIZE) and set(np.unique(change)) <= {0, 1, 2}
masked = xr.open_zarr(store)["change"].sel(image="target").values  # CF decoding: NaN = not observable
assert np.array_equal(np.isnan(masked), change == 2)
print(ds.attrs["change_method"], ds.attrs["change_ndvi_thresholds"], ds.attrs["change_sun_deg"])
"""),
    ("py", """
truth = rioxarray.open_rasterio(scene.paths["truth_change"]).squeeze("band", drop=True)
rgb = ds["value"].sel(image="target").isel(band=[2, 1, 0]).transpose("y", "x", "band").values
rgb = np.clip(rgb / np.nanpercentile(rgb, 99), 0, 1)
colours = plt.matplotlib.colors.ListedColormap(["#d9d9d9", "#d7191c", "#2b2b2b"])
fig, ax = plt.subplots(1, 3, figsize=(13, 4.5), sharex=True, sharey=True)
ax[0].imshow(np.nan_to_num(rgb))
ax[0].set_title("target image on the DSM grid")
ax[1].imshow(change, cmap=colours, vmin=0, vmax=2, interpolation="nearest")
ax[1].set_title("change (grey none, red change, black not observable)")
ax[2].imshow(truth.values, cmap=colours, vmin=0, vmax=2, interpolation="nearest")
ax[2].set_title("simulator truth (red: changed between the dates)")
for a in ax:
    a.set_axis_off()
plt.tight_layout()
plt.show()
"""),
    ("md", """
## 4. Score against the truth

Cells scored: visible in both images (the cube's `visible`) and in both views by the simulator's own
ray tracing (`truth_occluded == 0`). Counted here with numpy, then with `offnadir.evaluate`, which also
scores the ortho baseline (per-cell test on both images orthorectified without occlusion handling).
"""),
    ("py", """
occluded = rioxarray.open_rasterio(scene.paths["truth_occluded"]).squeeze("band", drop=True).values
visible = ds["visible"].values
cells = (visible[0] == 1) & (visible[1] == 1) & (occluded == 0)
t, p = truth.values[cells] == 1, change[cells] == 1
tp, fp, fn = int(np.sum(t & p)), int(np.sum(~t & p)), int(np.sum(t & ~p))
print(f"{cells.sum()} cells scored: precision {tp / (tp + fp):.3f}, recall {tp / (tp + fn):.3f}, "
      f"F1 {2 * tp / (2 * tp + fp + fn):.3f}")

report = offnadir.evaluate(store, scene.paths["truth_change"])
print(format_report(report))
ours = report["images"]["target"]["patch"]["all"]
assert (ours["tp"], ours["fp"], ours["fn"]) == (tp, fp, fn)  # two counts of the same thing agree
assert ours["f1"] > report["images"]["target"]["ortho"]["all"]["f1"]  # the method beats the ortho baseline
"""),
]


EXISTING_CLIENT = [
    ("md", """
# Run offnadir on a dask cluster you already have

On a JupyterHub the cluster usually exists before offnadir runs: a `dask_gateway.Gateway().new_cluster()`,
a Coiled cluster, a `dask_jobqueue.SLURMCluster`, or a plain `distributed.LocalCluster`. Pass its
`Client` to `offnadir.run(config, client=client)` (or `offnadir.detect(store, client=client)`): offnadir
runs every stage on it and leaves it open. Here a `LocalCluster` on loopback stands in for the hub's
cluster, and the result is checked against a run on offnadir's own local cluster: identical arrays.
"""),
    ("py", """
from pathlib import Path

import numpy as np
import xarray as xr
from distributed import Client, LocalCluster, get_task_stream

import offnadir

OUT = Path("existing-client-out")
scene = offnadir.simulate(OUT / "scene", seed=3, size=160, overwrite=True)
"""),
    ("md", """
## The notebook's cluster

Two single-threaded worker processes (offnadir's kernels are single-threaded numba; one level of
parallelism). With dask-gateway this cell would be
`cluster = Gateway().new_cluster(); cluster.scale(2); client = cluster.get_client()`.
"""),
    ("py", """
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                       dashboard_address=None)
client = Client(cluster)
client
"""),
    ("py", """
def config(store, **cluster):
    return {
        "dsm": {"path": str(scene.paths["dsm"])},
        "images": [{"path": str(scene.paths["base"]), "name": "base"},
                   {"path": str(scene.paths["target"]), "name": "target"}],
        "output": {"path": str(store), "overwrite": True},
        "tiling": {"chunk": 80},  # 4 tiles, to share between the workers
        "cluster": cluster,
        "change": {"enabled": True},
    }


with get_task_stream(client) as tasks:
    on_client = offnadir.run(config(OUT / "on_client.zarr"), client=client)
ran_on = {t["worker"] for t in tasks.data}
print(f"{len(tasks.data)} tasks on {len(ran_on)} worker(s) of the notebook's cluster")
assert tasks.data and ran_on <= set(client.scheduler_info()["workers"])
assert client.status == "running"  # offnadir left the client open
"""),
    ("md", """
## The same job on offnadir's own local cluster

Without `client=`, `offnadir.run` starts (and stops) a local cluster of its own, as `offnadir run` does;
here with one worker, so the tiles are spread differently too. Every array of the two stores must be
identical: where and how the work runs does not change the result.
"""),
    ("py", """
own = offnadir.run(config(OUT / "own_cluster.zarr", n_workers=1))
a, b = xr.open_zarr(on_client).load(), xr.open_zarr(own).load()
assert set(a.data_vars) == set(b.data_vars) and set(a.coords) == set(b.coords)
for name in [*a.data_vars, *a.coords]:
    np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
changed = int((a["change"].sel(image="target") == 1).sum())
print(f"{len(a.data_vars)} variables identical; {changed} changed cells in both")
"""),
    ("py", """
client.close()
cluster.close()
"""),
]


TIMESERIES = [
    ("md", """
# Monitoring a city over time: STAC in, one date at a time, change history, GIS outputs

A simulated city seen at four dates, each from its own view and sun, with buildings built,
demolished, raised or re-roofed at known dates. The images come from a static STAC catalog; the
first two dates make the store, every later date is **appended** (only its own tiles are computed,
the earlier dates stay as they were), and the store keeps each cell's change history (dates of the
first and last change, number of changes, last observed date). Then COGs, change polygons and a
STAC collection for any GIS. The same from a shell: `offnadir detect` with a `stac:` config section
(or `--stac`), `offnadir append STORE --stac catalog.json`, `offnadir export STORE --to cog|gpkg`.

Everything is written under `timeseries-out/` in the notebook's folder (a few MB).
"""),
    ("py", """
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pyogrio
import pystac
import rasterio
import xarray as xr
from distributed import Client, LocalCluster

import offnadir
from offnadir.append import append_images
from offnadir.change.history import decode_days
from offnadir.export import export
from offnadir.io import stac
from offnadir.simulate.series import DEFAULT_SERIES, simulate_series
from offnadir.stac_out import write_stac

OUT = Path("timeseries-out")
series = simulate_series(OUT / "series", size=160, views=DEFAULT_SERIES[:4], overwrite=True)
print(series.dates)
"""),
    ("md", """
## 1. A static STAC catalog of the four dates

The simulator writes one STAC item per image (`datetime`, `view:off_nadir`, `view:azimuth`,
`view:sun_*`, an `image` asset whose GeoTIFF carries the RPC). Here they go into a catalog with
pystac, as a data provider would publish them; `offnadir.io.stac.select` reads it back with filters
(dates, view angle, the DSM's footprint) as the image entries offnadir runs on.
"""),
    ("py", """
catalog = pystac.Catalog(id="city-monitoring", description="four acquisitions of a simulated city")
for d in json.loads(series.items.read_text()):
    item = pystac.Item.from_dict(d)
    for asset in item.assets.values():  # the simulator's hrefs are relative to its folder
        asset.href = str((series.items.parent / asset.href).resolve())
    catalog.add_item(item)
catalog.normalize_hrefs(str((OUT / "catalog").resolve()))
catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
catalog_path = OUT / "catalog" / "catalog.json"

images = stac.select([catalog_path], dsm=series.dsm)
for im in images:
    print(f"{im.item_id}  {im.date}  off-nadir {im.off_nadir:4.1f} deg, azimuth {im.azimuth:5.1f} deg, "
          f"sun azimuth {im.sun[0]:5.1f} deg, elevation {im.sun[1]:4.1f} deg")
assert len(images) == 4 and [im.date for im in images] == sorted(im.date for im in images)
"""),
    ("md", """
## 2. The first two dates

A dask cluster for the whole notebook (on a hub: the gateway's client), then `offnadir.run` with the
catalog as the image source, limited to the first two dates by the `end` filter.
"""),
    ("py", """
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                       dashboard_address=None)
client = Client(cluster)
CHUNK = 80
config = {
    "dsm": {"path": str(series.dsm)},
    "stac": {"path": str(catalog_path), "end": images[1].date},
    "output": {"path": str(OUT / "monitor.zarr"), "overwrite": True},
    "tiling": {"chunk": CHUNK},
    "change": {"enabled": True},
}
store = offnadir.run(config, client=client)
first = xr.open_zarr(store, mask_and_scale=False)
print([str(v) for v in first["image"].values], first["time"].values.astype("datetime64[D]"))
first_change_map = first["change"].isel(image=1).values.copy()  # to check later that appends leave it alone
"""),
    ("md", """
## 3. Append the later dates, one at a time

Each append computes the new image's cube tiles and its change against the base, and nothing of the
earlier dates; then the per-cell history is recomputed from all dates (cheap: one pass over the
change maps). An append can be interrupted and resumed (`resume=True`, `offnadir append --resume`).
"""),
    ("py", """
n_tiles = -(-first.sizes["y"] // CHUNK) * -(-first.sizes["x"] // CHUNK)
for im in images[2:]:
    summary = append_images(store, [im.entry()], client=client)
    print(f"{im.date}: {summary['cube_tiles']} cube tiles and {summary['change_tiles']} change tiles computed "
          f"(the grid has {n_tiles}); notes: {summary['exceptions'] or 'none'}")
    assert summary["cube_tiles"] == n_tiles and summary["change_tiles"] == n_tiles  # the new date's only

ds = xr.open_zarr(store, mask_and_scale=False)
dates = ds["time"].values.astype("datetime64[D]")
print(dates)
assert ds.sizes["image"] == 4
assert np.array_equal(ds["change"].isel(image=1).values, first_change_map)  # the earlier date is untouched
"""),
    ("md", """
## 4. The change history

`first_change`, `last_change` and `last_observed` are days since 1970-01-01 (int32, `_FillValue` where
never); `offnadir.change.history.decode_days` turns them into dates. A change is a step between two
observed states in date order, the base's state first, so the first change of a cell is the date of
the first later image whose map says "changed" there: counted again below from the change maps.
"""),
    ("py", """
first_change = decode_days(ds["first_change"].values)
n_changes = ds["n_changes"].values
change = ds["change"].values  # (image, y, x): 0 no, 1 yes, 2 not observable
flagged = change[1:] == 1
expect = np.where(flagged.any(axis=0), dates[1:][np.argmax(flagged, axis=0)], np.datetime64("NaT"))
assert np.array_equal(first_change, expect.astype("datetime64[D]"), equal_nan=True)
assert np.array_equal(n_changes > 0, ~np.isnat(first_change))

# against the simulator's truth: the date at which each cell really changed (-1 never)
truth_index = series.change_date
detected_index = np.full(truth_index.shape, -1)
for k, d in enumerate(dates):
    detected_index[first_change == d] = k
print("changed at (truth): cells; observable in that date's image; of those, first_change at that date / "
      "earlier / later / never")
for k in range(1, len(dates)):
    t = truth_index == k
    seen = t & (change[k] != 2)
    print(f"  {dates[k]}: {t.sum():5d}; {seen.sum():5d}; {np.sum(seen & (detected_index == k)):5d} / "
          f"{np.sum(seen & (detected_index > 0) & (detected_index < k)):5d} / "
          f"{np.sum(seen & (detected_index > k)):5d} / {np.sum(seen & (detected_index < 0)):5d}")
unchanged = (truth_index < 0) & (change[1:] != 2).any(axis=0)
print(f"never changed (truth), observable at a later date: {unchanged.sum()} cells, of which "
      f"{np.sum(unchanged & (detected_index > 0))} have a first_change (false alarms)")

colours = plt.matplotlib.colors.ListedColormap(["#d9d9d9", "#1b9e77", "#d95f02", "#7570b3"])
fig, ax = plt.subplots(1, 3, figsize=(13, 4.5), sharex=True, sharey=True)
kw = {"cmap": colours, "vmin": -0.5, "vmax": 3.5, "interpolation": "nearest"}
ax[0].imshow(np.where(truth_index < 0, 0, truth_index), **kw)
ax[0].set_title("truth: date of change")
ax[1].imshow(np.where(detected_index < 0, 0, detected_index), **kw)
ax[1].set_title("first_change")
im = ax[2].imshow(n_changes, cmap="magma", interpolation="nearest")
ax[2].set_title("n_changes")
fig.colorbar(im, ax=ax[2], shrink=0.7)
handles = [plt.matplotlib.patches.Patch(color=colours(k), label=str(d)) for k, d in enumerate(dates) if k]
ax[0].legend(handles=handles, loc="lower left", fontsize=8)
for a in ax:
    a.set_axis_off()
plt.tight_layout()
plt.show()
"""),
    ("md", """
## 5. Outputs every GIS opens

Cloud-optimized GeoTIFFs of the change maps (one per date) and of the history, with CRS and nodata;
the changed objects as polygons (GeoPackage) with area and dates; a STAC collection beside the store,
one item per date, listing the Zarr store and the COGs.
"""),
    ("py", """
cogs = export(store, "cog", OUT / "cogs", variables=["change", "first_change", "n_changes"], overwrite=True)
print(sorted(p.name for p in cogs))
with rasterio.open(OUT / "cogs" / "first_change.tif") as src:
    assert src.crs == ds.rio.crs and src.nodata is not None
    assert np.array_equal(src.read(1), ds["first_change"].values)
with rasterio.open(OUT / "cogs" / f"change_{ds['image'].values[-1]}.tif") as src:
    assert src.nodata == 2 and np.array_equal(src.read(1), change[-1])

polygons = export(store, "gpkg", OUT / "changes.gpkg", overwrite=True)[0]
info = pyogrio.read_info(polygons)
print(f"{polygons.name}: {info['features']} changed objects, CRS {info['crs']}, fields {list(info['fields'])}")

collection = pystac.Collection.from_file(str(write_stac(store, cogs=OUT / "cogs")))
items = sorted(collection.get_items(recursive=True), key=lambda i: i.datetime)
for item in items:
    print(item.id, item.datetime.date(), sorted(item.assets))
assert len(items) == 3  # one per date compared with the base
"""),
    ("py", """
client.close()
cluster.close()
"""),
]


def notebooks() -> dict:
    """{file name: notebook} of every notebook this script writes."""
    return {
        "quickstart.ipynb": _nb("quickstart", QUICKSTART),
        "existing_client.ipynb": _nb("existing-client", EXISTING_CLIENT),
        "timeseries.ipynb": _nb("timeseries", TIMESERIES),
    }


def content(nb) -> list:
    """What a notebook says: kernel, and each cell's kind, id, source and outputs (not how the
    JSON is laid out, which may change with nbformat's version)."""
    return [nb.metadata.get("kernelspec", {}).get("name")] + [
        (c.cell_type, c.get("id"), c.source, c.get("outputs", []), c.get("execution_count")) for c in nb.cells]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for name, nb in notebooks().items():
        path, text = HERE / name, nbformat.writes(nb) + "\n"
        if check:
            if not path.is_file() or content(nbformat.read(path, as_version=4)) != content(nb):
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"not what notebooks/_build.py writes: {', '.join(stale)}; run python notebooks/_build.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
