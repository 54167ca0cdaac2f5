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
    type: Any  # python type or tuple of types; "path" for file paths
    default: Any
    doc: str
    required: bool = False
    choices: tuple | None = None


PATH = "path"

SCHEMA: dict[str, dict[str, Field]] = {
    "dsm": {
        "path": Field(PATH, None, "DSM GeoTIFF (any GDAL raster with a CRS): the output grid", required=True),
        "geoid": Field(PATH, None, "geoid grid (GTX/.grd/GeoTIFF) when DSM heights are above EGM96/EGM2008"),
        "vertical_datum": Field(str, "auto", "auto (from CRS/tags) | ellipsoid | egm96 | egm2008",
                                choices=("auto", "ellipsoid", "egm96", "egm2008")),
        "band": Field(int, 1, "DSM band to use"),
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
                                          "the image and the DSM)"),
        "sun_elevation": Field(float, None, "sun elevation in degrees above the horizon (with sun_azimuth)"),
    },
    "output": {
        "path": Field(PATH, None, "output Zarr store", required=True),
        "overwrite": Field(bool, False, "replace an existing output"),
        "resume": Field(bool, False, "finish an interrupted run, skipping tiles already written"),
    },
    "tiling": {
        "chunk": Field(int, 1024, "tile size in DSM cells (also the Zarr chunk size)"),
        "lattice_step": Field(int, 16, "ground coordinates and lines of sight are computed every N cells and "
                                       "interpolated (error bound tested <= 1e-3 px)"),
    },
    "occlusion": {
        "z_tol": Field(float, 0.05, "metres a surface must rise above a line of sight to hide a cell"),
    },
    "cluster": {
        "scheduler": Field(str, None, "address of an existing dask scheduler (tcp://host:8786); "
                                      "default: a local cluster"),
        "n_workers": Field(int, None, "local cluster workers (default: one per core)"),
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
    if v is None:
        if f.required:
            raise ConfigError(f"{where}.{name} is required: {f.doc}.")
        return f.default
    if f.type == PATH:
        if not isinstance(v, (str, Path)):
            raise ConfigError(f"{where}.{name} must be a file path, got {v!r}.")
        p = Path(v).expanduser()
        return str(p if p.is_absolute() else (base / p))
    types = f.type if isinstance(f.type, tuple) else (f.type,)
    if float in types and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if bool not in types and isinstance(v, bool) or not isinstance(v, types):
        raise ConfigError(f"{where}.{name} must be {' or '.join(t.__name__ for t in types)}, got {v!r}.")
    if f.choices and v not in f.choices:
        raise ConfigError(f"{where}.{name} must be one of {', '.join(map(str, f.choices))}, got {v!r}.")
    return v


def validate(raw: dict, *, base: Path | str = ".", source: str = "config") -> dict:
    """Return a complete config (defaults filled, paths absolute) or raise ConfigError naming the field."""
    base = Path(base)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a mapping of sections ({', '.join(schema())}).")
    sch = schema()
    for key in raw:
        if key not in sch:
            raise ConfigError(f"{source}: unknown section {key!r}.{_suggest(key, sch)}")
    out: dict = {}
    for sec, fields in sch.items():
        val = raw.get(sec)
        if sec in LIST_SECTIONS:
            if val is None:
                val = []
            if not isinstance(val, list):
                raise ConfigError(f"{source}: {sec} must be a list of entries, e.g. `- path: image.tif`.")
            entries = []
            for k, entry in enumerate(val):
                if isinstance(entry, str):
                    entry = {"path": entry}
                if not isinstance(entry, dict):
                    raise ConfigError(f"{source}: {sec}[{k}] must be a mapping or a path.")
                entries.append(_section(f"{sec}[{k}]", fields, entry, base, source))
            out[sec] = entries
        else:
            if val is None:
                val = {}
            if not isinstance(val, dict):
                raise ConfigError(f"{source}: section {sec} must be a mapping.")
            out[sec] = _section(sec, fields, val, base, source)
    if len(out["images"]) < 1:
        raise ConfigError(f"{source}: images needs at least one entry (the first is the base image).")
    return out


def _section(where, fields, val, base, source):
    for key in val:
        if key not in fields:
            raise ConfigError(f"{source}: unknown key {where}.{key}.{_suggest(key, fields)}")
    return {name: _check_value(where, name, f, val.get(name), base) for name, f in fields.items()}


def load(path) -> dict:
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: config file not found. `offnadir template-config > {p.name}` writes a template.")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e}).") from None
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

