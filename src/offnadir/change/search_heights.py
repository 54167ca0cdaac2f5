"""How far the parallax searches reach, in metres of height (what :mod:`offnadir.change.runner` asks
before the evidence and sums passes): the patch criterion's measured range
(:func:`max_height_change`) and the census evidence's tolerance (:func:`evidence_height`), both
from the options and the two views' geometry (:func:`parallax_cells_per_metre`). Plain Python.
"""

from __future__ import annotations

import math

import numpy as np


def max_height_change(opts, above_ground) -> float:
    """Metres of height error/change the parallax searches cover: ``max_height_change`` when
    set, else the tallest object of the DSM above its local ground (99.9th percentile of the
    height above the opening, :func:`offnadir.change.tile.stats`): a building of the scene's own
    kind, built or removed, stays within it, and so does any DSM error on it."""
    if opts.max_height_change is not None:
        return float(opts.max_height_change)
    return float(above_ground) if math.isfinite(above_ground) and above_ground > 0 else 0.0


def parallax_cells_per_metre(az0, off0, az1, off1, cell) -> float:
    """Grid cells the target's samples move relative to the base's per metre of height error
    (largest axis of ``tan(off1) u1 - tan(off0) u0`` over the cell size, as in
    :func:`offnadir.change.evidence.relative_offsets`); 0 when an angle is unknown."""
    vals = (az0, off0, az1, off1)
    if not all(v is not None and np.isfinite(v) for v in vals) or not cell > 0:
        return 0.0

    def vec(az, off):
        t = math.tan(math.radians(off))
        return -t * math.cos(math.radians(az)), t * math.sin(math.radians(az))

    (a0, b0), (a1, b1) = vec(az0, off0), vec(az1, off1)
    return max(abs(a1 - a0), abs(b1 - b0)) / float(cell)


def evidence_height(opts, az0, off0, az1, off1, cell) -> float:
    """Metres of height error the census evidence's parallax search tolerates (the smallest ``R``
    over the shifts of ``[-h, h]`` is kept): ``max_height_change`` when set; else the larger of

    * ``elevated_height`` (2.5 m): a height change below what makes a cell "elevated" is not a
      building change (the same bound as the ``dh`` test), so a DSM off by that much on an
      unchanged surface must still match;
    * one cell of relative parallax: the co-registration leaves up to a cell of residual shift
      (tie points, resampling), and a change smaller than one cell of parallax is invisible to
      geometry (the simulator's ``below_parallax`` class is defined the same way).

    Anything beyond must *not* be absorbed: a search over the scene's whole relief (the patch
    criterion's range) lets a raised roof, or the roof of a new building in the target, match
    some shifted copy of itself or of its surroundings, which hid those changes (hard simulator:
    new buildings 0 % flagged on seed 1 with 101 offsets)."""
    if opts.max_height_change is not None:
        return float(opts.max_height_change)
    per_m = parallax_cells_per_metre(az0, off0, az1, off1, cell)
    one_cell = 1.0 / per_m if per_m > 0 else 0.0
    return max(float(opts.elevated_height), one_cell)
