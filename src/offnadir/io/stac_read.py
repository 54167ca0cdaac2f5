"""Reading STAC JSON for :mod:`offnadir.io.stac`: ItemCollections, static catalogs/collections
(walked with pystac), single items, JSON lists of items or item file names; and where an item's
relative hrefs resolve (its own ``self`` link, else the file that listed it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from offnadir.errors import ConfigError, OffnadirError


class StacError(ConfigError):
    """A STAC source offnadir cannot use: unreadable JSON, an item without a usable image or RPC,
    no item left after the filters. The message names the file, the item and the fix."""


# ------------------------------------------------------------------------------------- reading
def _load_json(path: Path):
    if not path.exists():
        raise StacError(f"{path}: STAC file not found. Give the ItemCollection/catalog/item JSON "
                        "(stac.path in the config, --stac on the command line).")
    if path.is_dir():
        for name in ("catalog.json", "collection.json"):
            if (path / name).is_file():
                return _load_json(path / name)
        raise StacError(f"{path}: is a folder without catalog.json or collection.json; name the STAC JSON file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise StacError(f"{path}: cannot be read as UTF-8 JSON ({e}).") from None
    try:
        return json.loads(text), path
    except ValueError as e:
        raise StacError(f"{path}: not valid JSON ({e}); a STAC ItemCollection, catalog or item is JSON "
                        "(pystac's save_object writes one).") from None


def read_items(paths) -> list[tuple[object, Path, Path]]:
    """``(pystac.Item, folder its relative hrefs resolve against, source file)`` for every item in
    ``paths`` (one path or a list)."""
    import pystac

    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = []
    for p in paths:
        data, p = _load_json(Path(p))
        if isinstance(data, list):
            for k, d in enumerate(data):
                if isinstance(d, str):  # a list of item files
                    out += read_items([(p.parent / d) if not Path(d).is_absolute() else Path(d)])
                else:
                    out.append(_item(d, p, f"{p}[{k}]"))
            continue
        if not isinstance(data, dict):
            raise StacError(f"{p}: holds {type(data).__name__}, not a STAC object; give an ItemCollection, "
                            "catalog, collection, item or a list of items.")
        kind = data.get("type")
        if kind == "FeatureCollection":
            feats = data.get("features")
            if not isinstance(feats, list):
                raise StacError(f"{p}: FeatureCollection without a 'features' list.")
            out += [_item(d, p, f"{p} features[{k}]") for k, d in enumerate(feats)]
        elif kind == "Feature":
            out.append(_item(data, p, str(p)))
        elif kind in ("Catalog", "Collection"):
            try:
                cat = pystac.read_file(str(p))
                items = list(cat.get_items(recursive=True))
            except OffnadirError:
                raise
            except Exception as e:  # noqa: BLE001 - pystac raises many kinds for a broken catalog
                raise StacError(f"{p}: the {kind.lower()} cannot be walked ({type(e).__name__}: {e}); check its "
                                "child/item links.") from None
            for it in items:
                href = it.get_self_href()
                out.append((it, Path(href).parent if href else p.parent, p))
        else:
            raise StacError(f"{p}: 'type' is {kind!r}; a STAC source is a FeatureCollection (ItemCollection), "
                            "Catalog, Collection or Feature (item).")
    return out


def _item(d, src: Path, where: str):
    import pystac

    if not isinstance(d, dict) or d.get("type") != "Feature":
        raise StacError(f"{where}: not a STAC item (a GeoJSON Feature with id, properties and assets).")
    try:
        it = pystac.Item.from_dict(d, preserve_dict=True)
    except Exception as e:  # noqa: BLE001 - malformed items raise KeyError, ValueError, STACError...
        raise StacError(f"{where} (id {d.get('id')!r}): not a valid STAC item ({type(e).__name__}: {e}).") from None
    self_href = it.get_self_href()
    base = src.parent
    if self_href and not is_remote(self_href):
        sp = local_path(self_href, src.parent)
        base = sp.parent
    return it, base, src


def is_remote(href: str) -> bool:
    s = urlparse(href).scheme.lower()
    return len(s) > 1 and s != "file"


def local_path(href: str, base: Path) -> Path:
    u = urlparse(href)
    if u.scheme.lower() == "file":
        return Path(unquote(u.path))
    p = Path(href)
    return Path(os.path.abspath(p if p.is_absolute() else (base / p)))
