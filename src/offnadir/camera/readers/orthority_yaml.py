"""Orthority RPC camera file (YAML, ``orthority`` ``--rpc-param`` export)::

    qb2_basic1b.tif:
        im_size: [850, 1450]          # width, height
        rpc:
            line_off: 399.45
            line_num_coeff: [...20...]
            ...

One entry per image file name; the ``rpc`` dict uses rasterio's RPC field names (RPC00B native,
exactly the GeoTIFF RPC tags orthority read). With ``image=`` the entry named like the image is
used; otherwise the file must hold a single entry.
"""

from __future__ import annotations

import re
from pathlib import Path

from offnadir.camera.readers._common import head_text, image_shape, load_yaml, make_camera, read_text
from offnadir.camera.rpc import RPC, short_repr
from offnadir.errors import ConfigError, InvalidModelError, NoCameraModelError

FORMAT = "orthority-yaml"


def sniff(path: Path, head: bytes) -> bool:
    t = head_text(head)
    return (re.search(r"^\s+rpc\s*:\s*$", t, re.M) is not None
            and re.search(r"^\s+line_num_coeff\s*:", t, re.M) is not None)


def _entries(path: Path) -> dict:
    doc = load_yaml(path, read_text(path))
    if not isinstance(doc, dict):
        raise NoCameraModelError(f"{path}: YAML without image entries holding an 'rpc' mapping.")
    out = {str(k): v for k, v in doc.items() if isinstance(v, dict) and isinstance(v.get("rpc"), dict)}
    if not out:
        raise NoCameraModelError(f"{path}: no entry has an 'rpc' mapping (orthority RPC camera file expected).")
    return out


def _camera(path: Path, name: str, entry: dict):
    rpc = RPC.from_dict(entry["rpc"], source=f"{path} ({FORMAT}, {name})")
    shape = None
    if "im_size" in entry:
        size = entry["im_size"]
        if not isinstance(size, (list, tuple)) or len(size) != 2:
            raise InvalidModelError(f"{path}: {name}: im_size holds {short_repr(size)}; it must be "
                                    "[width, height] (two positive whole numbers).")
        shape = image_shape(size[1], size[0], path, f"{name}: im_size")
    return make_camera(rpc, path, FORMAT, shape=shape)


def read(path: Path):
    path = Path(path)
    ents = _entries(path)
    if len(ents) > 1:
        raise ConfigError(
            f"{path}: holds RPCs for {len(ents)} images ({', '.join(sorted(ents))}); say which with "
            "read_camera(path, image='<one of those files>')."
        )
    (name, entry), = ents.items()
    return _camera(path, name, entry)


def read_for_image(path: Path, image) -> object:
    path = Path(path)
    ents = _entries(path)
    name = Path(image).name
    if name in ents:
        return _camera(path, name, ents[name])
    if len(ents) == 1:
        (n, entry), = ents.items()
        return _camera(path, n, entry)
    raise ConfigError(f"{path}: has no entry for {name}; entries: {', '.join(sorted(ents))}.")
