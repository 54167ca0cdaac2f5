"""The images of a same-date group seen by the height sweep (:mod:`offnadir.cube.sweep`): one image over
one block of the DSM grid, sampled at a common candidate height or at every cell's own height (numpy; the
projection and resampling are the cube's numba kernels)."""

from __future__ import annotations

import numpy as np

from offnadir.camera import kernels as camk
from offnadir.cube import geometry
from offnadir.cube import sweep_level_kernels as slk
from offnadir.cube import sweep_views_kernels as svk


class View:
    """One image of the group over one block: lattice lon/lat nodes and the image window read."""

    def __init__(self, plan, im, i0, i1, j0, j1, z_lo, z_hi):
        self.im = im
        self.step = plan.lattice_step
        self.ni, self.nj = geometry.lattice_nodes(i0, i1, j0, j1, self.step)
        I, J = np.meshgrid(self.ni, self.nj, indexing="ij")
        lon, lat = geometry.cell_lonlat(plan.dsm, I, J)
        self.lon, self.lat = lon.ravel(), lat.ravel()
        self.kp = im.camera.kernel_params()
        self.nshape = I.shape
        self.i0, self.j0, self.shape = i0, j0, (i1 - i0, j1 - j0)
        rows, cols = [], []
        for z in (z_lo, z_hi):
            r, c = self._nodes(z)
            rows.append(r.ravel())
            cols.append(c.ravel())
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        nr, nc = im.shape
        self.window = None
        if np.isfinite(r).any():
            self.r0 = max(int(np.floor(np.nanmin(r))) - 2, 0)
            r1 = min(int(np.floor(np.nanmax(r))) + 4, nr)
            self.c0 = max(int(np.floor(np.nanmin(c))) - 2, 0)
            c1 = min(int(np.floor(np.nanmax(c))) + 4, nc)
            if r1 > self.r0 and c1 > self.c0:
                # one intensity per pixel: the mean of the bands (NaN where any band is nodata)
                w = im.read_window(self.r0, r1, self.c0, c1).astype(np.float32)
                if np.isfinite(im.nodata_value):
                    w[w == im.nodata_value] = np.nan
                self.window = np.ascontiguousarray(w.mean(axis=0)[None])
        self.row = np.empty(self.shape)
        self.col = np.empty(self.shape)
        self.out = np.empty((1,) + self.shape, np.float32)

    def _nodes(self, z):
        r = np.empty(self.lon.shape)
        c = np.empty(self.lon.shape)
        camk.project_serial(self.lon, self.lat, np.full(self.lon.shape, z), *self.kp, r, c)
        return r.reshape(self.nshape), c.reshape(self.nshape)

    def _sample(self) -> np.ndarray:
        if self.window is None:
            self.out.fill(np.nan)
        else:
            # the cube's sample_bilinear to the bit, for the one float32 band without nodata (p2 ninth round)
            svk.sample_bilinear_nan(self.window[0], self.row, self.col, float(self.r0), float(self.c0), self.out[0])
        return self.out[0]

    def sample(self, z) -> np.ndarray:
        """(ny, nx) float32 samples of the image at height z for every cell (NaN outside)."""
        if self.window is not None:
            r, c = self._nodes(z)
            # the cube's interp_lattice to the bit, each lattice row interpolated once (p2 ninth round)
            svk.interp_lattice_rows(r, self.step, int(self.ni[0]), int(self.nj[0]), self.i0, self.j0, self.row)
            svk.interp_lattice_rows(c, self.step, int(self.ni[0]), int(self.nj[0]), self.i0, self.j0, self.col)
        return self._sample()

    def sample_at(self, lon, lat, h) -> np.ndarray:
        """(ny, nx) float32 samples at every cell's own height ``h`` (lon/lat of the block's cells)."""
        if self.window is not None:
            camk.project_serial(lon.ravel(), lat.ravel(), h.ravel(), *self.kp, self.row.ravel(), self.col.ravel())
        return self._sample()

    def sample_cells(self, z, cy, cx, out, hidden=None) -> None:
        """:meth:`sample` at height z written to ``out`` at the listed cells ``(cy, cx)`` only (int64
        indices of the block), equal to the bit; NaN where ``hidden`` (bool (ny, nx) or None)."""
        if self.window is None:
            out[cy, cx] = np.nan
            return
        r, c = self._nodes(z)
        hid = np.zeros((1, 1), bool) if hidden is None else hidden
        slk.sample_cells(self.window[0], r, c, self.step, int(self.ni[0]), int(self.nj[0]), self.i0, self.j0,
                         float(self.r0), float(self.c0), cy, cx, hid, hidden is not None, out)


def samples_at(views, lon, lat, surface, hidden):
    """The group's samples at every cell's own height ``surface``; NaN where the cube finds the
    cell hidden (a hidden cell's sample shows its occluder, not the cell)."""
    out = [v.sample_at(lon, lat, surface).copy() for v in views]
    if hidden is not None:
        for smp, hid in zip(out, hidden):
            smp[hid] = np.nan
    return out
