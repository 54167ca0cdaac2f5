"""Validation of a run configuration against :mod:`offnadir.config_schema`: every field
type- and range-checked, paths made absolute (relative ones from the config file's folder), every
problem found reported in one :class:`~offnadir.errors.ConfigError`, one line each, naming its field.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from offnadir.config_schema import LIST_SECTIONS, PATH, Field, schema, show
from offnadir.errors import ConfigError


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
