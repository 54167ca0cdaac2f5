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
* **candidate heights**: the scene's ellipsoidal DSM heights (the plan's ``h_min`` .. ``h_max``,
  computed once) widened by a margin of :data:`MARGIN_STEPS` steps on each side, on one lattice
  (multiples of the step): the same candidates in every tile, so a cell's result does not depend
  on the tiling. One step of margin brackets a maximum at the end of the range for the sub-step
  parabola, the others absorb DSM noise at the extremes. (Each tile swept from its own lowest
  height to that plus the scene's relief before: as many candidates, but a cell whose best height
  lay outside one tile's range, or at its end, changed with the chunk size; docs/change_detection.md,
  "The height sweep does not depend on the tiling"; what it no longer seeks: a surface above the
  scene's highest DSM height, which a tile on high ground sought up to its low + relief.) Window sums are added in an order fixed by the
  grid (:func:`sweep_kernels.window_ncc`), so the agreement too is the same to the bit in any tile.
* **step**: the height change that moves the pair's relative displacement on the ground grid by
  :data:`STEP_FRACTION` of a cell, ``step = STEP_FRACTION / |los_a - los_b|`` with ``los`` the
  line-of-sight field (cells per metre, :func:`offnadir.cube.geometry.los_on_grid`); for a triplet
  the largest pairwise ``|los_a - los_b|`` (the finest step). ``B/H = |los_a - los_b| * cell``.
* **the DSM's own heights first**: the agreement ``s0`` is also measured with every cell sampled at
  its DSM height (windows that follow the DSM, walls and roofs included; cells the cube finds
  hidden left out). Where ``s0`` is within :data:`SE_FACTOR` standard errors of a correlation,
  ``(1 - s*²) / sqrt(N)`` with N the window's cells, of the best swept agreement ``s*``, the
  images give no evidence that the surface moved: ``dh = 0`` and ``dh_score = s0``. This removes
  the fronto-parallel window's bias at unchanged height steps. Where ``s0`` does not beat ``s*`` by
  that margin either (a tie, :func:`sweep_noise.unresolved`), the images cannot tell the two
  heights apart: ``dh_sigma >= |z* - h| / SE_FACTOR`` keeps the best height within reach, as the
  off-level and region tests do, rather than a zero as certain as the peak's curvature (hard
  stereo: raised roofs the fronto-parallel window loses at their edges; docs/change_detection.md,
  "Unresolved zeros").
* **a second, smaller window at a changed object's edge** (with ``off_level`` and ``window``): a zero
  whose window holds the quadrant of coherent beyond-bound answers is swept again with a 7² window;
  its height is taken at the neighbours' surface (:mod:`offnadir.cube.sweep_small`, why and measured).
* **the off-level test** (``dsm_test="off_level"``, **the default** since issue 7, H4 seventh
  round) **and the on-level test** (``"on_level"``, an option): described, with their reasons and
  measured effects, in :mod:`offnadir.cube.sweep_level`'s docstring. ``"window"`` runs the window
  test alone (the default before).
* **the DSM's prediction at the best height** (``dsm_test="prediction"``, config
  ``height_sweep.dsm_test: prediction``; not the default, see below): at a height z other than the surface's, each image
  looks through the cell at the DSM point its own ray meets, ``x - los (z - h)``, so the window
  compares two *other* places than the cell. Where the cell's texture is weak and a strong
  pattern that repeats along the pair's relative displacement lies nearby (an edge or a road
  marking parallel to the baseline), the agreement at that wrong height beats the DSM's and a
  false ``dh`` appears (hard simulated stereo scenes: 10-16 % of the unchanged cells measured
  beyond 2.5 m, almost every ground false alarm of the change stage). If the DSM is right, each
  image's samples at z are predicted by the *other* image's samples at the DSM heights read
  along this image's ray (:func:`sweep_noise.null_agreement`); noise only lowers the
  cross-image agreement below that prediction. So where the DSM height is not kept and the
  best agreement does not beat the prediction at the best height by the same :data:`SE_FACTOR`
  standard errors, the best height is no evidence of a surface there either: the cell has **no
  measurement** (NaN: neither height is shown). Closer to the DSM height than the best peak's
  full width at half maximum (``2 sqrt(s* / a)`` from its parabola) a surface at the best height
  predicts the same agreement as the DSM (the heights are not resolved), the test has no power
  and is not applied (:func:`sweep_noise.window_test`). Its cost: two more resamplings and two
  more windowed correlations per candidate height (the sweep takes ~2.5-3x the CPU). Measured
  (docs/change_detection.md): ground false alarms down on all 12 hard simulated stereo targets,
  Kahramanmaraş `dh` closer to CARS, but two of its changed objects (found by cells whose `dh`
  was wrong by tens of metres) lost on each image: hence an option, not the default.
* **the region stage** (``dsm_test="region"``, config ``height_sweep.dsm_test: region``; not the
  default): per window, a false match on weak texture (a flat agreement curve whose best height
  beats the DSM by sampling noise) looks like a real change. A real building's height change is a
  block of cells with one consistent ``dh``; so the cells that moved are grouped into regions
  (8-neighbours of one sign whose ``dh`` differ by at most :data:`STOREY_M`: a jump of a storey is
  another surface; :func:`sweep_kernels.label_consistent`), each region is given one moved
  surface, its median ``dh`` added to the DSM (a raised or lowered roof) or its median height (a
  level roof or the ground left by a demolition), the group's images are sampled and compared on
  both, and the region's mean Fisher-z lead of the agreement over the DSM heights must beat the
  sampling noise of the windows that hold the region (:func:`sweep_noise.region_se`: ``U``
  cells within a window radius, ``U / mean(N / N_eff)`` independent ones, ``N_eff`` from
  Bartlett's formula on the images' disagreement, :func:`sweep_noise.effective_samples`) by
  :data:`SE_FACTOR` standard errors after a Sidak allowance for having picked the surface among
  the candidate offsets a cell of relative displacement apart (:func:`sweep_noise.selection_z`).
  A region that fails gets ``dh = 0`` with ``dh_sigma >= |dh| / SE_FACTOR`` (the pooled test
  cannot tell the DSM height from the one claimed, so both stay within reach), rather than a
  confident zero. Regions are found in the tile and its window halo: one cut by a tile edge is
  tested on its part in each tile. Measured (docs/height_sweep.md): on the hard simulated stereo
  scenes it halves the ground false alarms and raises elevated F1 on 4 of 6 targets (mean 0.812
  -> 0.824), but on the Kahramanmaraş pair many real changes are small fragments of dh as weak
  as the false matches, and the change stage loses F1 (0.722 -> 0.694) and changed objects (84
  -> 70 of 100): hence an option, not the default.
* **sub-step**: a parabola through the best score and its neighbours (:func:`sweep_kernels.refine`).
* **uncertainty** ``dh_sigma``: treat ``E(z) = 2N(1 - s(z))`` as the sum of squared differences of
  the two normalised windows (N cells) whose per-cell residual variance at the best height is
  ``2 (1 - s*)``. Its log-likelihood ``-E / (2 * 2(1 - s*))`` has curvature ``N a / (2 (1 - s*))``
  with ``a = -s''(z*)``, so ``sigma_fit² = 2 (1 - s*) / (N a)`` with N independent cells.
  The parabola's sub-step interpolation adds at most half a step of bias (uniform:
  ``step² / 12``): ``dh_sigma = sqrt(sigma_fit² + step² / 12)`` with N the window's cells (with
  ``N_eff`` instead, Kahramanmaraş lost changed objects, 84 -> 81: docs/height_sweep.md). The
  DSM's own error is not in it.

Cells not visible (cube ``visible`` != 1) in any image of the group, DSM nodata, cells whose
best height is at either end of the range (no bracketed maximum), and cells whose best agreement
is no higher than noise alone reaches (:func:`sweep_noise.noise_peak`: textureless windows) get NaN.
"""

from __future__ import annotations

import math

import numpy as np

from offnadir.cube import geometry
from offnadir.cube import sweep_level as SL
from offnadir.cube import sweep_noise as SN
from offnadir.cube import sweep_small as SS
from offnadir.cube import sweep_views as SV
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
#: a correlation, (1 - s²) / sqrt(N), of the best agreement (the region stage: unless the region's
#: lead beats this many standard errors after the selection allowance): the images give no
#: evidence that the surface moved (two standard errors: a 2.3 % one-sided false-alarm rate for
#: Gaussian errors)
SE_FACTOR = 2.0
#: the tests of the DSM height :func:`sweep_tile` knows (config ``height_sweep.dsm_test``)
DSM_TESTS = ("window", "region", "prediction", "off_level", "on_level")
#: the default: the window test, then the off-level test (issue 7, H4 seventh round: with the
#: change stage's later rules, hard stereo elevated F1 +0.006 at 256², equal at 1024², ground false
#: alarms down, Kahramanmaraş' F1 and AUC kept, but one changed object of 100 lost per image there;
#: docs/change_detection.md, "The off-level test as the default")
DSM_TEST = "off_level"
#: the on-level test compares the two windows on the cell's level's cells alone (where they differ)
ON_LEVEL_ONLY = False
#: the on-level test leaves out the cells beside a wall (3x3 DSM range of a storey or more): there the
#: DSM heights show no single surface (mixed pixels, façades) and a moved level lined up better on
#: unchanged cells (hard stereo mean 0.863 -> 0.866 with it; docs/change_detection.md)
ON_LEVEL_RIM_OUT = True


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


def height_range(h_lo: float, h_hi: float, step: float) -> tuple[float, int]:
    """(z0, n): candidate surface heights ``z0 + k step``, k < n, for a scene whose ellipsoidal
    DSM heights lie in ``[h_lo, h_hi]`` (the plan's range: every tile gets the same candidates,
    so a cell's result does not depend on the tiling). The candidates are multiples of ``step``."""
    z0 = math.floor((float(h_lo) - MARGIN_STEPS * step) / step) * step
    n = int(math.ceil((float(h_hi) + MARGIN_STEPS * step - z0) / step)) + 1
    return z0, n


def _agreement(samples, pairs, radius, min_count, ncc, work, out, origin=(0, 0)):
    """Mean over the pairs of the windowed NCC of their samples (origin: the grid cell of the
    samples' cell (0, 0), which fixes the order of the window sums: :func:`sweep_kernels.window_ncc`)."""
    out.fill(0.0)
    for a, b in pairs:
        swk.window_ncc(samples[a], samples[b], radius, min_count, ncc, work, origin[0], origin[1])
        out += ncc
    out /= len(pairs)


def block_bounds(plan, tile, radius: int = WINDOW_RADIUS) -> tuple[int, int, int, int]:
    """(i0, i1, j0, j1): the tile plus the window radius, clipped to the grid."""
    ny0, nx0 = plan.dsm.shape
    return max(tile.i0 - radius, 0), min(tile.i1 + radius, ny0), max(tile.j0 - radius, 0), min(tile.j1 + radius, nx0)


def null_bounds(plan, tile, geom: dict, relief: float, radius: int = WINDOW_RADIUS) -> tuple[int, int, int, int]:
    """(i0, i1, j0, j1): :func:`block_bounds` widened by the farthest a member's ray moves over the
    swept heights (at most the scene's relief plus the margins, times its line of sight in cells
    per metre): the block of DSM-height samples the DSM's prediction
    (:func:`sweep_noise.null_agreement`) reads, so that it does not depend on the tiling."""
    los = max(math.hypot(*v) for v in geom["los_cells_per_m"])
    span = float(relief) + 2.0 * (MARGIN_STEPS + 1) * geom["step_m"]
    reach = int(math.ceil(los * span)) + 1 if math.isfinite(los * span) else 0
    return block_bounds(plan, tile, radius + reach)


def visibility_bounds(plan, tile, geom: dict, relief: float, dsm_test: str = DSM_TEST,
                      radius: int = WINDOW_RADIUS) -> tuple[int, int, int, int]:
    """(i0, i1, j0, j1): the block whose cube visibility :func:`sweep_tile` takes for ``dsm_test``
    (:func:`null_bounds` for ``"prediction"``, else :func:`block_bounds`)."""
    return null_bounds(plan, tile, geom, relief, radius) if dsm_test == "prediction" else \
        block_bounds(plan, tile, SS.halo(radius, dsm_test))


def sweep_tile(plan, tile, geom: dict, relief: float, visible=None, radius: int = WINDOW_RADIUS,
               dsm_test: str = DSM_TEST, bound: float = SS.DH_BOUND_M) -> dict:
    """Best surface height of one date group over one tile, as an offset from the DSM.

    geom: :func:`pair_geometry` of the group; relief: the scene's height range (m); visible:
    (n_members, ...) cube visibility of the group's images on :func:`visibility_bounds` (None:
    all visible). dsm_test: ``"off_level"`` (the default: the window test, then the off-level test),
    ``"window"`` (the window test alone), ``"region"`` (then the test pooled over each region of cells
    that moved), ``"prediction"`` (then the DSM's prediction at the best height) or ``"on_level"``; the
    module docstring says what each does and costs. Returns float32 (ny, nx) arrays ``dh``, ``dh_sigma``,
    ``dh_score`` of the tile, the range used (``z0``, ``n``, ``step``) and ``regions``: the
    number of regions tested and kept (``[0, 0]`` with ``"window"``); ``edge``: the cells swept again
    with the second, smaller window at an edge, the narrow-roof cells it read at two heights, the edge
    cells that took its height and the narrow roofs whose dh_sigma it floored (:mod:`offnadir.cube.sweep_small`,
    ``bound`` the change stage's dh bound)."""
    if dsm_test not in DSM_TESTS:
        raise ValueError(f"dsm_test must be one of {', '.join(map(repr, DSM_TESTS))}, not {dsm_test!r}")
    step = geom["step_m"]
    i0, i1, j0, j1 = block_bounds(plan, tile, SS.halo(radius, dsm_test))
    core = (slice(tile.i0 - i0, tile.i1 - i0), slice(tile.j0 - j0, tile.j1 - j0))
    nan = np.full(tile.shape, np.nan, np.float32)
    h = np.ascontiguousarray(height_block(plan, i0, i1, j0, j1), dtype=np.float64)
    if not np.isfinite(h[core]).any() or not np.isfinite(step):
        return {"dh": nan, "dh_sigma": nan.copy(), "dh_score": nan.copy(), "z0": math.nan, "n": 0, "step": step,
                "regions": [0, 0], "edge": [0, 0, 0, 0]}
    z0, n = height_range(plan.h_min, plan.h_max, step)
    views = [SV.View(plan, plan.images[k], i0, i1, j0, j1, z0, z0 + (n - 1) * step) for k in geom["members"]]
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
    # the images at the DSM's own heights (windows follow the DSM surface, walls included)
    lon, lat = lonlat_block(plan, i0, i1, j0, j1)
    # cells within one cell of relative displacement of their DSM surface agree with themselves
    level = step / STEP_FRACTION if dsm_test == "off_level" else 0.0
    predict = dsm_test == "prediction"
    if predict:  # on the block the rays reach from every swept height (the prediction reads them there)
        wi0, wi1, wj0, wj1 = null_bounds(plan, tile, geom, relief, radius)
        inner = (slice(i0 - wi0, i1 - wi0), slice(j0 - wj0, j1 - wj0))
        hw = np.ascontiguousarray(height_block(plan, wi0, wi1, wj0, wj1), dtype=np.float64)
        wide = [SV.View(plan, plan.images[k], wi0, wi1, wj0, wj1, float(np.nanmin(hw)), float(np.nanmax(hw)))
                for k in geom["members"]]
        hidden_w = None if visible is None else [np.asarray(vis) != 1 for vis in visible]
        at_wide = SV.samples_at(wide, *lonlat_block(plan, wi0, wi1, wj0, wj1), hw, hidden_w)
        del wide
        at_dsm = [np.ascontiguousarray(a[inner]) for a in at_wide]
        hidden = None if hidden_w is None else [hid[inner] for hid in hidden_w]
    else:
        hidden = None if visible is None else [np.asarray(vis) != 1 for vis in visible]
        at_dsm = SV.samples_at(views, lon, lat, h, hidden)
    null_best = np.full(shape, np.nan, np.float32)  # the DSM's prediction of the agreement at the best height
    null = np.empty(shape, np.float32)
    for k in range(n):
        z = z0 + k * step
        samples = [v.sample(z).copy() for v in views]
        _agreement(samples, geom["pairs"], radius, min_count, ncc, work, score, (i0, j0))
        if predict:
            SN.null_agreement(samples, at_wide, (i0 - wi0, j0 - wj0), geom["los_cells_per_m"], z, h,
                              geom["pairs"], radius, min_count, (ncc, work), null, (i0, j0))
            better = np.isfinite(score) & ((best_k < 0) | (score > best))
            null_best[better] = null[better]
        swk.update_best(score, k, best, best_k, s_prev, s_next, last)
    s_dsm = np.empty(shape, np.float32)
    _agreement(at_dsm, geom["pairs"], radius, min_count, ncc, work, s_dsm, (i0, j0))
    z = np.empty(shape)
    curv = np.empty(shape)
    swk.refine(best, best_k, s_prev, s_next, n, z0, step, z, curv)
    n_win = (2 * radius + 1) ** 2
    s = best.astype(np.float64)
    s0 = s_dsm.astype(np.float64)
    with np.errstate(invalid="ignore"):
        offset = z - h
    # the DSM explains the images as well as the best height does (no measurable change); or the
    # best height's agreement is what the DSM predicts there: no evidence of that height either
    explained, no_peak = SN.window_test(s, s0, null_best, offset, curv, n_win, SE_FACTOR)
    tie = SN.unresolved(explained, s, s0, n_win, SE_FACTOR)  # kept, but the best height as good
    off = np.zeros(shape, bool)
    if level > 0:
        off = SL.off_level_explained(views, at_dsm, hidden, geom["pairs"], h, best, best_k, z0, step, explained,
                                     level, radius, min_count, SE_FACTOR)
        explained |= off
    if dsm_test == "on_level":  # a kept DSM height must beat its own surface moved to the best height
        moved = SL.on_level_moved(views, lon, lat, at_dsm, hidden, geom["pairs"], h, s0, offset, explained, step,
                                  step / STEP_FRACTION, STOREY_M, radius, min_count,
                                  SN.selection_z(SE_FACTOR, n * STEP_FRACTION), ON_LEVEL_ONLY, ON_LEVEL_RIM_OUT)
        explained &= ~moved
        tie &= ~moved
    dh = np.where(explained, 0.0, offset)
    # a best score that noise alone reaches is no measurement (textureless or unmatched windows),
    # nor is a best height the DSM predicts while the DSM height does not fit either
    ok = np.isfinite(dh) & np.isfinite(h) & np.isfinite(s) & np.isfinite(curv) & ~no_peak
    # (M: the candidates a cell's relief range holds, the same in every tile)
    n_noise = int(math.ceil(relief / step)) + 2 * MARGIN_STEPS + 1
    ok &= best > SN.noise_peak(n_win, n_noise)
    if hidden is not None:
        ok &= ~np.any(hidden, axis=0)
    edge, floor, n_edge = SS.NO_EDGE, SS.NO_FLOOR, [0, 0, 0, 0]
    if SS.EDGE_SECOND and dsm_test in SS.TESTS:  # a zero at a changed object's edge, a narrow roof: the smaller window
        edge, floor, n_edge = SS.second_window(views, at_dsm, hidden, geom["pairs"], h, np.where(ok, dh, np.nan), best_k,
                                               core, bound, radius, STOREY_M, z0, step, n, n_noise, level,
                                               MIN_WINDOW_FRACTION, SE_FACTOR)
    regions = [0, 0]
    # a kept DSM height that the test cannot tell from the best one (the window test's ties, the
    # off-level test): both stay within reach
    with np.errstate(invalid="ignore"):
        undecided = np.where(tie | off, np.abs(offset) / SE_FACTOR, 0.0)
    if dsm_test == "region":
        moved = np.where(ok, dh, np.nan)
        kept, regions = _pooled_regions(views, lon, lat, h, moved, at_dsm, s0, hidden, geom["pairs"], radius,
                                        min_count, n, (ncc, work))
        # a region the pooled test cannot tell from the DSM: dh = 0, uncertain by as much as the
        # height it claimed (that height within SE_FACTOR sigmas)
        rejected = ok & (dh != 0) & ~kept
        undecided = np.fmax(undecided, np.where(rejected, np.abs(dh) / SE_FACTOR, 0.0))
        dh = np.where(rejected, 0.0, dh)
        explained |= rejected
    dh, curv, s, s0, ok, explained, undecided = (a[core] for a in (dh, curv, s, s0, ok, explained, undecided))
    s = np.where(explained, s0, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        # curvature of the agreement with the window's cells as independent samples
        sigma = np.sqrt(2.0 * np.clip(1.0 - s, 0.0, None) / (n_win * curv) + step * step / 12.0)
        sigma = np.fmax(sigma, undecided)
    ok &= np.isfinite(s) & np.isfinite(sigma)
    out = {"dh": np.where(ok, dh, np.nan).astype(np.float32), "dh_sigma": np.where(ok, sigma, np.nan).astype(np.float32),
           "dh_score": np.where(ok, s, np.nan).astype(np.float32), "z0": z0, "n": n, "step": step, "regions": regions,
           "edge": n_edge}
    SS.apply(out, edge, floor)
    return out


def _pooled_regions(views, lon, lat, h, moved, at_dsm, a_dsm, hidden, pairs, radius, min_count, n_heights, scratch):
    """The region stage (module docstring): (bool map of the cells whose region passes, [regions
    tested, regions kept]). moved: dh where measured, 0 where the DSM height explains the
    images, NaN elsewhere; a_dsm: the agreement at the DSM heights; scratch: the sweep's (ncc,
    work) arrays of the block, reused."""
    from scipy import ndimage as ndi

    lab = np.zeros(h.shape, np.int32)
    n = swk.label_consistent(moved, STOREY_M, lab)
    if n == 0:
        return np.zeros(h.shape, bool), [0, 0]
    ids = np.arange(1, n + 1)
    z_moved = h + moved
    offset = np.zeros(n + 1)
    level = np.zeros(n + 1)
    offset[1:] = ndi.median(moved, lab, ids)
    level[1:] = ndi.median(z_moved, lab, ids)
    inside = lab > 0
    n_win = (2 * radius + 1) ** 2
    n_eff = SN.effective_samples(at_dsm, pairs, radius, min_count)
    ncc, work = scratch
    leads = []
    for surface in (h + offset[lab], np.where(inside, level[lab], h)):
        smp = SV.samples_at(views, lon, lat, surface, hidden)
        a = np.empty(h.shape, np.float32)
        _agreement(smp, pairs, radius, min_count, ncc, work, a)
        leads.append(a.astype(np.float64))
        n_eff = np.fmax(n_eff, SN.effective_samples(smp, pairs, radius, min_count))
    lead = np.fmax.reduce([SN.region_lead(lab, n, a_dsm, a) for a in leads])
    se = SN.region_se(lab, n, n_eff, n_win, radius)
    z_crit = SN.selection_z(SE_FACTOR, len(leads) * n_heights * STEP_FRACTION)
    keep = np.zeros(n + 1, bool)
    with np.errstate(invalid="ignore"):
        keep[1:] = (lead > z_crit * se)[1:]
    return keep[lab] & inside, [int(n), int(keep.sum())]


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
