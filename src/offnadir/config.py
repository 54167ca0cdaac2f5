"""The run configuration: one schema, validated field by field, from which the commented
template (``offnadir template-config``, ``configs/template.yaml``) is generated.

Relative paths in a config file are taken from the file's folder.
"""

from __future__ import annotations

from pathlib import Path

import yaml

# the schema and the validation live in their own modules; their public names (and the field
# check the tests use) stay importable from here
from offnadir.config_schema import (  # noqa: F401
    EXTRA_SECTIONS, LIST_SECTIONS, PATH, SCHEDULER_PROTOCOLS, SCHEMA, Field, schema, show)
from offnadir.config_validate import _check_value, validate  # noqa: F401
from offnadir.errors import ConfigError, InputFileError


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
    """The validated config of a YAML file (relative paths from its folder)."""
    p = Path(path)
    return validate(read(p) or {}, base=p.parent, source=str(p))


def read(path):
    """The raw contents of a YAML config file, not yet validated (the checks of :func:`load`: the
    file exists and is UTF-8 YAML without aliases)."""
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
    return raw


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
