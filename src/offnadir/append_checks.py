"""The checks ``offnadir append`` (:mod:`offnadir.append`) makes before any work, and its date
logic: the store is a finished ``detect`` store with its DSM unchanged, the new dates do not join
a date group of the store, and which earlier image is a new one's previous date."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from offnadir.errors import ConfigError, DataError

log = logging.getLogger("offnadir.append")

APPEND_ATTR = "offnadir:append"  # the append in progress (removed when it completes)


def check_store(path, *, resume: bool) -> tuple[dict, dict | None]:
    """(root attributes, the interrupted append or None) of a store an append may extend."""
    from offnadir import store as S

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path}: no such store. Give the Zarr store a finished `offnadir detect` wrote.")
    attrs = S.root_attrs(p)
    if attrs is None or S.PLAN_ATTR not in attrs or "config" not in attrs:
        raise DataError(f"{path}: not a store written by `offnadir detect` (no recorded plan/config). "
                        "Append adds dates to a detect store; run `offnadir detect` first.")
    if "change_options" not in attrs or not (p / "change").exists():
        raise DataError(f"{path}: this store holds no change maps (made by `coregister`/`run` without change "
                        "detection). Append adds dates to a store written by `offnadir detect`.")
    pending = json.loads(attrs[APPEND_ATTR]) if APPEND_ATTR in attrs else None
    if attrs.get(S.STATUS_ATTR) != S.COMPLETE:
        if pending is None:
            raise DataError(f"{path}: the store is incomplete (an unfinished detect run); finish it with the same "
                            "detect command plus --resume before appending.")
        if not resume:
            raise DataError(f"{path}: an append of {', '.join(pending['paths'])} was interrupted; run the same "
                            "append command with --resume to finish it.")
    elif resume and pending is None:
        log.info("%s: nothing to resume; appending", path)
    return attrs, pending


def stored_config(attrs) -> dict:
    return json.loads(attrs["config"])


def check_dsm(path, attrs, cfg, dsm) -> None:
    from offnadir import outputs

    rec = cfg["dsm"]["path"]
    if dsm is not None and outputs._real(dsm) != outputs._real(rec):
        raise ConfigError(f"--dsm {dsm}: the store {path} was made with the DSM {rec}; an append uses the store's "
                          "DSM. Leave out --dsm, or run `offnadir detect` for another DSM.")
    stamps = json.loads(attrs[_plan_attr()]).get("inputs", [])
    now = outputs._file_stamp(rec)
    was = next((s for s in stamps if s.get("path") == now.get("path")), None)
    if now.get("missing") or was is None or (was.get("size"), was.get("mtime_ns")) != \
            (now.get("size"), now.get("mtime_ns")):
        raise DataError(f"{rec}: the store's DSM is {'missing' if now.get('missing') else 'not the file it was'} "
                        f"(size/modification time differ from {path}'s record). An append must use the same DSM; "
                        "put it back, or run `offnadir detect` again over all images.")


def _plan_attr() -> str:
    from offnadir.store import PLAN_ATTR

    return PLAN_ATTR


def check_dates(ds, n0, new_cfg, path) -> tuple[list, list]:
    """Refuse a new image that shares its calendar date with an image of the store (a stereo mate:
    the group's tie points and height sweep would change the earlier mate). New images may share
    a date with each other (a new stereo pair). Returns the calendar days, earlier and new."""
    t = np.asarray(ds["time"].values[:n0], dtype="datetime64[D]")
    old = [None if np.isnat(v) else str(v) for v in t]
    seen = {d: str(ds["image"].values[k]) for k, d in enumerate(old) if d is not None}
    new = []
    for e in new_cfg:
        day = str(e.get("date"))[:10] if e.get("date") else _file_date(e)
        if day is not None and day in seen:
            raise ConfigError(f"{e['path']}: its date {day} is the date of {seen[day]} in the store: same-date "
                              "images are tied to each other and swept for heights as a group, which would change "
                              "the earlier image's data. Run `offnadir detect` over all images of that date instead.")
        new.append(day)
    return old, new


def _file_date(entry):
    from offnadir.cube.dataset import _acquired
    from offnadir.io.image import calendar_date
    from offnadir.pipeline import load_images

    d = calendar_date(_acquired(load_images([entry])[0]))
    return None if d is None else str(d)[:10]


def previous_date(ds, index: int) -> int:
    """Index of the image of the latest date before image ``index``'s (the base when none, or when
    the image has no date)."""
    t = np.asarray(ds["time"].values, dtype="datetime64[D]")  # calendar days: a stereo mate is no earlier date
    if np.isnat(t[index]):
        return 0
    earlier = [k for k in range(index) if not np.isnat(t[k]) and t[k] < t[index]]
    return max(earlier, key=lambda k: (t[k], k)) if earlier else 0
