"""``Camera``: an RPC model plus what maps its native pixels to the image's pixels.

``pixel = bias ∘ crop ∘ RPC(lon, lat, h)``, where ``crop`` is the affine from the full-scene RPC
frame to the pixel frame of the file (identity unless the image is a crop whose RPC is the full
scene's, as CNES crops with a sensor-geometry GeoTransform) and ``bias`` is the image-space
affine bias compensation of Fraser & Hanley, fitted by :func:`offnadir.fit_bias`.
All pixel coordinates are RPC00B native: the centre of the first pixel is (row 0, col 0).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from offnadir.camera import kernels
from offnadir.camera.rpc import RPC
from offnadir.errors import ConvergenceError

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: below this many points the serial kernel beats thread start-up
_PARALLEL_MIN = 20_000

# WGS84
_A = 6378137.0
_E2 = 6.69437999014e-3


def compose_affine(outer, inner) -> tuple[float, ...]:
    """outer ∘ inner for 2×3 affines given as (a, b, c, d, e, f) on (row, col)."""
    A = np.vstack([np.reshape(outer, (2, 3)), [0, 0, 1]])
    B = np.vstack([np.reshape(inner, (2, 3)), [0, 0, 1]])
    return tuple(float(v) for v in (A @ B)[:2].ravel())


def invert_affine(aff) -> tuple[float, ...]:
    M = np.vstack([np.reshape(aff, (2, 3)), [0, 0, 1]])
    return tuple(float(v) for v in np.linalg.inv(M)[:2].ravel())


@dataclass(frozen=True, eq=False)
class Camera:
    """A sensor model for one image. Small, immutable, picklable and dask-tokenizable."""

    rpc: RPC
    #: affine from native RPC pixels to this file's pixels (crop offset / scale); identity by default
    crop: tuple[float, ...] = IDENTITY
    #: affine bias compensation applied last (identity until :func:`offnadir.fit_bias`)
    bias: tuple[float, ...] = IDENTITY
    #: image size (rows, cols) when known
    shape: tuple[int, int] | None = None
    sensor: str | None = None
    #: acquisition time as ISO 8601 text, when the metadata gives it
    acquired: str | None = None
    #: the file the model was read from, and the format reader that read it
    source: str | None = None
    model_format: str | None = None
    #: per-GCP residuals from the bias fit (list of dicts), empty if not fitted
    bias_report: tuple = field(default=(), compare=False)
    #: where ``acquired`` was read (file and field), when known; not part of the camera's identity
    acquired_from: str | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ kernel parameters
    @property
    def affine(self) -> np.ndarray:
        """(6,) float64: bias ∘ crop, the image-space affine applied after the RPC."""
        return np.asarray(compose_affine(self.bias, self.crop), dtype=np.float64)

    def kernel_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(norm, coefs, affine) arrays for :mod:`offnadir.camera.kernels`."""
        return self.rpc.norm, self.rpc.coefs, self.affine

    @cached_property
    def _guess(self) -> np.ndarray:
        """First-order inverse (normalised L, P as linear in normalised r, c, H), fitted on a grid
        over the validity domain. Only a starting point for Newton; accuracy is not needed."""
        lon0, lon1, lat0, lat1, h0, h1 = self.rpc.domain
        g = np.linspace(0.0, 1.0, 9)
        L, P, H = np.meshgrid(g, g, [0.0, 0.5, 1.0], indexing="ij")
        lon = lon0 + L.ravel() * (lon1 - lon0)
        lat = lat0 + P.ravel() * (lat1 - lat0)
        h = h0 + H.ravel() * (h1 - h0)
        row, col = self._project_native(lon, lat, h)
        n = self.rpc
        rn = (row - n.line_off) / n.line_scale
        cn = (col - n.samp_off) / n.samp_scale
        Ln = (lon - n.lon_off) / n.lon_scale
        Pn = (lat - n.lat_off) / n.lat_scale
        Hn = (h - n.height_off) / n.height_scale
        ok = np.isfinite(rn) & np.isfinite(cn)
        A = np.column_stack([np.ones(ok.sum()), rn[ok], cn[ok], Hn[ok]])
        gl = np.linalg.lstsq(A, Ln[ok], rcond=None)[0]
        gp = np.linalg.lstsq(A, Pn[ok], rcond=None)[0]
        return np.concatenate([gl, gp]).astype(np.float64)

    def _project_native(self, lon, lat, h):
        out_r = np.empty_like(lon)
        out_c = np.empty_like(lon)
        kernels.project_serial(lon, lat, h, self.rpc.norm, self.rpc.coefs,
                               np.asarray(IDENTITY), out_r, out_c)
        return out_r, out_c

    # ------------------------------------------------------------------ public API
    def project(self, lon, lat, h, *, parallel: bool | None = None):
        """Ground -> image. ``lon``, ``lat`` (degrees) and ``h`` (metres above the WGS84 ellipsoid)
        broadcast together; returns ``(row, col)`` float64 arrays of the broadcast shape, in RPC00B
        native pixels of this image (bias and crop applied)."""
        lon, lat, h, shape = _flat64(lon, lat, h)
        out_r = np.empty_like(lon)
        out_c = np.empty_like(lon)
        norm, coefs, aff = self.kernel_params()
        k = kernels.project_parallel if _use_parallel(parallel, lon.size) else kernels.project_serial
        k(lon, lat, h, norm, coefs, aff, out_r, out_c)
        return out_r.reshape(shape), out_c.reshape(shape)

    def localize(self, row, col, h, *, tol_px: float = 1e-7, max_iter: int = 60,
                 errors: str = "raise", parallel: bool | None = None):
        """Image -> ground at given ellipsoidal heights, by damped Newton iteration on the RPC.

        Converged means the returned (lon, lat, h) projects back to within ``tol_px`` pixels of
        (row, col) on both axes. Points that do not converge raise :class:`ConvergenceError`
        (``errors="raise"``) or come back as NaN (``errors="nan"``)."""
        if errors not in ("raise", "nan"):
            raise ValueError("errors must be 'raise' or 'nan'")
        row, col, h, shape = _flat64(row, col, h)
        lon = np.empty_like(row)
        lat = np.empty_like(row)
        status = np.empty(row.shape, dtype=np.int32)
        inv = np.asarray(invert_affine(self.affine), dtype=np.float64)
        k = kernels.localize_parallel if _use_parallel(parallel, row.size) else kernels.localize_serial
        k(row, col, h, self.rpc.norm, self.rpc.coefs, inv, self._guess, float(tol_px), int(max_iter),
          lon, lat, status)
        bad = (status < 0) & np.isfinite(row) & np.isfinite(col) & np.isfinite(h)
        if bad.any():
            if errors == "raise":
                i = int(np.flatnonzero(bad)[0])
                far = int((bad & (status == -2)).sum())
                if far == 0:
                    why = f"did not converge to {tol_px:g} px"
                elif far == int(bad.sum()):
                    why = "converged only to spurious roots far outside the validity domain"
                else:
                    why = f"did not converge to {tol_px:g} px, or converged far outside the validity domain,"
                raise ConvergenceError(
                    f"{self.source or 'camera'}: localisation {why} for "
                    f"{int(bad.sum())} of {bad.size} points (first: row={row[i]:.3f}, col={col[i]:.3f}, "
                    f"h={h[i]:.2f}). Such points usually lie far outside the model's validity domain "
                    f"{_fmt_domain(self.rpc.domain)}; pass heights inside it, or errors='nan' to get NaN "
                    "for those points.",
                    n_failed=int(bad.sum()), index=np.flatnonzero(bad).reshape(-1))
            lon[bad] = np.nan
            lat[bad] = np.nan
        return lon.reshape(shape), lat.reshape(shape)

    # ------------------------------------------------------------------ geometry helpers
    def center_pixel(self) -> tuple[float, float]:
        if self.shape is not None:
            return (self.shape[0] - 1) / 2.0, (self.shape[1] - 1) / 2.0
        r, c = self.project(self.rpc.lon_off, self.rpc.lat_off, self.rpc.height_off)
        return float(r), float(c)

    def view_angles(self, row: float | None = None, col: float | None = None,
                    h: float | None = None, dh: float | None = None) -> dict:
        """Line of sight at a pixel (default: image centre), from localising it at two heights.

        Returns ``off_nadir_deg`` (angle of the line of sight from the local vertical at the ground,
        i.e. the incidence angle), ``azimuth_deg`` (clockwise from north, from the ground point
        towards the satellite) and the ground point. Relief displacement of a point of height Δh is
        Δh·tan(off_nadir) metres, pointing away from the satellite (azimuth + 180°)."""
        if row is None or col is None:
            row, col = self.center_pixel()
        h = self.rpc.height_off if h is None else h
        dh = max(abs(self.rpc.height_scale) * 0.5, 10.0) if dh is None else dh
        lon, lat = self.localize([row, row], [col, col], [h, h + dh])
        east, north = enu_offset(lon[0], lat[0], lon[1], lat[1])
        horiz = math.hypot(east, north)
        return {
            "off_nadir_deg": math.degrees(math.atan2(horiz, dh)),
            "azimuth_deg": math.degrees(math.atan2(east, north)) % 360.0,
            "lon": float(lon[0]),
            "lat": float(lat[0]),
            "h": float(h),
            "row": float(row),
            "col": float(col),
        }

    def footprint(self, h: float | None = None, n_edge: int = 8) -> list[tuple[float, float]]:
        """Ground outline (closed lon/lat ring) of the image at height ``h`` (default the model's
        height offset); needs :attr:`shape`."""
        if self.shape is None:
            raise ValueError("footprint needs the image size; this camera has no shape")
        h = self.rpc.height_off if h is None else h
        nr, nc = self.shape
        t = np.linspace(0.0, 1.0, n_edge + 1)[:-1]
        r0, c0, r1, c1 = -0.5, -0.5, nr - 0.5, nc - 0.5
        rows = np.concatenate([np.full_like(t, r0), r0 + t * (r1 - r0), np.full_like(t, r1), r1 - t * (r1 - r0)])
        cols = np.concatenate([c0 + t * (c1 - c0), np.full_like(t, c1), c1 - t * (c1 - c0), np.full_like(t, c0)])
        lon, lat = self.localize(rows, cols, np.full_like(rows, h))
        ring = [(float(a), float(b)) for a, b in zip(lon, lat)]
        return ring + ring[:1]

    # ------------------------------------------------------------------ derived cameras
    def with_bias(self, bias, report=()) -> "Camera":
        return dataclasses.replace(self, bias=tuple(float(v) for v in np.ravel(bias)), bias_report=tuple(report))

    def without_bias(self) -> "Camera":
        return dataclasses.replace(self, bias=IDENTITY, bias_report=())

    def replace(self, **kw) -> "Camera":
        return dataclasses.replace(self, **kw)

    # ------------------------------------------------------------------ identity
    def key(self) -> tuple:
        return (self.rpc.key(), tuple(self.crop), tuple(self.bias), self.shape, self.sensor,
                self.acquired, self.source, self.model_format)

    def __eq__(self, other) -> bool:
        return isinstance(other, Camera) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __dask_tokenize__(self):
        return ("offnadir.Camera",) + self.key()

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_guess", None)  # recomputed on demand; keeps pickles small and deterministic
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)

    def __repr__(self) -> str:
        s = f"Camera(sensor={self.sensor!r}, shape={self.shape}, format={self.model_format!r}"
        if self.bias != IDENTITY:
            s += ", bias-compensated"
        return s + f", source={self.source!r})"


def enu_offset(lon0, lat0, lon1, lat1) -> tuple[float, float]:
    """Local east/north metres from (lon0, lat0) to (lon1, lat1) on the WGS84 ellipsoid
    (radii of curvature at lat0: exact to first order, fine for metres-scale offsets)."""
    phi = math.radians(lat0)
    s = math.sin(phi)
    w = math.sqrt(1.0 - _E2 * s * s)
    n_rad = _A / w  # prime vertical
    m_rad = _A * (1.0 - _E2) / w**3  # meridional
    east = math.radians(lon1 - lon0) * n_rad * math.cos(phi)
    north = math.radians(lat1 - lat0) * m_rad
    return east, north


def _flat64(a, b, c):
    a, b, c = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                                  np.asarray(c, dtype=np.float64))
    shape = a.shape
    # contiguous and writable: broadcast views are read-only, and numba compiles a kernel again
    # for each read-only/writable mix of its inputs (one RFM compile per mix, in every process)
    return (np.require(a, requirements="CW").reshape(-1), np.require(b, requirements="CW").reshape(-1),
            np.require(c, requirements="CW").reshape(-1), shape)


def _use_parallel(parallel, n) -> bool:
    return (n >= _PARALLEL_MIN) if parallel is None else bool(parallel)


def _fmt_domain(d) -> str:
    return (f"lon {d[0]:.5f}..{d[1]:.5f}, lat {d[2]:.5f}..{d[3]:.5f}, h {d[4]:.1f}..{d[5]:.1f} m")
