"""Same-date multi-view height sweep, one tile in numpy: what a dask task runs.

Images of one date (a stereo pair or triplet, ``date_group`` in the cube) see one surface. Sampled
at the *right* heights they show the same place, so they agree; where the surface moved since the
DSM was made, they agree at another height. For each DSM cell we sweep candidate heights ``z``,
sample every image of the group at ``(lon, lat, z)`` (RPC + bias, bilinear, the cube's lattice
and sampling kernels), and keep the height where the group agrees best:

* **agreement** ``s(z)``: the normalised cross-correlation of two images' samples in a
  ``(2r+1)²`` window of DSM cells around the cell (all at height ``z``: a fronto-parallel window
  on the ground grid), averaged over the group's pairs. Pearson correlation ignores gain and
  offset between the images, so it holds across sensors of one date.
* **candidate heights**: from the lowest DSM height of the tile and its halo minus a margin, to
  the higher of the tile's highest surface and that low point plus the scene's relief (the
  tallest thing the scene holds could stand anywhere, e.g. a new building on flat ground), plus
  the margin. The margin is :data:`MARGIN_STEPS` steps: one step brackets a maximum at the end
  of the range for the sub-step parabola, the others absorb DSM noise at the extremes. The
  candidates are multiples of the step, the same lattice in every tile.
* **step**: the height change that moves the pair's relative displacement on the ground grid by
  :data:`STEP_FRACTION` of a cell, ``step = STEP_FRACTION / |los_a - los_b|`` with ``los`` the
  line-of-sight field (cells per metre, :func:`offnadir.cube.geometry.los_on_grid`); for a triplet
  the largest pairwise ``|los_a - los_b|`` (the finest step). ``B/H = |los_a - los_b| * cell``.
* **the DSM's own heights first**: the agreement ``s0`` is also measured with every cell sampled at
  its DSM height (windows that follow the DSM, walls and roofs included; cells the cube finds
  hidden left out). Where ``s0`` is within :data:`SE_FACTOR` standard errors of a correlation,
  ``(1 - s*²) / sqrt(N)`` with N the window's cells, of the best swept agreement ``s*``, the
  images give no evidence that the surface moved: ``dh = 0`` and ``dh_score = s0``. This removes
  the fronto-parallel window's bias at unchanged height steps.
* **effective samples** ``N_eff`` (:func:`effective_samples`): the window's cells are not
  independent where the images' disagreement is smooth (blur, resampling of weak texture):
  Bartlett's formula gives ``N_eff = N / S`` from the disagreement's autocorrelation, measured at
  the DSM heights and at each cell's best height (the larger count of the two). With
  ``dsm_test="effective"`` (not the default) ``dh_sigma`` (below) uses it, and so does a
  stricter test of the DSM height (:func:`beats_dsm`: ``atanh(s*) - atanh(s0) > SE_FACTOR *
  sqrt(2 / (N_eff - 3))``, the difference of two independent Fisher z's). It is not the
  default: on the hard simulated stereo
  scenes (seeds 0-2) it cut ground false alarms from 9-12 % to 6-9.5 % of unchanged ground and
  raised elevated F1 by 0-1.3 points, but on the Kahramanmaraş pair it left a third of the
  changed cells at dh = 0 (median |dh - CARS| 1.16 -> 2.39 m; change-stage F1 0.722 -> 0.690,
  changed objects found 84 -> 62 of 100): real changes are as weak per window as the false
  matches; telling them apart needs evidence pooled over a region, not one window.
* **sub-step**: a parabola through the best score and its neighbours (:func:`sweep_kernels.refine`).
* **uncertainty** ``dh_sigma``: treat ``E(z) = 2N(1 - s(z))`` as the sum of squared differences of
  the two normalised windows (N cells) whose per-cell residual variance at the best height is
  ``2 (1 - s*)``. Its log-likelihood ``-E / (2 * 2(1 - s*))`` has curvature ``N a / (2 (1 - s*))``
  with ``a = -s''(z*)``, so ``sigma_fit² = 2 (1 - s*) / (N a)`` with N independent cells.
  The parabola's sub-step interpolation adds at most half a step of bias (uniform:
  ``step² / 12``): ``dh_sigma = sqrt(sigma_fit² + step² / 12)``. N is the window's cells, or
  ``N_eff`` (above) with ``dsm_test="effective"``: a smooth disagreement, a wider uncertainty. The DSM's own error is not in it.

Cells not visible (cube ``visible`` != 1) in any image of the group, DSM nodata, cells whose
best height is at either end of the range (no bracketed maximum), and cells whose best agreement
is no higher than noise alone reaches (:func:`noise_peak`: textureless windows) get NaN.
"""

from __future__ import annotations

import math

import numpy as np

from offnadir.camera import kernels as camk
from offnadir.cube import geometry
from offnadir.cube import kernels as cubek
from offnadir.cube import sweep_kernels as swk
from offnadir.cube.tile import height_block, lonlat_block

#: fraction of a DSM cell the pair's relative displacement moves per height step: a quarter cell
#: keeps the correlation peak (about two cells wide for bilinear samples) sampled by >= 8 steps
STEP_FRACTION = 0.25
#: NCC window half-size in cells: a 13x13 window (169 cells: the standard error of a correlation
#: near 0 is 1/sqrt(166) ~ 0.08, so a wrong height rarely looks as good as the right one) stays
#: inside the smallest changes of interest (100 m², 20x20 cells at 0.5 m). On the Kahramanmaraş
#: pair a 7x7 window left 25 % of unchanged cells beyond 3 m against 13 % (eval_sweep_real.py)
WINDOW_RADIUS = 6
#: a window needs at least this fraction of its cells sampled in both images
MIN_WINDOW_FRACTION = 0.5
MARGIN_STEPS = 4
#: the height of one storey (m): a height change below it is not a building-scale change
STOREY_M = 3.0
#: regions of change narrower than a room (m) are dropped (a morphological opening then a closing
#: of that width): no building part that appears or vanishes is narrower, while the window's
#: fattening at height steps leaves rims about that wide
MIN_WIDTH_M = 2.5
#: the DSM height is kept (dh = 0) where its agreement is within this many standard errors of
#: a correlation, (1 - s²) / sqrt(N), of the best agreement (with dsm_test="effective": unless the
#: best beats it by this many standard errors of the difference of two Fisher-z correlations,
#: sqrt(2 / (N_eff - 3))): the images give no evidence that the surface moved (two standard
#: errors: a 2.3 % one-sided false-alarm rate for Gaussian errors)
SE_FACTOR = 2.0


def pair_geometry(plan, members) -> dict:
    """Lines of sight of the group's images at the DSM centre, the pairs, B/H and the height step."""
    dsm = plan.dsm
    ny, nx = dsm.shape
    i = np.array([(ny - 1) / 2.0])
    j = np.array([(nx - 1) / 2.0])
    lon, lat = geometry.cell_lonlat(dsm, i, j)
    los = []
    for k in members:
        di, dj = geometry.los_on_grid(plan.images[k].camera, dsm, i, j, lon, lat, plan.z_ref)
        los.append((float(di[0]), float(dj[0])))
    cell = abs(float(dsm.transform[0]))
    pairs, bh = [], []
    for a in range(len(members)):
        for b in range(a + 1, len(members)):
            d = math.hypot(los[a][0] - los[b][0], los[a][1] - los[b][1])
            pairs.append((a, b))
            bh.append(d * cell)
    dmax = max(bh) / cell
    step = STEP_FRACTION / dmax if dmax > 0 else math.nan
    return {"members": [int(k) for k in members], "pairs": pairs, "base_to_height": bh,
            "step_m": step, "los_cells_per_m": los}


def height_range(h_block, relief: float, step: float) -> tuple[float, int]:
    """(z0, n): candidate surface heights ``z0 + k step``, k < n, for a block of ellipsoidal heights.
    The candidates are multiples of ``step`` whatever the block, so neighbouring tiles sample the
    same heights (a cell's result changes with the tiling only if its best height lies outside
    one tile's range)."""
    lo = float(np.nanmin(h_block))
    hi = max(float(np.nanmax(h_block)), lo + relief)
    z0 = math.floor((lo - MARGIN_STEPS * step) / step) * step
    n = int(math.ceil((hi + MARGIN_STEPS * step - z0) / step)) + 1
    return z0, n


class _View:
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
            cubek.sample_bilinear(self.window, self.row, self.col, float(self.r0), float(self.c0), np.nan, self.out)
        return self.out[0]

    def sample(self, z) -> np.ndarray:
        """(ny, nx) float32 samples of the image at height z for every cell (NaN outside)."""
        if self.window is not None:
            r, c = self._nodes(z)
            cubek.interp_lattice(r, self.step, int(self.ni[0]), int(self.nj[0]), self.i0, self.j0, self.row)
            cubek.interp_lattice(c, self.step, int(self.ni[0]), int(self.nj[0]), self.i0, self.j0, self.col)
        return self._sample()

    def sample_at(self, lon, lat, h) -> np.ndarray:
        """(ny, nx) float32 samples at every cell's own height ``h`` (lon/lat of the block's cells)."""
        if self.window is not None:
            camk.project_serial(lon.ravel(), lat.ravel(), h.ravel(), *self.kp, self.row.ravel(), self.col.ravel())
        return self._sample()


def _agreement(samples, pairs, radius, min_count, ncc, work, out):
    """Mean over the pairs of the windowed NCC of their samples."""
    out.fill(0.0)
    for a, b in pairs:
        swk.window_ncc(samples[a], samples[b], radius, min_count, ncc, work)
        out += ncc
    out /= len(pairs)


def _lag_corr(smp, axis: int, lag: int, radius: int, min_count: float) -> np.ndarray:
    """Windowed correlation of an image's samples with themselves shifted by ``lag`` cells along
    ``axis``, on the (ny, nx) grid (the last ``lag`` rows/columns repeat the nearest value);
    NaN where a window has too few pairs or no variance."""
    ny, nx = smp.shape
    sl0 = (slice(None, -lag), slice(None)) if axis == 0 else (slice(None), slice(None, -lag))
    sl1 = (slice(lag, None), slice(None)) if axis == 0 else (slice(None), slice(lag, None))
    a0 = np.ascontiguousarray(smp[sl0])
    a1 = np.ascontiguousarray(smp[sl1])
    out = np.empty(a0.shape, np.float32)
    swk.window_ncc(a0, a1, radius, min_count, out, np.empty((7,) + a0.shape))
    full = np.empty((ny, nx))
    full[sl0] = out
    if axis == 0:
        full[ny - lag:] = out[-1]
    else:
        full[:, nx - lag:] = out[:, -1:]
    return full


def effective_samples(samples, pairs, radius: int, min_count: float) -> np.ndarray:
    """Effective number of independent samples behind each window's agreement, for the test of
    the DSM's own heights (``samples``: the group's samples at the DSM heights).

    Noise model: where the surface has not moved, the two images' samples at the DSM heights
    differ by noise only, and the correlation's sampling error comes from that difference. With
    both windows standardised (``a^``, ``b^``: zero mean, unit variance per window),
    ``r = 1 - sum(d²) / (2N)`` for ``d = a^ - b^``, and for Gaussian ``d`` with autocorrelation
    ``rho_d`` the variance of ``sum(d²)`` is ``N`` times ``S = sum over lags |k| < L of
    (1 - |k| / L) rho_d(k)²`` that of independent cells: ``N_eff = N / S`` (``N`` the window's
    cells sampled in both images). ``rho_d`` is modelled per window and axis as
    ``rho1 ** (|k| ** alpha)`` from the measured lag-1 and lag-2 correlations of ``d``, with
    ``alpha = log2(ln rho2 / ln rho1)`` clipped to [1, 2] (exponential to Gaussian decay), and
    ``S = S_y * S_x`` (separable). Independent noise per cell gives ``N_eff ~ N``; a smooth
    disagreement (blur, resampling of weak texture, a slowly varying radiometric difference)
    gives few, down to 1 for a window-wide offset. Where the surface did move, ``d`` holds the
    displaced pattern too and ``N_eff`` is underestimated: the test errs towards no change.
    For a triplet the smallest over the pairs. (ny, nx) float64, >= 1; NaN where a window has
    fewer than ``min_count`` cells."""
    ny, nx = samples[0].shape
    win = 2 * radius + 1
    k = np.arange(1, win, dtype=np.float64)[:, None, None]
    wk = 1.0 - k / win
    n_eff = np.full((ny, nx), np.inf)
    for a, b in pairs:
        valid = np.isfinite(samples[a]) & np.isfinite(samples[b])
        count = _box_count(valid, radius)
        d = (_standardise(samples[a], valid, radius, count)
             - _standardise(samples[b], valid, radius, count)).astype(np.float32)
        s = np.ones((ny, nx))
        for axis in (0, 1):
            # no variance or too few pairs: no evidence of independence (fully correlated)
            r1 = np.clip(np.nan_to_num(_lag_corr(d, axis, 1, radius, min_count), nan=1.0), 1e-3, 1.0 - 1e-6)
            r2 = np.clip(np.nan_to_num(_lag_corr(d, axis, 2, radius, min_count), nan=1.0), 1e-6, 1.0 - 1e-6)
            with np.errstate(invalid="ignore", divide="ignore"):
                alpha = np.clip(np.nan_to_num(np.log2(np.log(r2) / np.log(r1)), nan=1.0), 1.0, 2.0)
            s *= 1.0 + 2.0 * (wk * np.exp(2.0 * np.log(r1) * k ** alpha)).sum(axis=0)
        n_eff = np.minimum(n_eff, np.where(count >= min_count, count / s, np.nan))
    return np.where(np.isfinite(n_eff), np.maximum(n_eff, 1.0), np.nan)


def _standardise(x, valid, radius: int, count) -> np.ndarray:
    """``x`` minus its window mean over ``valid`` cells, divided by its window standard deviation
    (NaN outside ``valid`` and where a window has no variance)."""
    x0 = np.where(valid, x, 0.0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = _box_sum(x0, radius) / count
        var = _box_sum(x0 * x0, radius) / count - mu * mu
        return np.where(valid & (var > 0), (x0 - mu) / np.sqrt(var), np.nan)


def _box_count(mask, radius: int) -> np.ndarray:
    """Number of True cells in the (2r+1)² window around each cell (clipped at the border)."""
    return _box_sum(mask.astype(np.float64), radius)


def _box_sum(v, radius: int) -> np.ndarray:
    """Sum of ``v`` in the (2r+1)² window around each cell (clipped at the border)."""
    c = np.pad(np.cumsum(np.cumsum(v, 0), 1), ((1, 0), (1, 0)))
    ny, nx = v.shape
    y0 = np.clip(np.arange(ny) - radius, 0, ny)
    y1 = np.clip(np.arange(ny) + radius + 1, 0, ny)
    x0 = np.clip(np.arange(nx) - radius, 0, nx)
    x1 = np.clip(np.arange(nx) + radius + 1, 0, nx)
    return c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]


def beats_dsm(s_best, s_dsm, n_eff, k: float = None) -> np.ndarray:
    """True where the best swept agreement beats the agreement at the DSM's own heights by more
    than the sampling noise of two correlations: in Fisher z, ``atanh(r)`` has standard error
    ``1 / sqrt(N_eff - 3)``, so the difference of two has ``sqrt(2 / (N_eff - 3))``; the best must
    lead by ``k`` (default :data:`SE_FACTOR`) of those. Windows with ``N_eff <= 4`` hold too few
    independent samples to tell two heights apart: False (no evidence that the surface moved)."""
    k = SE_FACTOR if k is None else k
    lim = 1.0 - 1e-6
    with np.errstate(invalid="ignore", divide="ignore"):
        zb = np.arctanh(np.clip(s_best, -lim, lim))
        z0 = np.arctanh(np.clip(s_dsm, -lim, lim))
        se = np.sqrt(2.0 / (n_eff - 3.0))
        out = (zb - z0) > k * se
    out &= n_eff > 4.0
    # no agreement measured at the DSM height (e.g. hidden cells): the swept maximum stands alone
    out |= ~np.isfinite(s_dsm) & np.isfinite(s_best)
    return out


def noise_peak(n_cells: int, n_heights: int) -> float:
    """The agreement that pure noise reaches as the best of ``n_heights`` candidates: the
    correlation of ``n_cells`` independent pairs has a null standard deviation ``1 / sqrt(N - 3)``
    (Fisher), and the largest of M independent normal draws stays below ``sqrt(2 ln M)`` of them
    (the Gaussian maximum bound; the candidates are not independent, so M = n_heights is
    conservative)."""
    return math.sqrt(2.0 * math.log(max(n_heights, 2))) / math.sqrt(max(n_cells - 3, 1))


def block_bounds(plan, tile, radius: int = WINDOW_RADIUS) -> tuple[int, int, int, int]:
    """(i0, i1, j0, j1): the tile plus the window radius, clipped to the grid."""
    ny0, nx0 = plan.dsm.shape
    return max(tile.i0 - radius, 0), min(tile.i1 + radius, ny0), max(tile.j0 - radius, 0), min(tile.j1 + radius, nx0)


def sweep_tile(plan, tile, geom: dict, relief: float, visible=None, radius: int = WINDOW_RADIUS,
               dsm_test: str = "window") -> dict:
    """Best surface height of one date group over one tile, as an offset from the DSM.

    geom: :func:`pair_geometry` of the group; relief: the scene's height range (m); visible:
    (n_members, ...) cube visibility of the group's images on :func:`block_bounds` (None: all
    visible). dsm_test: the noise model of the test of the DSM height and of ``dh_sigma``,
    ``"window"`` (default: the window's cells as independent samples) or ``"effective"``
    (:func:`beats_dsm` and ``dh_sigma`` with ``N_eff``; the module docstring says what each
    costs). Returns float32 (ny, nx) arrays ``dh``, ``dh_sigma``, ``dh_score`` of the tile and
    the range used (``z0``, ``n``, ``step``)."""
    if dsm_test not in ("window", "effective"):
        raise ValueError(f"dsm_test must be 'window' or 'effective', not {dsm_test!r}")
    step = geom["step_m"]
    i0, i1, j0, j1 = block_bounds(plan, tile, radius)
    core = (slice(tile.i0 - i0, tile.i1 - i0), slice(tile.j0 - j0, tile.j1 - j0))
    nan = np.full(tile.shape, np.nan, np.float32)
    h = np.ascontiguousarray(height_block(plan, i0, i1, j0, j1), dtype=np.float64)
    h_core = h[core]
    if not np.isfinite(h_core).any() or not np.isfinite(step):
        return {"dh": nan, "dh_sigma": nan.copy(), "dh_score": nan.copy(), "z0": math.nan, "n": 0, "step": step}
    z0, n = height_range(h, relief, step)
    views = [_View(plan, plan.images[k], i0, i1, j0, j1, z0, z0 + (n - 1) * step) for k in geom["members"]]
    shape = h.shape
    best = np.full(shape, -np.inf, np.float32)
    best_k = np.full(shape, -1, np.int32)
    s_prev = np.full(shape, np.nan, np.float32)
    s_next = np.full(shape, np.nan, np.float32)
    last = np.full(shape, np.nan, np.float32)
    score = np.empty(shape, np.float32)
    ncc = np.empty(shape, np.float32)
    work = np.empty((7,) + shape)
    min_count = MIN_WINDOW_FRACTION * (2 * radius + 1) ** 2
    for k in range(n):
        z = z0 + k * step
        samples = [v.sample(z).copy() for v in views]
        _agreement(samples, geom["pairs"], radius, min_count, ncc, work, score)
        swk.update_best(score, k, best, best_k, s_prev, s_next, last)
    # agreement at the DSM's own heights (windows follow the DSM surface, walls included)
    lon, lat = lonlat_block(plan, i0, i1, j0, j1)
    samples = [v.sample_at(lon, lat, h).copy() for v in views]
    if visible is not None:
        # a hidden cell's sample shows its occluder, not the cell: keep it out of the windows
        for smp, vis in zip(samples, visible):
            smp[np.asarray(vis) != 1] = np.nan
    s_dsm = np.empty(shape, np.float32)
    _agreement(samples, geom["pairs"], radius, min_count, ncc, work, s_dsm)
    z = np.empty(shape)
    curv = np.empty(shape)
    swk.refine(best, best_k, s_prev, s_next, n, z0, step, z, curv)
    n_win = (2 * radius + 1) ** 2
    n_eff = None
    if dsm_test == "effective":
        # the noise behind the agreement: the images' disagreement at the DSM heights (the noise
        # where nothing moved) and at each cell's best height (the noise where something did), the
        # larger count of independent samples of the two (:func:`effective_samples`)
        at_best = [v.sample_at(lon, lat, np.where(np.isfinite(z), z, h)).copy() for v in views]
        n_eff = np.fmax(effective_samples(samples, geom["pairs"], radius, min_count),
                        effective_samples(at_best, geom["pairs"], radius, min_count))[core]
    z, curv = z[core], curv[core]
    s = best[core].astype(np.float64)
    s0 = s_dsm[core].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # the DSM explains the images as well as the best height does: no measurable change
        if dsm_test == "effective":
            explained = ~beats_dsm(s, s0, n_eff)
        else:
            explained = s0 >= s - SE_FACTOR * (1.0 - s * s) / math.sqrt(n_win)
        dh = np.where(explained, 0.0, z - h_core)
        s = np.where(explained, s0, s)
        # curvature of the agreement with N independent samples (window cells, or N_eff: a smooth
        # disagreement is a wider uncertainty)
        n_sig = n_win if n_eff is None else np.where(np.isfinite(n_eff), n_eff, 1.0)
        sigma = np.sqrt(2.0 * np.clip(1.0 - s, 0.0, None) / (n_sig * curv) + step * step / 12.0)
    # a best score that noise alone reaches is no measurement (textureless or unmatched windows)
    ok = np.isfinite(dh) & np.isfinite(h_core) & np.isfinite(s) & np.isfinite(sigma)
    # (M: the candidates a cell's relief range holds, the same in every tile)
    ok &= best[core] > noise_peak(n_win, int(math.ceil(relief / step)) + 2 * MARGIN_STEPS + 1)
    if visible is not None:
        ok &= np.all(np.asarray(visible)[(slice(None),) + core] == 1, axis=0)
    return {"dh": np.where(ok, dh, np.nan).astype(np.float32),
            "dh_sigma": np.where(ok, sigma, np.nan).astype(np.float32),
            "dh_score": np.where(ok, s, np.nan).astype(np.float32),
            "z0": z0, "n": n, "step": step}


def dh_change(dh, dh_sigma, cell: float, *, bound: float = STOREY_M, k_sigma: float = 2.0,
              min_width_m: float = MIN_WIDTH_M) -> np.ndarray:
    """A change map from ``dh`` alone: uint8 (y, x) 0 no change, 1 loss (lower), 2 gain (higher),
    255 not measured. A cell changes when ``|dh| > bound + k_sigma * dh_sigma`` (a storey, beyond
    the measurement's own uncertainty); then regions narrower than ``min_width_m`` are removed
    and gaps that narrow filled (binary opening then closing with a square of that width, per sign)."""
    from scipy import ndimage as ndi

    dh = np.asarray(dh, np.float64)
    sig = np.nan_to_num(np.asarray(dh_sigma, np.float64), nan=0.0)
    ok = np.isfinite(dh)
    w = max(int(round(min_width_m / abs(cell))), 1)
    st = np.ones((w, w), bool)
    out = np.where(ok, 0, 255).astype(np.uint8)
    big = ok & (np.abs(np.nan_to_num(dh)) > bound + k_sigma * sig)
    both = ndi.binary_closing(ndi.binary_opening(big, st), st) & ok
    out[both & (dh < 0)] = 1
    out[both & (dh > 0)] = 2
    return out
