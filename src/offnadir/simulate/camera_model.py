"""A physical satellite camera for the simulator, and RPC00B fitting to it.

The camera is a **linear pushbroom** in Earth-centred Earth-fixed (ECEF, EPSG:4978) coordinates:

* the satellite moves on a straight line ``S(t) = S0 + V t`` (a ~7.5 km/s velocity tangent to
  the orbit; over the ~0.05 s an image of this size takes, the orbit's curvature is irrelevant);
* its attitude is fixed during the scan: a boresight ``b`` (unit, pointing from the satellite to
  the scene centre), a detector-line direction ``x`` (across track, ``⟂ b``) and the scan-plane
  normal ``n = b × x``;
* image row ``r`` is acquired at ``t = (r - row0) · line_period``; column ``c`` looks along
  ``d(c) = b + (c - col0) · ifov · x`` (a straight detector line in a pinhole focal plane).

So pixel -> line of sight is explicit (:meth:`PushbroomCamera.rays`) and ground -> pixel has a
closed form (:meth:`PushbroomCamera.project`): ``t = (P - S0)·n / (V·n)`` puts ``P`` in the scan
plane, then ``c = col0 + ((P - S(t))·x / (P - S(t))·b) / ifov``. The two are exact inverses of each
other (tested). Earth rotation, light time, aberration and refraction are left out on purpose: the
camera only has to be a plausible, exactly known geometry.

Pixels are RPC00B native (centre of the first pixel = (row 0, col 0)); heights are metres above
the WGS84 ellipsoid; ``off_nadir`` is the **view zenith angle at the scene centre** (the angle of
the line of sight from the local ellipsoid normal, what :meth:`offnadir.Camera.view_angles` calls
``off_nadir_deg``); ``azimuth`` is the direction from the ground to the satellite, clockwise from
north. The satellite's own off-nadir (pointing) angle is a few percent smaller because of Earth
curvature; :meth:`PushbroomCamera.describe` reports both.

:func:`fit_rpc` fits an RPC00B model to any ``(lon, lat, h) -> (row, col)`` function by
regularised linear least squares on a 3-D grid of ground points, and reports its error on an
independent, denser grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from offnadir.camera.rpc import RPC

# ---------------------------------------------------------------------------------------- geodesy


@lru_cache(maxsize=None)
def _transformer(src: str, dst: str):
    import pyproj

    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


def geodetic_to_ecef(lon, lat, h):
    """(lon, lat in degrees, h above the WGS84 ellipsoid) -> ECEF (x, y, z) metres, as (..., 3)."""
    lon, lat, h = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (lon, lat, h)))
    x, y, z = _transformer("EPSG:4979", "EPSG:4978").transform(lon, lat, h)
    return np.stack([np.asarray(x), np.asarray(y), np.asarray(z)], axis=-1)


def ecef_to_geodetic(p):
    """ECEF (..., 3) -> (lon, lat, h) arrays (degrees, degrees, metres above the ellipsoid)."""
    p = np.asarray(p, dtype=np.float64)
    lon, lat, h = _transformer("EPSG:4978", "EPSG:4979").transform(p[..., 0], p[..., 1], p[..., 2])
    return np.asarray(lon), np.asarray(lat), np.asarray(h)


def enu_basis(lon, lat):
    """Unit east, north, up vectors (..., 3) in ECEF at geodetic (lon, lat) in degrees."""
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    sl, cl, sp, cp = np.sin(lam), np.cos(lam), np.sin(phi), np.cos(phi)
    e = np.stack([-sl, cl, np.zeros_like(sl)], axis=-1)
    n = np.stack([-sp * cl, -sp * sl, cp], axis=-1)
    u = np.stack([cp * cl, cp * sl, sp], axis=-1)
    return e, n, u


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------- camera


@dataclass(frozen=True, eq=False)
class PushbroomCamera:
    """An exact linear-pushbroom satellite camera (see the module doc for the model)."""

    s0: tuple[float, float, float]  #: satellite position (ECEF m) at row ``row0``
    velocity: tuple[float, float, float]  #: ECEF m/s
    boresight: tuple[float, float, float]  #: unit vector b
    across: tuple[float, float, float]  #: unit vector x (detector line direction), ⟂ b
    ifov: float  #: radians per column (tangent-plane)
    line_period: float  #: seconds per row
    row0: float = 0.0
    col0: float = 0.0
    shape: tuple[int, int] | None = None  #: image (rows, cols)
    #: what the camera was built from (for reports)
    meta: dict = field(default_factory=dict, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def looking_at(cls, lon: float, lat: float, h: float, off_nadir_deg: float, azimuth_deg: float, *,
                   altitude: float = 600e3, gsd: float = 0.5, heading_deg: float = 189.0,
                   speed: float = 7560.0) -> "PushbroomCamera":
        """A camera whose central line of sight reaches ground point (lon, lat, h) with the given view
        zenith (off-nadir) angle and azimuth (ground -> satellite, clockwise from north), from a
        satellite ``altitude`` m above the ellipsoid moving with ``heading_deg`` (189°: a descending
        sun-synchronous pass). ``gsd``: metres per pixel perpendicular to the line of sight at the scene
        centre across track, and metres of ground per row along track. The scene centre is pixel
        (0, 0) until :meth:`shifted` moves the origin."""
        if not 0.0 <= off_nadir_deg < 60.0:
            raise ValueError(f"off-nadir angle {off_nadir_deg} must be in [0, 60) degrees")
        g = geodetic_to_ecef(lon, lat, h)
        e, nn, u = enu_basis(lon, lat)
        th, az = math.radians(off_nadir_deg), math.radians(azimuth_deg)
        look = math.sin(th) * math.sin(az) * e + math.sin(th) * math.cos(az) * nn + math.cos(th) * u
        # distance to the satellite: spherical first guess, then Newton on the ellipsoidal height
        r_earth = float(np.linalg.norm(g))
        rho = -r_earth * math.cos(th) + math.sqrt((r_earth * math.cos(th)) ** 2 + 2 * r_earth * altitude
                                                  + altitude ** 2)
        for _ in range(6):
            s = g + rho * look
            slon, slat, sh = ecef_to_geodetic(s)
            _, _, su = enu_basis(slon, slat)
            step = (altitude - float(sh)) / float(look @ su)
            rho += step
            if abs(step) < 1e-6:
                break
        s0 = g + rho * look
        slon, slat, _ = ecef_to_geodetic(s0)
        se, sn, _ = enu_basis(slon, slat)
        hd = math.radians(heading_deg)
        v = speed * _unit(math.sin(hd) * se + math.cos(hd) * sn)
        b = -look
        x = _unit(np.cross(v, b))  # V × b: columns grow to the right of the track (east, descending)
        n = np.cross(b, x)
        ifov = gsd / rho
        # along track: one row moves the scan plane by `gsd` metres of ground at the centre
        n_h = n - (n @ u) * u
        line_period = gsd * float(np.linalg.norm(n_h)) / float(v @ n)
        sat_off_nadir = math.degrees(math.acos(float(np.clip(b @ -_unit(s0), -1, 1))))
        meta = dict(off_nadir_deg=float(off_nadir_deg), azimuth_deg=float(azimuth_deg) % 360.0,
                    altitude_m=float(altitude), gsd_m=float(gsd), heading_deg=float(heading_deg),
                    speed_m_s=float(speed), slant_range_m=float(rho),
                    satellite_off_nadir_deg=sat_off_nadir, target_lon=float(lon), target_lat=float(lat),
                    target_h=float(h))
        return cls(tuple(map(float, s0)), tuple(map(float, v)), tuple(map(float, b)), tuple(map(float, x)),
                   float(ifov), float(line_period), 0.0, 0.0, None, meta)

    def shifted(self, d_row: float, d_col: float, shape: tuple[int, int] | None = None) -> "PushbroomCamera":
        """The same camera with pixel (row, col) renamed (row + d_row, col + d_col)."""
        from dataclasses import replace

        return replace(self, row0=self.row0 + d_row, col0=self.col0 + d_col,
                       shape=self.shape if shape is None else (int(shape[0]), int(shape[1])))

    # ------------------------------------------------------------------ vectors
    @property
    def _vec(self):
        s0 = np.asarray(self.s0)
        v = np.asarray(self.velocity)
        b = np.asarray(self.boresight)
        x = np.asarray(self.across)
        return s0, v, b, x, np.cross(b, x)

    # ------------------------------------------------------------------ geometry
    def project_ecef(self, p):
        """ECEF points (..., 3) -> (row, col), exact."""
        s0, v, b, x, n = self._vec
        p = np.asarray(p, dtype=np.float64)
        t = ((p - s0) @ n) / float(v @ n)
        w = p - s0 - t[..., None] * v
        col = self.col0 + ((w @ x) / (w @ b)) / self.ifov
        row = self.row0 + t / self.line_period
        return row, col

    def project(self, lon, lat, h):
        """(lon, lat, h) -> (row, col) native pixels, exact."""
        return self.project_ecef(geodetic_to_ecef(lon, lat, h))

    def rays(self, row, col):
        """Lines of sight of pixels: (origin (..., 3) ECEF, unit direction (..., 3)) pointing down."""
        s0, v, b, x, _ = self._vec
        row, col = np.broadcast_arrays(np.asarray(row, dtype=np.float64), np.asarray(col, dtype=np.float64))
        t = (row - self.row0) * self.line_period
        origin = s0 + t[..., None] * v
        d = _unit(b + ((col - self.col0) * self.ifov)[..., None] * x)
        return origin, d

    def localize(self, row, col, h, *, tol: float = 1e-7, max_iter: int = 12):
        """(row, col, h) -> (lon, lat): where the pixel's line of sight crosses ellipsoidal height h
        (Newton on the ray parameter; converges to ``tol`` metres in 3-4 steps)."""
        origin, d = self.rays(row, col)
        h = np.broadcast_to(np.asarray(h, dtype=np.float64), origin.shape[:-1])
        # first guess: distance along the ray to a sphere through the target height
        lam = np.full(origin.shape[:-1], self.meta.get("slant_range_m", 6e5), dtype=np.float64)
        for _ in range(max_iter):
            p = origin + lam[..., None] * d
            lon, lat, hp = ecef_to_geodetic(p)
            _, _, up = enu_basis(lon, lat)
            dh = h - hp
            lam = lam + dh / np.sum(d * up, axis=-1)
            if np.all(np.abs(dh) < tol):
                break
        p = origin + lam[..., None] * d
        lon, lat, _ = ecef_to_geodetic(p)
        return lon, lat

    def view_angles_at(self, lon, lat, h):
        """View zenith (off-nadir) angle and azimuth (ground -> satellite, clockwise from north) in
        degrees at ground points, using the satellite position when each point is imaged."""
        p = geodetic_to_ecef(lon, lat, h)
        s0, v, _, _, n = self._vec
        t = ((p - s0) @ n) / float(v @ n)
        to_sat = _unit(s0 + t[..., None] * v - p)
        e, nn, u = enu_basis(lon, lat)
        ce, cn, cu = np.sum(to_sat * e, -1), np.sum(to_sat * nn, -1), np.sum(to_sat * u, -1)
        zen = np.degrees(np.arccos(np.clip(cu, -1, 1)))
        az = np.degrees(np.arctan2(ce, cn)) % 360.0
        return zen, az

    def describe(self) -> dict:
        """Plain numbers for scene.json."""
        d = dict(self.meta)
        d.update(model="linear pushbroom (ECEF, fixed attitude, straight trajectory)",
                 ifov_rad=self.ifov, line_period_s=self.line_period, row0=self.row0, col0=self.col0,
                 shape=list(self.shape) if self.shape else None,
                 satellite_ecef_m=list(self.s0), velocity_ecef_m_s=list(self.velocity),
                 boresight_ecef=list(self.boresight), detector_line_ecef=list(self.across))
        return d


def affine_apply(aff, row, col):
    """Apply a 2x3 image affine (a, b, c, d, e, f): row' = a·row + b·col + c, col' = d·row + e·col + f."""
    a, b, c, d, e, f = aff
    return a * row + b * col + c, d * row + e * col + f


# --------------------------------------------------------------------------------------- RPC fit


def rpc_terms(L, P, H):
    """(N, 20) RPC00B monomials of normalised lon L, lat P, height H (GDAL ``gdal_rpc.cpp`` order)."""
    one = np.ones_like(L)
    return np.stack([one, L, P, H, L * P, L * H, P * H, L * L, P * P, H * H, P * L * H, L ** 3,
                     L * P * P, L * H * H, L * L * P, P ** 3, P * H * H, L * L * H, P * P * H, H ** 3], axis=-1)


def _fit_ratio(T, y, ridge: float, iters: int = 4):
    """Numerator (20) and denominator (20, first = 1) minimising |y - T a / T b| (Tao & Hu style
    re-weighted linearisation with Tikhonov regularisation on all but the constant terms)."""
    n = T.shape[1]
    w = np.ones(T.shape[0])
    reg = np.full(2 * n - 1, ridge)
    reg[0] = 0.0
    best = None
    for _ in range(iters):
        A = np.hstack([T, -y[:, None] * T[:, 1:]]) * w[:, None]
        rhs = y * w
        M = A.T @ A + np.diag(reg)
        sol = np.linalg.solve(M, A.T @ rhs)
        num, den = sol[:n], np.concatenate([[1.0], sol[n:]])
        dval = T @ den
        if np.any(np.abs(dval) < 1e-3):
            break
        best = (num, den)
        w = 1.0 / np.abs(dval)
    return best


def _fit_poly(T, y, ridge: float):
    M = T.T @ T + np.diag(np.r_[0.0, np.full(T.shape[1] - 1, ridge)])
    num = np.linalg.solve(M, T.T @ y)
    den = np.zeros(T.shape[1])
    den[0] = 1.0
    return num, den


def _eval(num, den, T):
    return (T @ num) / (T @ den)


@dataclass(frozen=True)
class RPCFit:
    rpc: RPC
    max_err_px: float  #: max over the check grid of max(|Δrow|, |Δcol|)
    rms_err_px: float  #: RMS of the 2-D error over the check grid
    n_fit: int
    n_check: int
    kind: str  #: "rational" or "polynomial" (denominators 1), whichever checked better

    def report(self) -> dict:
        return dict(max_err_px=self.max_err_px, rms_err_px=self.rms_err_px, n_fit_points=self.n_fit,
                    n_check_points=self.n_check, kind=self.kind)


def fit_rpc(project, domain, *, n_xy: int = 15, n_h: int = 9, ridge: float = 1e-12,
            source: str = "offnadir.simulate") -> RPCFit:
    """Fit an RPC00B to ``project(lon, lat, h) -> (row, col)`` over ``domain`` =
    (lon_min, lon_max, lat_min, lat_max, h_min, h_max).

    Fits on an ``n_xy × n_xy × n_h`` grid spanning the domain; checks on a denser grid offset by half
    a step (and its corners) that was not used for the fit."""
    lon0, lon1, lat0, lat1, h0, h1 = (float(v) for v in domain)
    lon_off, lat_off, h_off = (lon0 + lon1) / 2, (lat0 + lat1) / 2, (h0 + h1) / 2
    lon_sc, lat_sc, h_sc = (lon1 - lon0) / 2, (lat1 - lat0) / 2, max((h1 - h0) / 2, 1.0)

    def grid(nxy, nh, shift):
        a = (np.arange(nxy) + shift) / (nxy - 1 + 2 * shift)
        c = (np.arange(nh) + shift) / (nh - 1 + 2 * shift)
        L, P, H = np.meshgrid(2 * a - 1, 2 * a - 1, 2 * c - 1, indexing="ij")
        return L.ravel(), P.ravel(), H.ravel()

    L, P, H = grid(n_xy, n_h, 0.0)
    row, col = project(lon_off + L * lon_sc, lat_off + P * lat_sc, h_off + H * h_sc)
    row_off, col_off = (row.max() + row.min()) / 2, (col.max() + col.min()) / 2
    row_sc, col_sc = max((row.max() - row.min()) / 2, 1.0), max((col.max() - col.min()) / 2, 1.0)
    T = rpc_terms(L, P, H)
    yr, yc = (row - row_off) / row_sc, (col - col_off) / col_sc

    Lc, Pc, Hc = grid(2 * n_xy + 1, 2 * n_h + 1, 0.5)
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1)
    Lc, Pc, Hc = np.r_[Lc, corners[0]], np.r_[Pc, corners[1]], np.r_[Hc, corners[2]]
    rc, cc = project(lon_off + Lc * lon_sc, lat_off + Pc * lat_sc, h_off + Hc * h_sc)
    Tc = rpc_terms(Lc, Pc, Hc)

    best = None
    for kind in ("polynomial", "rational"):
        if kind == "polynomial":
            fr, fc = _fit_poly(T, yr, ridge), _fit_poly(T, yc, ridge)
        else:
            fr, fc = _fit_ratio(T, yr, ridge), _fit_ratio(T, yc, ridge)
            if fr is None or fc is None:
                continue
        er = _eval(*fr, Tc) * row_sc + row_off - rc
        ec = _eval(*fc, Tc) * col_sc + col_off - cc
        mx = float(np.max(np.maximum(np.abs(er), np.abs(ec))))
        if best is None or mx < best[0]:
            best = (mx, float(np.sqrt(np.mean(er ** 2 + ec ** 2))), kind, fr, fc)
    mx, rms, kind, fr, fc = best
    rpc = RPC(line_off=float(row_off), samp_off=float(col_off), lat_off=lat_off, lon_off=lon_off,
              height_off=h_off, line_scale=float(row_sc), samp_scale=float(col_sc), lat_scale=lat_sc,
              lon_scale=lon_sc, height_scale=h_sc,
              line_num=tuple(map(float, fr[0])), line_den=tuple(map(float, fr[1])),
              samp_num=tuple(map(float, fc[0])), samp_den=tuple(map(float, fc[1])),
              source=source).validated()
    return RPCFit(rpc, mx, rms, int(L.size), int(Lc.size), kind)
