"""The run configuration: one schema, validated field by field, from which the commented
template (``offnadir template-config``, ``configs/template.yaml``) is generated.

Relative paths in a config file are taken from the file's folder.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date as _date
from pathlib import Path
from typing import Any

import yaml

from offnadir.errors import ConfigError, InputFileError


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
        "chunk": Field(int, 1024, "tile size in DSM cells (also the Zarr chunk size)", lo=16, hi=16384),
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


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else f" Known: {', '.join(options)}."


def _check_value(where: str, name: str, f: Field, v, base: Path):
    """The checked value, or raise ConfigError naming ``where.name``, the problem and the fix."""
    field = f"{where}.{name}"
    if v is None:
        if f.required:
            raise ConfigError(f"{field} is required: {f.doc}.")
        return f.default
    if f.type == PATH:
        if not isinstance(v, (str, Path)) or not str(v).strip():
            raise ConfigError(f"{field} must be a file path, got {show(v)}.")
        if "\0" in str(v):
            raise ConfigError(f"{field} holds a NUL character; give a plain file path.")
        from offnadir.io.remote import is_url

        if is_url(str(v)):  # http(s):// images, s3:// stores (issue 9): kept as given, never made a path
            return str(v)
        p = Path(v).expanduser()
        p = p if p.is_absolute() else (base / p)
        if f.output_file:
            _check_output_file(field, p)
        return str(p.absolute())  # workers of a remote cluster (SLURM, gateway) run in another folder
    types = f.type if isinstance(f.type, tuple) else (f.type,)
    if float in types and isinstance(v, int) and not isinstance(v, bool):
        try:
            v = float(v)
        except OverflowError:
            raise ConfigError(f"{field} is {show(v)}, too large for a number; {_range_text(f) or 'give a number'}."
                              ) from None
    if bool not in types and isinstance(v, bool) or not isinstance(v, types):
        rng = _range_text(f)
        raise ConfigError(f"{field} must be {' or '.join(t.__name__ for t in types)}, got {show(v)}"
                          + (f"; {rng}." if rng else "."))
    if f.choices and v not in f.choices:
        raise ConfigError(f"{field} must be one of {', '.join(map(str, f.choices))}, got {show(v)}.")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        _check_number(field, f, v)
    if f.items is not None and isinstance(v, list):
        for k, item in enumerate(v):
            if isinstance(item, bool) or not isinstance(item, f.items):
                raise ConfigError(f"{field}[{k}] must be {f.items.__name__}, got {show(item)}; write the list as "
                                  f"[a, b] of plain {f.items.__name__} values.")
    if f.check is not None and isinstance(v, str):
        problem = f.check(v)
        if problem:
            raise ConfigError(f"{field} {problem}" if not problem.startswith(show(v)) else f"{field}: {problem}")
    return v


def _range_text(f: Field) -> str:
    parts = []
    if f.lo is not None:
        parts.append(f"{'>' if f.lo_open else '>='} {f.lo:g}")
    if f.hi is not None:
        parts.append(f"{'<' if f.hi_open else '<='} {f.hi:g}")
    return f"give a value {' and '.join(parts)}" if parts else ""


def _check_number(field: str, f: Field, v) -> None:
    import math

    if isinstance(v, float) and not math.isfinite(v):
        raise ConfigError(f"{field} must be a finite number, got {show(v)}; "
                          f"{_range_text(f) or 'give a plain number'}.")
    lo, hi = f.lo, f.hi
    if isinstance(v, int) and hi is None:
        hi = 2**31 - 1  # kernels use fixed-width integers
    bad = (lo is not None and (v <= lo if f.lo_open else v < lo)) or \
          (hi is not None and (v >= hi if f.hi_open else v > hi))
    if bad:
        rng = _range_text(Field(f.type, None, "", lo=lo, hi=hi, lo_open=f.lo_open, hi_open=f.hi_open))
        default = f" (default {f.default})" if f.default is not None else ""
        raise ConfigError(f"{field} is {show(v)}, out of range; {rng}{default}.")


def _check_output_file(field: str, p: Path) -> None:
    if p.is_dir():
        raise ConfigError(f"{field}: {p} is a folder; give a file path inside it, e.g. {p / 'patches.csv'}.")
    parent = p.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise ConfigError(f"{field}: the folder {parent} {what}; create it first or give another path.")


def validate(raw: dict, *, base: Path | str = ".", source: str = "config") -> dict:
    """Return a complete config (defaults filled, paths absolute) or raise one ConfigError that
    lists every problem found (one line each), each naming its field."""
    base = Path(base)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a mapping of sections ({', '.join(schema())}).")
    errors: list[str] = []
    sch = schema()
    for key in raw:
        if key not in sch:
            errors.append(f"unknown section {show(key)}.{_suggest(str(key), sch)}")
    out: dict = {}
    for sec, fields in sch.items():
        val = raw.get(sec)
        if sec in LIST_SECTIONS:
            if val is None:
                val = []
            if not isinstance(val, list):
                errors.append(f"{sec} must be a list of entries, e.g. `- path: image.tif`.")
                val = []
            entries = []
            for k, entry in enumerate(val):
                if isinstance(entry, str):
                    entry = {"path": entry}
                if not isinstance(entry, dict):
                    errors.append(f"{sec}[{k}] must be a mapping or a path.")
                    continue
                entries.append(_section(f"{sec}[{k}]", fields, entry, base, errors))
            out[sec] = entries
        else:
            if val is None:
                val = {}
            if not isinstance(val, dict):
                errors.append(f"section {sec} must be a mapping of field: value.")
                val = {}
            out[sec] = _section(sec, fields, val, base, errors)
    stac = out.get("stac") or {}
    if stac.get("path") or stac.get("items"):
        _stac_images(out, sch, base, errors)
    elif not raw.get("images") and "images" in sch and not any(e.startswith("images") for e in errors):
        errors.append("images needs at least one entry (the first is the base image), or give a stac section.")
    if not errors and "cluster" in out:
        errors += _check_cluster(out["cluster"])
    if errors:
        if len(errors) == 1:
            raise ConfigError(f"{source}: {errors[0]}")
        raise ConfigError(f"{source}: {len(errors)} problems:\n" + "\n".join(f"  {e}" for e in errors))
    return out


def _stac_images(out: dict, sch, base: Path, errors: list) -> None:
    """Fill ``out["images"]`` from the stac section (:mod:`offnadir.io.stac`); a config validated
    before (every entry with a ``stac_item``) keeps its entries."""
    images = out.get("images") or []
    if images and all(e.get("stac_item") for e in images):
        return
    if images:
        errors.append("images and stac are both given; give the images one way: the images: list or the "
                      "stac: section (its items become the images).")
        return
    if errors:  # the STAC files are read only for an otherwise valid config
        return
    from offnadir.io.stac import config_images

    stac = dict(out["stac"])
    stac["items"] = [str(p if Path(p).is_absolute() else base / p) for p in stac.get("items") or []]
    out["stac"] = stac
    entries = config_images(stac, dsm=(out.get("dsm") or {}).get("path"))
    out["images"] = [_section(f"images[{k}] (STAC item {e['name']})", sch["images"], e, base, errors)
                     for k, e in enumerate(entries)]


def _check_cluster(c: dict) -> list[str]:
    tls_fields = ("tls_ca_file", "tls_cert", "tls_key")
    sched = (c.get("scheduler") or "").strip()
    given = [k for k in tls_fields if c.get(k)]
    errors = []
    if sched.lower().startswith("tls://"):
        if not c.get("tls_ca_file") or not c.get("tls_cert"):
            errors.append(f"cluster.scheduler {show(sched)} uses TLS but cluster.tls_ca_file and cluster.tls_cert "
                          "are not both set; name the CA and this client's certificate (PEM files; "
                          "--tls-ca-file/--tls-cert/--tls-key on the command line). See deploy/README.md.")
    elif given:
        errors.append(f"cluster.{given[0]} is set but cluster.scheduler is not a tls:// address; give "
                      "--scheduler tls://HOST:PORT or drop the tls_* settings.")
    for k in given:
        if not Path(c[k]).is_file():
            errors.append(f"cluster.{k}: {c[k]} not found; give the PEM file's path.")
    from offnadir.backends import check_options

    return errors + check_options(c)


def _section(where, fields, val, base, errors):
    out = {}
    for key in val:
        if key not in fields:
            errors.append(f"unknown key {where}.{str(key)[:60]}.{_suggest(str(key), fields)}")
    for name, f in fields.items():
        try:
            out[name] = _check_value(where, name, f, val.get(name), base)
        except ConfigError as e:
            errors.append(str(e))
            out[name] = f.default
    return out


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (``*name``): a config never needs them, and a few hundred
    bytes of nested aliases expand to gigabytes (the "billion laughs")."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            ev = self.peek_event()
            raise ConfigError(f"line {ev.start_mark.line + 1}: YAML aliases (*{str(ev.anchor)[:30]}) are not "
                              "allowed in an offnadir config; write the value out in full.")
        return super().compose_node(parent, index)


def load(path) -> dict:
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: config file not found. `offnadir template-config > {p.name}` writes a template.")
    if p.is_dir():
        found = sorted(q.name for q in p.glob("*.y*ml"))[:3]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise ConfigError(f"{p}: is a folder, not a config file; give the YAML file{hint}. "
                          f"`offnadir template-config > job.yaml` writes a template.")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputFileError(f"{p}: cannot read the config ({e.strerror}).") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"{p}: line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the config as "
                          "UTF-8 (e.g. `iconv -f latin1 -t utf-8`).") from None
    try:
        raw = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({' '.join(str(e).split())[:300]}).") from None
    except RecursionError:
        raise ConfigError(f"{p}: nested too deeply to be a config; check the file.") from None
    return validate(raw or {}, base=p.parent, source=str(p))


def template() -> str:
    """A commented YAML template listing every section and field with its default."""
    lines = ["# offnadir run configuration (offnadir run CONFIG.yaml)",
             "# Relative paths are taken from this file's folder.", ""]
    for sec, fields in schema().items():
        if sec in LIST_SECTIONS:
            lines.append(f"{sec}:  # a list; the first image is the base")
            first = True
            for name, f in fields.items():
                prefix = "  - " if first else "    "
                first = False
                lines.append(f"{prefix}{name}: {_yaml_default(name, f)}  # {f.doc}{' (required)' if f.required else ''}")
        else:
            lines.append(f"{sec}:")
            for name, f in fields.items():
                lines.append(f"  {name}: {_yaml_default(name, f)}  # {f.doc}{' (required)' if f.required else ''}")
        lines.append("")
    return "\n".join(lines)


def _yaml_default(name, f: Field) -> str:
    if f.required and f.default is None:
        return {"path": "CHANGE_ME"}.get(name, "CHANGE_ME")
    if f.default is None:
        return "null"
    return yaml.safe_dump(f.default, default_flow_style=True).strip().removesuffix("...").strip()


def _register_change_section() -> None:
    # change detection's options (offnadir.change.options imports Field from this module)
    from offnadir.change.options import CHANGE_FIELDS

    EXTRA_SECTIONS.setdefault("change", CHANGE_FIELDS)

