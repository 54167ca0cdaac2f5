"""What ``offnadir append`` hands the change stage: a tile I/O that shows it a two-image store
(the base and one new image) inside the real one, and the merge of the stage's per-target
attributes into the store's. numpy and JSON only; picklable (a dask task carries it)."""

from __future__ import annotations

import json

import numpy as np

#: progress bits of an append (the change stage's own bits: 1 segmented, 4 maps written)
SEGMENTED, WRITTEN, CUBE, LIGHT = 1, 4, 8, 16


class ImageSubsetIO:
    """The store at ``path`` seen with its ``image`` axis reduced to ``images`` (global indices,
    the base first). Reads of an image variable return those images; writes go to the same
    images except the first (the base's maps are the store's already and stay untouched); writes
    of a variable without the image axis are refused (an append rewrites no earlier data), except
    the stage's progress array, which is redirected to the append's own (``progress``)."""

    def __init__(self, path, images, image_vars, progress: dict, rename: dict | None = None):
        self.path = str(path)
        self.images = tuple(int(k) for k in images)
        self.image_vars = frozenset(image_vars)
        self.progress = dict(progress)  # stage progress name -> append progress name
        self.rename = dict(rename or {})  # stage variable -> store variable (e.g. change -> change_prev)

    def _group(self):
        import zarr

        from offnadir.store import _quiet_zarr

        with _quiet_zarr():
            return zarr.open_group(self.path, mode="r+", use_consolidated=False)

    def _local(self, first) -> list[int]:
        if isinstance(first, (int, np.integer)):
            return [int(first)]
        if isinstance(first, slice):
            return list(range(*first.indices(len(self.images))))
        raise TypeError(f"image index {first!r} is not an int or a slice")

    def read(self, name, key):
        from offnadir.store import _quiet_zarr

        key = key if isinstance(key, tuple) else (key,)
        with _quiet_zarr():
            g = self._group()
            if name in self.progress:
                return np.asarray(g[self.progress[name]][key])
            if name not in self.image_vars:
                return np.asarray(g[name][key])
            name = self.rename.get(name, name)
            rest = key[1:]
            if isinstance(key[0], (int, np.integer)):
                return np.asarray(g[name][(self.images[int(key[0])],) + rest])
            return np.stack([np.asarray(g[name][(self.images[k],) + rest]) for k in self._local(key[0])])

    def write(self, name, key, arr):
        from offnadir.store import _quiet_zarr

        key = key if isinstance(key, tuple) else (key,)
        with _quiet_zarr():
            g = self._group()
            if name in self.progress:
                g[self.progress[name]][key] = arr
                return
            if name not in self.image_vars:
                raise RuntimeError(f"append: the change stage tried to rewrite {name!r}, which holds earlier data")
            name = self.rename.get(name, name)
            arr = np.asarray(arr)
            if isinstance(key[0], (int, np.integer)):
                if int(key[0]) != 0:
                    g[name][(self.images[int(key[0])],) + key[1:]] = arr
                return
            for j, k in enumerate(self._local(key[0])):
                if k != 0:
                    g[name][(self.images[k],) + key[1:]] = arr[j]

    def has(self, name) -> bool:
        from offnadir.store import _quiet_zarr

        with _quiet_zarr():
            return name in self.progress or name in set(self._group().array_keys())


# ----------------------------------------------------------------------------- attributes
#: change-stage attributes that are JSON dicts keyed by the target's index
KEYED = ("change_robust_scale", "change_ortho_robust_scale", "change_ndvi_thresholds")
#: change-stage attributes that are JSON lists with one entry per image
PER_IMAGE = ("change_sun", "change_sun_deg")


def merge_change_attrs(old: dict, new: dict, index: int) -> dict:
    """The store's change attributes with those of a two-image run (base, target ``1``) added as
    target ``index``. Attributes the run shares with the store (options, method, bands) are kept."""
    out = {}

    def load(d, k):
        try:
            return json.loads(d.get(k, "null"))
        except (TypeError, ValueError):
            return None

    for k in KEYED:
        a, b = load(old, k), load(new, k)
        if isinstance(a, dict) and isinstance(b, dict) and "1" in b:
            a[str(index)] = b["1"]
            out[k] = json.dumps(a)
    a, b = load(old, "change_irmad"), load(new, "change_irmad")
    if isinstance(a, dict) and isinstance(b, dict):
        for part in ("patch", "ortho"):
            if isinstance(a.get(part), dict) and isinstance(b.get(part), dict) and "1" in b[part]:
                a[part][str(index)] = b[part]["1"]
        out["change_irmad"] = json.dumps(a)
    for k in PER_IMAGE:
        a, b = load(old, k), load(new, k)
        if isinstance(a, list) and isinstance(b, list) and len(b) == 2 and len(a) == index:
            out[k] = json.dumps(a + [b[1]], default=str)
    a, b = load(old, "change_calibration"), load(new, "change_calibration")
    if isinstance(a, dict) and isinstance(b, dict):
        if isinstance(a.get("noise_sigma"), list) and isinstance(b.get("noise_sigma"), list):
            a["noise_sigma"] = a["noise_sigma"] + b["noise_sigma"][1:]
        if isinstance(a.get("offsets"), dict) and "1" in (b.get("offsets") or {}):
            a["offsets"][str(index)] = b["offsets"]["1"]
        if isinstance(a.get("models"), dict):
            for key, m in (b.get("models") or {}).items():
                kind, t, stratum = key.split("/")
                if t == "1":
                    a["models"][f"{kind}/{index}/{stratum}"] = m
        its_a = (a.get("irmad_sample") or {}).get("iterations")
        its_b = (b.get("irmad_sample") or {}).get("iterations") or {}
        if isinstance(its_a, dict):
            for key, v in its_b.items():
                kind, t = key.split("/")
                if t == "1":
                    its_a[f"{kind}/{index}"] = v
        out["change_calibration"] = json.dumps(a, default=float)
    return out
