"""Relative bias of every image to the base, from tie points the cube makes cheap (issue 8).

Vendor RPCs of different dates miss each other by pixels. Without ground control, the images
themselves tie them: on DSM cells visible in the base and in image k, where the surface has no
height step, the base's values at a window of cells must reappear in image k at the cells'
predicted positions, up to a shift ``d = measured − predicted``. That shift is measured by
normalised cross-correlation (integer search, then Gauss-Newton sub-pixel refinement with a linear
radiometric fit, so other sun, season and sensor gain do not matter), on a sparse set of small
blocks spread over the DSM (a few hundred windows per image, not a full pass). Each measured
window centre becomes a pseudo-GCP of image k: its ground point (lon, lat, h from the DSM) and
the pixel where it was found. Fraser & Hanley's image-space affine (or the shift only, when the
points do not show that the affine predicts better: :func:`offnadir.camera.bias.choose_model`) is
fitted robustly (:func:`offnadir.camera.bias.solve_bias_robust`), the image is re-projected with
it and the shifts are measured again, until the correction moves no pixel of the image by more
than :data:`SETTLE_PX`. The base keeps its camera (with its GCP bias when the user gave GCPs);
all others follow it.

Thresholds and why:

* a window is used only if every cell is visible in both images and no two neighbouring cells
  differ in height by more than ``0.5 px / s``, where ``s`` (px per metre) is how far a height error
  moves the other image's sample relative to the base's (from the two cameras at the scene centre):
  a DSM wrong by a step's height there would misplace the window by at most half a pixel;
* a correlation counts when its peak NCC is at least ``5/sqrt(n)`` (``n`` samples: 5 standard
  deviations of the NCC of unrelated signals), the peak is not on the border of the search area,
  and the refinement's standard error is below 0.5 px;
* cells without direct sun in either image (cast shadow traced on the DSM, dilated by a cell) are
  left out when the sun is known (config, metadata or almanac): a shadow edge moves with the sun
  (:mod:`offnadir.cube.tiepoint_shade`);
* both images are smoothed by a Gaussian of :data:`SMOOTH_SIGMA_PX` before correlating (bilinear
  interpolation of near-Nyquist content biases sub-pixel shifts; on the simulator this halved the
  spread of the shifts);
* outliers (real change, cars, shadows) are removed by the robust fit (99.9 % chi-square bound on
  MAD-scaled residuals); the affine is used only when an F-test at 1e-3 shows it is needed;
* each point weighs by its refinement's standard error, carried to pixels by a variance factor the
  fit estimates (:mod:`offnadir.camera.bias_robust`: the formal errors rank points well but are ~3x
  too small on the simulator); the fit's parameter covariance gives the correction's standard
  deviation over the DSM footprint, reported, and the fit is called weak above 0.05 px;
* a coarse first round searches the full radius on a quarter of the blocks
  (:func:`first_round`); if it finds so few points that all blocks could not reach the minimum,
  the other blocks are never computed (a scene without usable texture costs a quarter of the
  pass); otherwise its fit predicts the other blocks' shifts and they are searched within the
  fit's own 99.9 % bound plus the points' p90 spread, not the full radius.
* the blocks are measured in stages (:func:`stages`: the first round's quarter, a second quarter
  in between, the rest), and a later stage only while the fit on the earlier ones is short of the
  report's own target: at least ``WEAK_POINTS`` inliers and a correction standard deviation over
  the DSM footprint of at most ``WEAK_SD_PX`` (0.05 px, half the 0.1 px agreement issue 8 aims
  at; :func:`offnadir.cube.tiebias.short_of_target`), counting the windows of one block as
  sharing their errors (cluster-robust by block: the independent-point deviation is 1.2-2.3x too
  small on real pairs and the simulator). Such a fit is not "weak" by the report's definition,
  and more points would only move it within that deviation; a scene that needs every block gets
  exactly the fit it got before the stages.

Windows are sampled on the DSM grid (one sample per cell): with a DSM much coarser than the image
pixels the windows see the image blurred, and with a much finer one they are small in pixels.

Every automatic choice is logged (logger ``offnadir.cube.tiepoints``) and the per-image report is
stored in the store's ``tie_bias`` attribute.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np

from offnadir.camera.bias import apply_affine
from offnadir.cube import tiepoint_kernels as tk
from offnadir.cube.plan import Tile
from offnadir.cube.tiepoint_shade import plan_suns, shade_heights, shaded_cells  # noqa: F401 (plan_suns re-exported)
from offnadir.errors import ConfigError

log = logging.getLogger("offnadir.cube.tiepoints")

#: a refined shift whose standard error exceeds this carries no sub-pixel information
MAX_SIGMA_PX = 0.5
#: the relative DSM error a window may suffer at a height step, in pixels
STEP_PX = 0.5
#: both images are smoothed by a Gaussian of this many pixels before correlation: bilinear
#: interpolation of content near the Nyquist frequency biases sub-pixel shifts by its phase, and
#: sharp VHR edges carry such content; sigma 0.8 px attenuates it to a few per cent
SMOOTH_SIGMA_PX = 0.8
#: a block holds BLOCK_WINDOWS x BLOCK_WINDOWS windows: larger blocks spread the occlusion halo,
#: which each block must compute, over more windows
BLOCK_WINDOWS = 6

@dataclass(frozen=True)
class TieOptions:
    enabled: bool = True
    #: "auto" | "affine" | "shift" (see offnadir.camera.bias)
    model: str = "auto"
    #: tie windows tried per image (spread over the DSM)
    points: int = 1000
    #: half-size of a tie window, in DSM cells (window 2·half+1 square)
    half: int = 5
    #: first-pass search radius (px) around the vendor prediction
    search_px: int = 10
    #: measure/fit rounds at most
    max_iter: int = 4

    @classmethod
    def from_config(cls, section: dict | None) -> "TieOptions":
        section = dict(section or {})
        unknown = set(section) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"tie_bias: unknown option(s) {', '.join(sorted(unknown))}; known: "
                              f"{', '.join(f.name for f in dataclasses.fields(cls))}.")
        opts = cls(**{k: v for k, v in section.items() if v is not None})
        if opts.model not in ("auto", "affine", "shift"):
            raise ConfigError(f"tie_bias.model must be auto, affine or shift; got {opts.model!r}.")
        for name, lo in (("points", 10), ("half", 2), ("search_px", 1), ("max_iter", 1)):
            if int(getattr(opts, name)) < lo:
                raise ConfigError(f"tie_bias.{name} must be at least {lo}; got {getattr(opts, name)!r}.")
        return opts


# ------------------------------------------------------------------------------------ geometry
def parallax_sensitivity(plan, k: int) -> float:
    """Pixels by which a 1 m height error moves image k's sample relative to the base's, at the
    scene centre (both samples mapped into image k's pixels)."""
    from offnadir.cube import geometry

    ny, nx = plan.dsm.shape
    lon, lat = geometry.cell_lonlat(plan.dsm, np.array([ny / 2.0]), np.array([nx / 2.0]))
    lon, lat, h = float(lon[0]), float(lat[0]), plan.z_ref
    dd = 1e-5

    def jac(cam):
        r0, c0 = cam.project(lon, lat, h)
        rl, cl = cam.project(lon + dd, lat, h)
        rp, cp = cam.project(lon, lat + dd, h)
        rh, ch = cam.project(lon, lat, h + 1.0)
        J = np.array([[rl - r0, rp - r0], [cl - c0, cp - c0]], dtype=np.float64) / dd
        return J, np.array([rh - r0, ch - c0], dtype=np.float64)

    Jb, hb = jac(plan.images[0].camera)
    Jk, hk = jac(plan.images[k].camera)
    # a height error dh moves the base sample by hb·dh, i.e. the ground by Jb^-1 hb dh; in image k that
    # ground move is Jk Jb^-1 hb dh, while image k's own sample moves by hk dh
    return float(np.hypot(*(hk - Jk @ np.linalg.solve(Jb, hb))))


def block_tiles(plan, opts: TieOptions) -> list[Tile]:
    """Small blocks spread evenly over the DSM, together holding about ``opts.points`` windows."""
    w = 2 * opts.half + 1
    size = BLOCK_WINDOWS * w
    ny, nx = plan.dsm.shape
    n_blocks = max(1, math.ceil(opts.points / BLOCK_WINDOWS ** 2))
    per_axis = max(1, math.ceil(math.sqrt(n_blocks)))

    def starts(length):
        fit = math.ceil(length / size)
        if fit <= per_axis:   # small DSM: tile all of it (the last block may be cut short)
            return list(range(0, length, size))
        # spread per_axis blocks evenly; their spacing is at least a block, so they do not overlap
        return sorted({int(round(v)) for v in np.linspace(0, length - size, per_axis)})

    out = {}
    for i0 in starts(ny):
        for j0 in starts(nx):
            out[(i0, j0)] = Tile(-1, -1, i0, min(i0 + size, ny), j0, min(j0 + size, nx))
    return list(out.values())


def stages(tiles, size: int) -> list[list[int]]:
    """Indices of the blocks in the order they are measured, stage by stage (each in tile order):
    the first round (:func:`first_round`), then the blocks on odd rows and odd columns of the
    block grid (a second quarter, in between the first's: together a spread half), then the rest.
    Later stages are measured only while the fit on the earlier ones is short of its target
    (:func:`offnadir.cube.tiebias.short_of_target`); empty stages are left out."""
    first = first_round(tiles, size)
    taken = set(first)
    i_starts = sorted({t.i0 for t in tiles})
    j_starts = sorted({t.j0 for t in tiles})
    second = [n for n, t in enumerate(tiles) if n not in taken
              and i_starts.index(t.i0) % 2 == 1 and j_starts.index(t.j0) % 2 == 1]
    taken.update(second)
    third = [n for n in range(len(tiles)) if n not in taken]
    return [s for s in (first, second, third) if s]


def first_round(tiles, size: int) -> list[int]:
    """Indices of the blocks of the coarse first round: every other block along both axes (a
    quarter, spread over the DSM; all of them when there are at most 4). The first round searches
    the full radius on these only; its fit predicts the others' shifts, and when it finds too few
    points the rest is never computed."""
    if len(tiles) <= 4:
        return list(range(len(tiles)))
    i_starts = sorted({t.i0 for t in tiles})
    j_starts = sorted({t.j0 for t in tiles})
    return [n for n, t in enumerate(tiles) if i_starts.index(t.i0) % 2 == 0 and j_starts.index(t.j0) % 2 == 0]


# ------------------------------------------------------------------------------------ measurement
def _mean_bands(a, nodata=None) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        a = np.where(a == nodata, np.nan, a)
    return a.mean(axis=0)


def block_data(plan, tile, half: int, pad: int, dh_step, suns=None) -> dict:
    """What the tie windows of one block need (a dask task): ``{k: dict}`` for every non-base image
    with the window templates (base values), the cells' pixel positions in image k (its camera as
    planned), the windows' centre ground points and the image-k pixels around them (``pad`` px
    beyond the cells, for the search)."""
    from offnadir.cube.tile import compute_tile

    # geometry only: the windows sample the (smoothed) images themselves below
    res = compute_tile(plan, tile, values=False, ground=True)
    h = res["dsm"].astype(np.float64)
    ny, nx = h.shape
    lon, lat = res["lon"], res["lat"]
    vis = res["visible"]
    base = _sample_smoothed(plan.images[0], res["row"][0], res["col"][0])
    w = 2 * half + 1
    dy = np.abs(np.diff(h, axis=0))
    dx = np.abs(np.diff(h, axis=1))
    dy[~np.isfinite(dy)] = 0.0
    dx[~np.isfinite(dx)] = 0.0
    # windows side by side: overlapping ones have correlated errors, which makes the F-test of the
    # affine over-confident (simulator seed 2: an affine chosen with no bias injected)
    stride = w
    centres = [(i, j) for i in range(half, ny - half, stride) for j in range(half, nx - half, stride)]
    n = w * w
    out = {}
    suns = suns or [None] * len(plan.images)
    heights = shade_heights(plan, tile, suns)
    shade0 = shaded_cells(plan, tile, suns[0], heights) if suns[0] is not None else None
    shade_k = {}
    for k in range(1, len(plan.images)):
        im = plan.images[k]
        usable = (vis[0] == 1) & (vis[k] == 1) & np.isfinite(base)
        # a cell in shadow on either date: its shadow edge moves with the sun, not with the camera
        if shade0 is not None:
            usable &= ~shade0
        if suns[k] is not None:
            if suns[k] not in shade_k:   # images of one date share their sun
                shade_k[suns[k]] = shaded_cells(plan, tile, suns[k], heights)
            shade = shade_k[suns[k]]
            if shade is not None:
                usable &= ~shade
        sel = []
        for i, j in centres:
            sl = (slice(i - half, i + half + 1), slice(j - half, j + half + 1))
            if not usable[i, j] or usable[sl].sum() < _min_n(n):
                continue
            step = max(dy[i - half:i + half, j - half:j + half + 1].max(initial=0.0),
                       dx[i - half:i + half + 1, j - half:j + half].max(initial=0.0))
            if step > dh_step[k]:
                continue
            sel.append((i, j))
        if not sel:
            continue
        P = len(sel)
        tpl = np.empty((P, n))
        rows = np.empty((P, n))
        cols = np.empty((P, n))
        for p, (i, j) in enumerate(sel):
            sl = (slice(i - half, i + half + 1), slice(j - half, j + half + 1))
            u = usable[sl]
            tpl[p] = np.where(u, base[sl], np.nan).ravel()
            rows[p] = np.where(u, res["row"][k][sl], np.nan).ravel()
            cols[p] = np.where(u, res["col"][k][sl], np.nan).ravel()
        nr, nc = im.shape
        r0 = int(max(0, math.floor(np.nanmin(rows) - pad)))
        r1 = int(min(nr, math.ceil(np.nanmax(rows) + pad) + 1))
        c0 = int(max(0, math.floor(np.nanmin(cols) - pad)))
        c1 = int(min(nc, math.ceil(np.nanmax(cols) + pad) + 1))
        if r1 - r0 < 2 or c1 - c0 < 2:
            continue
        ii = np.array([s[0] for s in sel])
        jj = np.array([s[1] for s in sel])
        out[k] = {"tpl": tpl, "rows": rows, "cols": cols,
                  "ground": np.column_stack([lon[ii, jj], lat[ii, jj], h[ii, jj]]),
                  "img": _smooth(_mean_bands(im.read_window(r0, r1, c0, c1), im.nodata)),
                  "origin": (float(r0), float(c0))}
    return out


def _smooth(img) -> np.ndarray:
    """Gaussian pre-filter (:data:`SMOOTH_SIGMA_PX`, truncated at 4 sigma, edges extended by their
    nearest value); NaN (nodata) spreads to its neighbours. The numba kernel does what
    ``scipy.ndimage.gaussian_filter(img, SMOOTH_SIGMA_PX, mode="nearest")`` did here, to the bit
    (tests/test_tie_tasks.py), without holding the GIL or importing scipy.ndimage (0.17 s of
    import, with the GIL held, that stalled both threads of the first tie-point gather)."""
    img = np.ascontiguousarray(img, dtype=np.float64)
    if SMOOTH_SIGMA_PX <= 0:
        return img
    tmp = np.empty_like(img)
    out = np.empty_like(img)
    tk.gaussian_nearest(img, smoothing_weights(SMOOTH_SIGMA_PX), tmp, out)
    return out


def smoothing_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised Gaussian weights of radius ``int(truncate * sigma + 0.5)`` (symmetric)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x ** 2)
    return np.ascontiguousarray((phi / phi.sum())[::-1])


def _sample_smoothed(im, rows, cols) -> np.ndarray:
    """Band mean of ``im``, pre-filtered, bilinear at (rows, cols); NaN outside the image."""
    out = np.full(rows.shape, np.nan)
    ok = np.isfinite(rows) & np.isfinite(cols)
    if not ok.any():
        return out
    nr, nc = im.shape
    r0 = int(max(0, math.floor(rows[ok].min()) - 4))
    r1 = int(min(nr, math.ceil(rows[ok].max()) + 5))
    c0 = int(max(0, math.floor(cols[ok].min()) - 4))
    c1 = int(min(nc, math.ceil(cols[ok].max()) + 5))
    if r1 - r0 < 2 or c1 - c0 < 2:
        return out
    img = _smooth(_mean_bands(im.read_window(r0, r1, c0, c1), im.nodata))
    rr = np.ascontiguousarray(np.where(ok, rows, np.nan), np.float64).ravel()
    cc = np.ascontiguousarray(np.where(ok, cols, np.nan), np.float64).ravel()
    vals = np.empty(rr.size)
    tk.sample(img, rr - r0, cc - c0, vals)
    return vals.reshape(rows.shape)


def _min_n(n: int) -> int:
    # DSMs from stereo have holes: a window needs 80 % of its cells usable (and no step anywhere)
    return int(math.ceil(0.8 * n))


def measure_windows(d: dict, delta, radius: int) -> np.ndarray:
    """Shifts of one block's windows in one image, its cells moved by the affine ``delta`` (the
    current bias correction). Returns a (P, 9) array: lon, lat, h, predicted row, col (centre cell),
    measured shift dr, dc, NCC and the shift's standard error (failed windows left out)."""
    tpl = d["tpl"]
    P, n = tpl.shape
    rows, cols = apply_affine(delta, d["rows"], d["cols"])
    rows = np.ascontiguousarray(rows)
    cols = np.ascontiguousarray(cols)
    r0, c0 = d["origin"]
    min_n = _min_n(n)
    ncc_min = 5.0 / math.sqrt(n)
    zero = np.zeros(P)
    surf = np.full((P, 2 * radius + 1, 2 * radius + 1), np.nan)
    tk.ncc_search(tpl, rows, cols, d["img"], r0, c0, zero, zero, int(radius), min_n, surf)
    flat = np.where(np.isfinite(surf), surf, -np.inf).reshape(P, -1)
    best = flat.argmax(axis=1)
    a, b = np.unravel_index(best, surf.shape[1:])
    peak = flat[np.arange(P), best]
    ok = (peak >= ncc_min) & (a > 0) & (a < 2 * radius) & (b > 0) & (b < 2 * radius)
    ref = np.full((P, 4), np.nan)
    tk.refine_shift(tpl, rows, cols, d["img"], r0, c0, (a - radius).astype(np.float64),
                    (b - radius).astype(np.float64), 20, 1.0, min_n, ref)
    ok &= np.isfinite(ref).all(axis=1) & (ref[:, 3] <= MAX_SIGMA_PX) & (ref[:, 2] >= ncc_min)
    centre = n // 2  # windows are square with an odd side: the centre cell
    return np.column_stack([d["ground"], rows[:, centre], cols[:, centre], ref])[ok]


# ------------------------------------------------------------------------------------ pipeline entry
def run_for_config(plan, cfg: dict, *, quiet: bool = False):
    """The pipeline's tie-bias step (see :func:`offnadir.cube.tiebias.run_for_config`)."""
    from offnadir.cube import tiebias

    return tiebias.run_for_config(plan, cfg, quiet=quiet)


def report_attrs(report) -> dict:
    """The store attributes of a tie-point report (``tie_bias``), written with the run's others."""
    from offnadir.cube import tiebias

    return tiebias.report_attrs(report)
