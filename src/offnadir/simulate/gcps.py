"""Ground control points of a simulated view: visible, unchanged ground far from anything elevated."""

from __future__ import annotations

import numpy as np


def pick_gcps(grid, e1, e2, terrain, elevated, change, counts, ss, cam, seed, n_side: int = 3,
              clearance_m: float = 4.0, dist=None):
    """Up to n_side² GCPs, one per sector of the grid: the fully visible, unchanged ground cell
    nearest the sector centre among those at least ``clearance_m`` from anything elevated (the
    clearance is relaxed if a sector has none). ``dist``: :func:`clearance` when already computed."""
    from offnadir.simulate import scene as sc

    ok = ((elevated == 0) & (change == 0) & (counts >= ss * ss)
          & np.isin(e1.kind, (sc.ROAD, sc.SIDEWALK, sc.PARKING, sc.GRASS, sc.SOIL)))
    ok[:3] = ok[-3:] = False
    ok[:, :3] = ok[:, -3:] = False
    dist = clearance(elevated, grid.cell) if dist is None else dist
    ny, nx = grid.shape
    ii, jj = np.ogrid[0:ny, 0:nx]
    recs = []
    for a in range(n_side):
        for b in range(n_side):
            i0, i1 = a * ny // n_side, (a + 1) * ny // n_side
            j0, j1 = b * nx // n_side, (b + 1) * nx // n_side
            sub_ok = ok[i0:i1, j0:j1]
            sub_d = dist[i0:i1, j0:j1]
            for clear in (clearance_m, clearance_m / 2, 1.0):
                cand = sub_ok & (sub_d >= clear)
                if cand.any():
                    break
            else:
                continue
            d2 = (ii[i0:i1] - (i0 + i1) / 2) ** 2 + (jj[:, j0:j1] - (j0 + j1) / 2) ** 2
            k = int(np.argmin(np.where(cand, d2, np.inf)))
            i, j = i0 + k // (j1 - j0), j0 + k % (j1 - j0)
            lon, lat = grid.cell_lonlat(i, j)
            h = float(e1.dsm[i, j])
            row, col = cam.project(float(lon), float(lat), h)
            recs.append(dict(id=f"G{len(recs) + 1:02d}", lon=float(lon), lat=float(lat), h=h,
                             row=float(row), col=float(col), cell_row=int(i), cell_col=int(j)))
    return recs


def clearance(elevated, cell: float):
    """Distance (m) from each cell to the nearest elevated cell."""
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(elevated == 0) * cell
