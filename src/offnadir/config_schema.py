"""The run configuration's schema: every section and field with its type, default, range and
documentation (:class:`Field`), from which :mod:`offnadir.config_validate` checks a config and
:func:`offnadir.config.template` writes the commented template. Later stages register their
sections here (change detection adds ``change``: :func:`schema`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date as _date
from typing import Any


@dataclass(frozen=True)
class Field:
    """One config field. Numbers are range-checked: ``lo``/``hi`` bounds (inclusive unless
    ``lo_open``/``hi_open``), floats must be finite, ints fit in 32 bits unless ``hi`` says otherwise
    (kernels are compiled for fixed-width integers). ``items``: type of a list's items.
    ``output_file``: a path offnadir writes later; checked now (not a folder, its folder exists).
    ``check``: a function ``value -> error text or None`` for what the rest cannot say."""

    type: Any  # python type or tuple of types; "path" for file paths
    default: Any
    doc: str
    required: bool = False
    choices: tuple | None = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    items: Any = None
    output_file: bool = False
    check: Any = None


PATH = "path"
#: dask's comm protocols a scheduler address may use
SCHEDULER_PROTOCOLS = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


def show(v, limit: int = 60) -> str:
    """``repr(v)`` cut to ``limit`` characters: a message never carries a huge value."""
    try:
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**limit:
            return f"an integer of {len(str(abs(v)))} digits"
    except ValueError:  # Python refuses str() of ints beyond 4300 digits
        return "an integer of more than 4300 digits"
    if isinstance(v, (list, tuple, dict)) and len(v) > 20:
        return f"a {type(v).__name__} of {len(v)} items"
    r = repr(v)
    return r if len(r) <= limit else r[:limit - 5] + "...'" + f" ({len(r)} characters)"


def _check_scheduler(v: str) -> str | None:
    import re

    v = v.strip()
    if re.match(r"^https?://", v, re.I):
        return (f"is a web address ({show(v)}), maybe the dashboard's; the scheduler's address is its comm "
                "address, e.g. tcp://HOST:8786 (printed by `dask scheduler` as 'Scheduler at').")
    m = re.match(r"^(?:([a-z]+)://)?(\[[0-9a-f:]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?/?$", v)
    if not m or (m.group(1) or "tcp") not in SCHEDULER_PROTOCOLS or \
            (m.group(1) != "inproc" and (m.group(3) is None or not 0 < int(m.group(3)) < 65536)):
        return (f"{show(v)} is not a dask scheduler address; give PROTOCOL://HOST:PORT with a protocol among "
                f"{', '.join(SCHEDULER_PROTOCOLS)}, e.g. tcp://10.0.0.1:8786.")
    return None


def _check_dashboard(v: str) -> str | None:
    import re

    if v.strip().lower() in ("none", "off", ""):
        return None
    m = re.match(r"^(\[[0-9a-f:]+\]|[A-Za-z0-9_.-]*):(\d{1,5})$", v.strip())
    if not m or int(m.group(2)) > 65535:
        return f"{show(v)} is not HOST:PORT; e.g. 127.0.0.1:8787 (port 0: any free port), or none."
    return None

SCHEMA: dict[str, dict[str, Field]] = {
    "dsm": {
        "path": Field(PATH, None, "DSM GeoTIFF (any GDAL raster with a CRS): the output grid", required=True),
        "geoid": Field(PATH, None, "geoid grid (GTX/.grd/GeoTIFF) when DSM heights are above EGM96/EGM2008"),
        "vertical_datum": Field(str, "auto", "auto (from CRS/tags) | ellipsoid | egm96 | egm2008",
                                choices=("auto", "ellipsoid", "egm96", "egm2008")),
        "band": Field(int, 1, "DSM band to use", lo=1),
    },
    "images": {
        "path": Field(PATH, None, "image with RPC metadata (GeoTIFF/NITF/JP2), in sensor geometry", required=True),
        "model": Field(PATH, None, "camera model file when not inside the image (.RPB, _rpc.txt, DIMAP XML, .geom...)"),
        "gcps": Field(PATH, None, "GCPs (CSV lon,lat,h,row,col or GeoJSON) for affine bias compensation"),
        "name": Field(str, None, "label of the image in the outputs (default: file stem)"),
        "date": Field((str, _date), None, "acquisition date YYYY-MM-DD (overrides the camera metadata's); images "
                                          "of the same date form a group (stereo pair/triplet)"),
        "sun_azimuth": Field(float, None, "sun azimuth in degrees clockwise from north (with sun_elevation; default: "
                                          "from the image metadata, else the acquisition time, else estimated from "
                                          "the image and the DSM)", lo=-360.0, hi=360.0),
        "sun_elevation": Field(float, None, "sun elevation in degrees above the horizon (with sun_azimuth)",
                               lo=0.0, hi=90.0, lo_open=True),
        "stac_item": Field(str, None, "id of the STAC item this entry came from (filled by the stac section; its "
                                      "sun is then recorded as from STAC view:sun_*)"),
        "bands": Field(list, None, "band names (filled from STAC eo:bands; recorded in the store)", items=str),
    },
    # issue 9: the images from a STAC ItemCollection / static catalog instead of `images:` (offnadir.io.stac)
    "stac": {
        "path": Field(PATH, None, "STAC ItemCollection, catalog/collection or item JSON whose items are the images "
                                  "(instead of images:; docs/stac.md)"),
        "items": Field(list, None, "more STAC item/ItemCollection JSON files (paths)", items=str),
        "start": Field((str, _date), None, "keep items acquired on or after this date (YYYY-MM-DD)"),
        "end": Field((str, _date), None, "keep items acquired on or before this date (YYYY-MM-DD)"),
        # hi: an off-nadir angle is at most 90 degrees
        "max_off_nadir": Field(float, None, "keep items whose view:off_nadir (else the camera's) is at most this "
                                            "many degrees", lo=0.0, hi=90.0),
        "base_item": Field(str, None, "id of the base item (default: the earliest); the others are targets in "
                                      "date order"),
        "asset": Field(str, None, "key of the image asset (default: role data, else image/visual/pan, else the "
                                  "first GeoTIFF)"),
    },
    "output": {
        "path": Field(PATH, None, "output Zarr store", required=True),
        "overwrite": Field(bool, False, "replace an existing output"),
        "resume": Field(bool, False, "finish an interrupted run, skipping tiles already written"),
        "zarr_format": Field(int, 2, "Zarr format of the store: 2 opens in GDAL >= 3.10 (rasterio, QGIS); 3 needs "
                                     "GDAL >= 3.11", choices=(2, 3)),
    },
    "tiling": {
        # lo: the tile plan needs 16 cells (occlusion halo and lattice); hi: a tile's float64 arrays
        # (16384^2 cells = 2 GiB each) must still fit in one worker's memory
        "chunk": Field(int, 1024, "largest tile size in DSM cells (also the Zarr chunk size; an axis just over it "
                                  "is cut into even tiles)", lo=16, hi=16384),
        # hi: the lattice interpolates between nodes; a step wider than the largest tile leaves no node inside
        "lattice_step": Field(int, 16, "ground coordinates and lines of sight are computed every N cells and "
                                       "interpolated (error bound tested <= 1e-3 px)", lo=1, hi=16384),
    },
    "occlusion": {
        # hi: no surface on Earth rises 10 km above its surroundings, so a larger tolerance hides nothing
        "z_tol": Field(float, 0.05, "metres a surface must rise above a line of sight to hide a cell", lo=0,
                       hi=10000),
    },
    "tie_bias": {
        # issue 8: relative bias of every image to the base from tie points (offnadir.cube.tiepoints)
        "enabled": Field(bool, True, "fit each image's affine bias to the base from tie points measured on the DSM "
                                     "(CLI: --no-tie-bias to switch off)"),
        "model": Field(str, "auto", "auto (affine only where the points show it predicts better) | affine | shift",
                       choices=("auto", "affine", "shift")),
        # lo: fewer windows cannot outvote outliers; hi: a sparse pass, not a full one
        "points": Field(int, 1000, "tie windows tried per image, spread over the DSM", lo=10, hi=100000),
        "search_px": Field(int, 10, "first search radius in pixels around the vendor prediction (raise it for "
                                    "RPCs known to be off by more)", lo=1, hi=200),
    },
    # issue 7: the same-date height sweep (offnadir.cube.sweep; docs/height_sweep.md)
    "height_sweep": {
        "dsm_test": Field(str, "off_level", "when a better agreement at another height means the surface moved: "
                                         "window (per 13x13 window) | region (then pooled over each region of "
                                         "moved cells: fewer false dh on weak texture, some real changes lost; "
                                         "docs/height_sweep.md) | prediction (then no dh where the best height "
                                         "only repeats a pattern the DSM predicts there: fewer false dh, slower; "
                                         "docs/change_detection.md) | off_level (the default: the window test, then dh = 0, "
                                         "uncertain, where the lead comes from the window's cells whose DSM is at the "
                                         "best height: fewer false dh beside height steps, some real changes lost; "
                                         "docs/change_detection.md) | on_level (then dh = best - DSM height where "
                                         "the DSM height was kept but a window following the cell's surface moved "
                                         "there agrees better: more raised roofs found, more false dh beside height "
                                         "steps, slower; docs/change_detection.md)",
                              choices=("window", "region", "prediction", "off_level", "on_level")),
    },
    "cluster": {
        "scheduler": Field(str, None, "address of an existing dask scheduler (tcp://host:8786, or tls://host:8786 "
                                      "with the tls_* files); default: a local cluster", check=_check_scheduler),
        "n_workers": Field(int, None, "local cluster workers (default: one per core)", lo=1, hi=4096),
        # issue 11: offnadir.cluster.local_workers says when auto picks threads, and why
        "local_workers": Field(str, "auto", "local cluster: auto | processes | threads (auto: threads in this process "
                                            "for a small plan, where starting worker processes costs more than "
                                            "they save; else single-threaded worker processes)",
                               choices=("auto", "processes", "threads")),
        # issue 10: backends in offnadir.backends (each option mapping is checked there)
        "kind": Field(str, None, "local | scheduler | slurm | kubernetes | gateway (default: scheduler when "
                                 "cluster.scheduler is set, else local)",
                      choices=("local", "scheduler", "slurm", "kubernetes", "gateway")),
        "slurm": Field(dict, None, "kind slurm: {queue, account, walltime, processes, memory, min_jobs, max_jobs, "
                                   "host, ...} (deploy/README.md)"),
        "gateway": Field(dict, None, "kind gateway: {address, auth, cluster_options, n_workers, max_workers, ...}"),
        "kubernetes": Field(dict, None, "kind kubernetes: {image, namespace, n_workers, max_workers, cpu, memory}"),
        "tls_ca_file": Field(PATH, None, "tls:// scheduler: certificate authority (PEM) that signed the scheduler's "
                                         "and workers' certificates"),
        "tls_cert": Field(PATH, None, "tls:// scheduler: this client's certificate (PEM)"),
        "tls_key": Field(PATH, None, "tls:// scheduler: this client's private key (PEM; may be inside tls_cert)"),
        "dashboard": Field(str, "127.0.0.1:0", "local cluster dashboard address HOST:PORT (port 0: any free one); "
                                               "'none' for no dashboard. 0.0.0.0 exposes it to the network",
                           check=_check_dashboard),
        # seconds: long enough for `dask worker` processes to start and import offnadir on a loaded machine
        "worker_timeout": Field(float, 120.0, "seconds to wait for a dask worker (at start, or after all workers "
                                              "were lost) before giving up with an error", lo=0, lo_open=True,
                                hi=86400),
    },
}
#: sections whose value is a list of entries (each validated against the section schema)
LIST_SECTIONS = {"images"}
#: sections a later stage registers (change detection adds "change")
EXTRA_SECTIONS: dict[str, dict[str, Field]] = {}


def schema() -> dict[str, dict[str, Field]]:
    _register_change_section()
    return {**SCHEMA, **EXTRA_SECTIONS}


def _register_change_section() -> None:
    # change detection's options (offnadir.change.options imports Field from this module,
    # so it is imported here, when the schema is first asked for)
    from offnadir.change.options import CHANGE_FIELDS

    EXTRA_SECTIONS.setdefault("change", CHANGE_FIELDS)

