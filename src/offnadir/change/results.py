"""What a finished run of the change stage (:class:`offnadir.change.runner.Runner`) leaves behind
besides its maps: the per-patch table and the store attributes that record its automatic choices."""

from __future__ import annotations

import json
import math

import numpy as np


def table(run):
    """The per-patch table (xarray, dims patch_id/image) of a finished run, or None."""
    from offnadir.change.dataset import table_dataset

    if not run.want_patch or run.red is None:
        return None
    rows = run.red["rows"]
    static = {"patch_n_cells": rows["n_cells"],
              "patch_elevated": (rows["n_elev"] > 0.5 * rows["n_cells"]).astype(np.uint8)}
    return table_dataset(run.red_ids, [str(v) for v in run.cube["image"].values], run.per_target, static,
                         run.cell)


def summary_attrs(run) -> dict:
    """The store attributes that record a run's automatic choices."""

    def models_json(ms):
        return {str(t): ([m.to_dict() if m else None for m in v] if isinstance(v, list) else v.to_dict())
                for t, v in ms.items()}

    ctx = run.ctx
    return {
        "change_method": run.opts.method,
        "change_options": json.dumps(run.opts.as_dict(), default=str),
        "change_irmad": json.dumps({"patch": models_json(run.models) if run.want_patch else None,
                                    "ortho": models_json(run.omodels) if run.want_ortho else None}),
        "change_robust_scale": json.dumps({str(t): [None if s is None else list(map(float, s)) for s in v]
                                           for t, v in run.scales.items()}),
        "change_ortho_robust_scale": json.dumps({str(t): list(map(float, v)) for t, v in run.oscales.items()}),
        "change_sun": json.dumps(run.sun_report, default=str),
        "change_sun_deg": json.dumps([None if s is None else [math.degrees(s[1]), math.degrees(s[0])]
                                      for s in ctx.sun]) if ctx.sun else "null",
        "change_bands_red_nir": json.dumps([ctx.red, ctx.nir]),
        "change_ndvi_thresholds": json.dumps({str(t): v for t, v in run.ndvi_thresholds.items()}),
        "change_calibration": json.dumps(getattr(run, "calibration", None), default=float),
    }
