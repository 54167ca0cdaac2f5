"""The change-detection stage as dask work over the tiles of the cube. Wiring only: every task
calls a function of :mod:`offnadir.change.tile`; the math lives in kernels/irmad/criteria/decide.

Passes (each a set of per-tile tasks; reductions are dask tree reductions of small sums):

0. statistics: height range, band means and deviations (reduction);
A. segmentation: per tile with a halo, write ``patch`` (elevated IDs provisional), ``elevated``,
   ``illumination``; then the pairs of elevated patches facing each other across tile borders
   (reduction), a union-find on the client, and a relabel of the tiles whose IDs moved;
C. IR-MAD: one reduction of weighted moments per iteration (patch method and ortho baseline
   fitted in the same passes), until the canonical correlations settle;
C'. robust scales of the MAD variates (histogram reduction);
D. per-patch sums (grouped by patch ID, tree-merged);
   decisions on the client (small per-patch table);
E. maps: ``change``/``score`` (and ``change_ortho``/``score_ortho``) written tile by tile.

With a Zarr store, tasks read and write regions of the store (bounded memory per task) and a
rerun with ``resume`` skips the tiles already segmented or written; without one (in-memory
cube, threaded scheduler) the same tasks work on numpy arrays.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import dask
import numpy as np

from offnadir.change import irmad, segment
from offnadir.change import tile as T
from offnadir.change.options import ChangeOptions
from offnadir.cube.plan import Tile
from offnadir.errors import DataError

_LOG = logging.getLogger("offnadir.change.stage")
PROGRESS = "change_tiles"
#: automatic NDVI thresholds (Otsu) are never below this: no surface under 0.2 is vegetation
NDVI_MIN = 0.2
SEGMENTED, WRITTEN = 1, 4


# ----------------------------------------------------------------------------- helpers
def _tiles(chunks_y, chunks_x):
    out, i0 = [], 0
    for a, cy in enumerate(chunks_y):
        j0 = 0
        for b, cx in enumerate(chunks_x):
            out.append(Tile(a, b, i0, i0 + cy, j0, j0 + cx))
            j0 += cx
        i0 += cy
    return out


def _tree(parts, combine, k=8):
    parts = list(parts)
    if not parts:
        return None
    while len(parts) > 1:
        parts = [dask.delayed(combine, pure=True)(*parts[i:i + k]) for i in range(0, len(parts), k)]
    return parts[0]


def _band_roles(band_names, n_bands, opts):
    """0-based (red, nir) indices: options, else band descriptions, else B,G,R,NIR for 4 bands."""
    from offnadir.errors import ConfigError

    red = opts.red_band - 1 if opts.red_band else None
    nir = opts.nir_band - 1 if opts.nir_band else None
    for k, v in ((red, "red_band"), (nir, "nir_band")):
        if k is not None and not 0 <= k < n_bands:
            raise ConfigError(f"change.{v} = {k + 1} but the images have {n_bands} band(s).")
    names = [str(b).strip().lower() for b in (band_names or [])]
    if red is None and names:
        for k, nm in enumerate(names):
            if nm in ("r", "red"):
                red = k
    if nir is None and names:
        for k, nm in enumerate(names):
            if nm in ("nir", "ir", "near-infrared", "near infrared", "nir1"):
                nir = k
    if red is None and nir is None and n_bands == 4 and not any(names):
        red, nir = 2, 3
    if red is None or nir is None:
        return None, None
    return red, nir


def _image_band_names(paths):
    try:
        import rasterio

        with rasterio.open(paths[0]) as src:
            return list(src.descriptions)
    except Exception:  # noqa: BLE001 - band names are a convenience only
        return []


class _Runner:
    def __init__(self, io, cube, opts: ChangeOptions, chunks_yx, *, client=None, quiet=True):
        self.io = io
        self.cube = cube
        self.opts = opts
        self.client = client
        self.quiet = quiet
        self._futures = {}
        self.tiles = _tiles(*chunks_yx)
        self.chunks_yx = chunks_yx
        ny, nx = cube.sizes["y"], cube.sizes["x"]
        self.shape = (ny, nx)
        self.n_images = cube.sizes["image"]
        self.n_bands = cube.sizes["band"]
        if self.n_images < 2:
            raise DataError("change detection needs at least two images (the first is the base); the cube has "
                            f"{self.n_images}.")
        tr = cube.rio.transform() if cube.rio.crs is not None else None
        if tr is not None:  # metres per cell; refuses non-square or geographic grids it cannot treat as square
            from offnadir.io.dsm import change_cell_size

            self.cell = change_cell_size(cube.rio.crs, tr, self.shape)
        else:
            self.cell = float(abs(cube["x"].values[1] - cube["x"].values[0]))
        self.targets = tuple(range(1, self.n_images))
        self.want_patch = opts.method == "patch"
        self.want_ortho = opts.method == "ortho" or bool(opts.baseline)

    # -- running tasks
    def compute(self, tasks, desc="tiles"):
        if not tasks:
            return []
        if self.client is not None:
            from offnadir.cluster import run_tasks

            return run_tasks(self.client, tasks, desc=desc, quiet=self.quiet)
        return list(dask.compute(*tasks))

    def reduce(self, parts, combine):
        root = _tree(parts, combine)
        if root is None:
            return None
        if self.client is not None:
            return self.client.compute(root).result()
        return root.compute()

    def shared(self, obj):
        """A large argument shared by many tasks (scattered once on a cluster)."""
        if self.client is not None:
            # keep one future per object alive for the whole run (re-scattering an object whose
            # earlier future was released loses the data under running tasks)
            key = id(obj)
            if key not in self._futures:
                self._futures[key] = (obj, self.client.scatter(obj, broadcast=True, hash=False))
            return self._futures[key][1]
        return dask.delayed(obj, pure=True, traverse=False)

    def log(self, msg):
        if not self.quiet:
            print(f"offnadir: {msg}", file=sys.stderr)

    # -- passes
    def context(self):
        opts = self.opts
        r = segment.opening_radius(opts, self.cell)
        st = self.reduce([dask.delayed(T.stats, pure=True)(self.io, self.shape, self.n_images, self.n_bands, t, r)
                          for t in self.tiles], T.add_stats)
        n = np.maximum(st["n"], 1)[:, None]
        mean = st["s"] / n
        std = np.sqrt(np.maximum(st["ss"] / n - mean**2, 0.0))
        if st["n"][0] == 0:
            raise DataError("no DSM cell is visible in the base image: nothing to compare.")
        for t in self.targets:
            if st["n"][t] == 0:
                raise DataError(f"no DSM cell is visible in image {self.cube['image'].values[t]}: nothing to compare.")
        band_std = np.where(std[0] > 0, std[0], 1.0)
        sun = self._sun() if opts.shadows else ()
        names = _image_band_names([im["path"] for im in json.loads(self.cube.attrs.get("images", "[]"))]) \
            if "images" in self.cube.attrs else []
        red, nir = _band_roles(names, self.n_bands, opts) if opts.vegetation else (None, None)
        az = self.cube["azimuth"].values if "azimuth" in self.cube.coords else np.full(self.n_images, np.nan)
        off = self.cube["off_nadir"].values if "off_nadir" in self.cube.coords else np.full(self.n_images, np.nan)
        from offnadir.change.cells import max_height_change

        self.max_dh = max_height_change(opts, st["above"])
        self.log(f"parallax searches cover height changes up to {self.max_dh:.1f} m "
                 f"({'option' if opts.max_height_change is not None else 'tallest object above the local ground'})")
        self.az, self.off = az, off
        shifts = tuple(T.parallax_offsets(az[t], off[t], self.max_dh, self.cell) if t else
                       (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)) for t in range(self.n_images))
        self.ctx = T.Context(shape=self.shape, n_images=self.n_images, n_bands=self.n_bands, cell=self.cell,
                             opts=opts, targets=self.targets, band_mean=mean, band_std=band_std,
                             h_range=(st["h_min"], st["h_max"]), sun=sun, red=red, nir=nir, shifts=shifts)
        return self.ctx

    def _sun(self):
        """Per image (grid azimuth, elevation) in radians, from the cube's sun (config, metadata,
        almanac) or estimated from the image and the DSM; () when some image's sun stays unknown
        (said in the log). The choices go to the store's ``change_sun`` attribute."""
        import logging

        from offnadir.change.illumination import resolve_suns

        lg = logging.getLogger("offnadir.change.stage")
        suns = resolve_suns(self.cube, tol=float(self.opts.sun_tolerance), log=lg)
        self.sun_report = suns
        for s in suns:
            self.log(f"sun of {s['image']}: " + ("unknown" if s["azimuth"] is None else
                     f"azimuth {s['azimuth']:.1f} deg, elevation {s['elevation']:.1f} deg") + f" ({s['source']})")
        if any(s["azimuth"] is None for s in suns):
            lg.warning("shadow handling is off: the sun of %s is unknown",
                       ", ".join(s["image"] for s in suns if s["azimuth"] is None))
            return ()
        return tuple((math.radians(s["azimuth"] + s["grid_north_deg"]), math.radians(s["elevation"])) for s in suns)

    def segment(self, done):
        ctx = self.shared(self.ctx)
        todo = [t for t in self.tiles if not (done[t.ti, t.tj] & SEGMENTED)]
        self.log(f"segmentation: {len(todo)} of {len(self.tiles)} tiles")
        tasks = [dask.delayed(_segment_and_mark, pure=False)(self.io, ctx, t) for t in todo]
        self.compute(tasks, desc="segmentation")
        pairs = self.compute([dask.delayed(T.tile_border_pairs, pure=True)(self.io, ctx, t) for t in self.tiles],
                             desc="patch borders")
        pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
        old, new = segment.join_components(pairs)
        if len(old):
            gi = (old - 1) // self.shape[1]
            gj = (old - 1) % self.shape[1]
            touched = {(self._tile_of(a, b)) for a, b in zip(gi, gj)}
            tl = [t for t in self.tiles if (t.ti, t.tj) in touched]
            on = self.shared((old, new))
            self.compute([dask.delayed(_relabel, pure=False)(self.io, ctx, t, on) for t in tl], desc="joining patches")
        self.log(f"patches joined across tile borders: {len(old)}")

    def _tile_of(self, i, j):
        cy, cx = self.chunks_yx
        return (int(np.searchsorted(np.cumsum(cy), i, side="right")),
                int(np.searchsorted(np.cumsum(cx), j, side="right")))

    def fit(self):
        opts, ctx = self.opts, self.ctx
        models = {t: [None] * T.N_STRATA for t in self.targets} if self.want_patch else None
        omodels = {t: None for t in self.targets} if self.want_ortho else None
        p = self.n_bands
        history = []
        for it in range(1, opts.irmad_iterations + 1):
            cx = self.shared(ctx)
            parts = [dask.delayed(T.irmad_tile, pure=True)(self.io, cx, t, models, omodels, self.want_patch,
                                                           self.want_ortho) for t in self.tiles]
            sums = self.reduce(parts, T.add_irmad)
            done = True
            for t in self.targets:
                if self.want_patch:
                    s = sums[("patch", t)]
                    new = [irmad.solve(s, k, ctx.band_mean[0], ctx.band_mean[t], iterations=it,
                                       previous=models[t][k], tol=opts.irmad_tolerance) for k in range(T.N_STRATA)]
                    if new[0] is None:
                        raise DataError(f"too few cells visible in both the base and image "
                                        f"{self.cube['image'].values[t]} to fit IR-MAD ({int(s['n'][0])}; need "
                                        f"{max(10 * p, 2 * p + 2)}).")
                    done &= all(m is None or m.converged for m in new)
                    models[t] = new
                if self.want_ortho:
                    s = sums[("ortho", t)]
                    m = irmad.solve(s, 0, ctx.band_mean[0], ctx.band_mean[t], iterations=it, previous=omodels[t],
                                    tol=opts.irmad_tolerance)
                    if m is None:
                        raise DataError(f"too few cells in both the base and image {self.cube['image'].values[t]} "
                                        "to fit IR-MAD for the ortho baseline.")
                    done &= m.converged
                    omodels[t] = m
            history.append(it)
            if done:
                break
        self.log(f"IR-MAD: {len(history)} iteration(s)")
        self.models, self.omodels = models, omodels
        return models, omodels

    def robust_scales(self):
        """Robust scale of every MAD variate (1.4826 median |M_i|) from a histogram reduction."""
        cx = self.shared(self.ctx)
        mo = self.shared((self.models, self.omodels))
        parts = [dask.delayed(_scale_tile, pure=True)(self.io, cx, t, mo, self.want_patch, self.want_ortho)
                 for t in self.tiles]
        hist = self.reduce(parts, T.add_hist)
        scales, oscales = {}, {}
        for t in self.targets:
            if self.want_patch:
                scales[t] = [irmad.robust_scale(hist[("patch", t, k)]) if ("patch", t, k) in hist else None
                             for k in range(T.N_STRATA)]
            if self.want_ortho:
                oscales[t] = irmad.robust_scale(hist[("ortho", t)])
        self.scales, self.oscales = scales, oscales
        from offnadir.change import decide as D

        self.ndvi_thresholds = {}
        for t in self.targets:
            if ("ndvi_base", t) in hist:
                self.ndvi_thresholds[t] = tuple(
                    float(self.opts.ndvi_threshold) if self.opts.ndvi_threshold is not None else
                    max(NDVI_MIN, D.otsu(hist[(name, t)], -1.0, 1.0)) for name in ("ndvi_base", "ndvi_target"))
        return scales, oscales

    def patch_sums(self):
        if not self.want_patch:
            return None
        cx = self.shared(self.ctx)
        mo = self.shared((self.models, self.scales))
        parts = [dask.delayed(_patch_tile, pure=True)(self.io, cx, t, mo) for t in self.tiles]
        return self.reduce(parts, T.add_patch)

    def decide(self, red):
        from offnadir.change import decide as D

        opts, ctx = self.opts, self.ctx
        p = self.n_bands
        decisions, per_target, ortho = {}, {}, {}
        if self.want_patch:
            for t in self.targets:
                tb = D.target_table(red, t, p, self.scales[t], ctx.shifts[t][2], self.models[t][0], self.cell)
                tb.ndvi_thresholds = self.ndvi_thresholds.get(t)
                d = D.decide(tb, opts)
                d["used"] = tb.used
                d["ndvi_base"], d["ndvi_target"] = tb.ndvi_base, tb.ndvi_target
                per_target[t] = d
                decisions[t] = (red["ids"], d["change"], d["score"])
        if self.want_ortho:
            from offnadir.change.ortho import threshold

            for t in self.targets:
                ortho[t] = (self.omodels[t],) + threshold(opts, self.omodels[t], self.oscales[t])
        self.decisions, self.per_target, self.ortho = decisions, per_target, ortho
        return decisions

    def write_maps(self, done, mark):
        cx = self.shared(self.ctx)
        dec = self.shared((self.decisions, self.ortho))
        todo = [t for t in self.tiles if not (done[t.ti, t.tj] & WRITTEN)]
        tasks = [dask.delayed(_write_tile, pure=False)(self.io, cx, t, dec, self.want_patch, self.want_ortho, mark)
                 for t in todo]
        self.compute(tasks, desc="change maps")

    def probability(self):
        """Passes P1/P2 (:mod:`offnadir.change.cells`): evidence, calibration, probability maps."""
        from offnadir.change import calibrate as C
        from offnadir.change import cells as P
        from offnadir.change import evidence as EV

        ctx = self.ctx
        noise = self.reduce([dask.delayed(P.noise_tile, pure=True)(self.io, ctx, t) for t in self.tiles], P.add_hist)
        sigmas = [P.noise_sigma(noise[k]) for k in range(self.n_images)]
        window = P.window_cells(self.opts, self.cell)
        offsets = {t: EV.relative_offsets(self.az[0], self.off[0], self.az[t], self.off[t], self.max_dh, self.cell)
                   for t in self.targets}
        has = {n: self.io.has(n) for n in ("elevated", "illumination", "score_ortho", "dh", "dh_sigma")}
        ortho = (("change_ortho", "score_ortho") if self.want_patch else ("change", "score")) if self.want_ortho \
            else None
        plan = {"window": window, "offsets": offsets, "sigmas": sigmas, "structural": self.want_patch, "ortho": ortho}
        self.log(f"structural evidence: window {window} cells, noise sigmas "
                 f"{', '.join(f'{s:.3g}' for s in sigmas)}, {max(len(o) for o in offsets.values())} parallax offset(s)"
                 + (", with the height change dh" if has["dh"] else ""))
        cx, pl = self.shared(ctx), self.shared(plan)
        hist = self.reduce([dask.delayed(P.evidence_tile, pure=False)(self.io, cx, t, pl, has) for t in self.tiles],
                           P.add_hist)
        models = {k: C.fit(v, anchor=P.ANCHOR[k[0]]) for k, v in hist.items()}
        for (kind, t, s), m in sorted(models.items()):
            msg = (f"calibration {kind} image {t} {'elevated' if s else 'ground'}: "
                   + ("fallback (" + m.get("reason", "") + ")" if m.get("fallback") else
                      f"changed weight {m['pi'][1]:.3f}, separation {m['separation']:.2f}"))
            _LOG.info(msg)
            self.log(msg)
        mo = self.shared(models)
        has["patch"] = self.want_patch
        grouped = self.reduce([dask.delayed(P.probability_tile, pure=False)(self.io, cx, t, mo, has,
                                                                            self.opts.elevated_height, pl)
                               for t in self.tiles], P.add_grouped)
        for t, d in (getattr(self, "per_target", None) or {}).items():
            d["probability"] = P.patch_probability(grouped, self.red_ids, t)
        self.calibration = {"window_cells": window, "noise_sigma": sigmas, "decision_p": P.DECISION_P,
                            "offsets": {str(t): len(v) for t, v in offsets.items()}, "dh_used": bool(has["dh"]),
                            "max_height_change_m": self.max_dh,
                            "models": {f"{k[0]}/{k[1]}/{'elevated' if k[2] else 'ground'}":
                                       {a: b for a, b in m.items() if a != "table"} for k, m in models.items()}}
        return models

    def table(self, red):
        from offnadir.change.dataset import table_dataset

        if not self.want_patch:
            return None
        rows = red["rows"]
        static = {"patch_n_cells": rows["n_cells"],
                  "patch_elevated": (rows["n_elev"] > 0.5 * rows["n_cells"]).astype(np.uint8)}
        return table_dataset(red["ids"], [str(v) for v in self.cube["image"].values], self.per_target, static,
                             self.cell)

    def summary_attrs(self) -> dict:
        def models_json(ms):
            return None if ms is None else {str(t): ([m.to_dict() if m else None for m in v] if isinstance(v, list)
                                                     else v.to_dict()) for t, v in ms.items()}

        ctx = self.ctx
        return {
            "change_method": self.opts.method,
            "change_options": json.dumps(self.opts.as_dict(), default=str),
            "change_irmad": json.dumps({"patch": models_json(self.models), "ortho": models_json(self.omodels)}),
            "change_robust_scale": json.dumps({str(t): [None if s is None else list(map(float, s)) for s in v]
                                               for t, v in self.scales.items()}),
            "change_ortho_robust_scale": json.dumps({str(t): list(map(float, v)) for t, v in self.oscales.items()}),
            "change_sun": json.dumps(getattr(self, "sun_report", None), default=str),
            "change_sun_deg": json.dumps([None if s is None else [math.degrees(s[1]), math.degrees(s[0])]
                                          for s in ctx.sun]) if ctx.sun else "null",
            "change_bands_red_nir": json.dumps([ctx.red, ctx.nir]),
            "change_ndvi_thresholds": json.dumps({str(t): v for t, v in self.ndvi_thresholds.items()}),
            "change_calibration": json.dumps(getattr(self, "calibration", None), default=float),
        }


# module-level task functions (picklable) ----------------------------------------------------
def _segment_and_mark(io, ctx, tile):
    T.segment_tile(io, ctx, tile)
    _mark(io, tile, SEGMENTED)
    return tile.ti, tile.tj


def _relabel(io, ctx, tile, oldnew):
    return T.relabel_tile(io, ctx, tile, *oldnew)


def _scale_tile(io, ctx, tile, models, want_patch, want_ortho):
    m, om = models
    return T.scale_tile(io, ctx, tile, m, om, want_patch, want_ortho)


def _patch_tile(io, ctx, tile, models_scales):
    m, sc = models_scales
    return T.patch_tile(io, ctx, tile, m, sc)


def _write_tile(io, ctx, tile, dec, want_patch, want_ortho, mark):
    decisions, ortho = dec
    T.write_tile(io, ctx, tile, decisions, ortho, want_patch, want_ortho)
    if mark:
        _mark(io, tile, WRITTEN)
    return tile.ti, tile.tj


def _mark(io, tile, bit):
    if PROGRESS in getattr(io, "arrays", {PROGRESS: None}) or not hasattr(io, "arrays"):
        cur = io.read(PROGRESS, (slice(tile.ti, tile.ti + 1), slice(tile.tj, tile.tj + 1)))
        io.write(PROGRESS, (slice(tile.ti, tile.ti + 1), slice(tile.tj, tile.tj + 1)), cur | np.uint8(bit))


# ----------------------------------------------------------------------------- public entry points
def _var_names(opts):
    names = []
    if opts.method == "patch":
        names += ["elevated", "patch", "illumination", "change", "score", "evidence", "probability"]
        if opts.baseline:
            names += ["change_ortho", "score_ortho"]
    else:
        names += ["change", "score", "evidence", "probability"]
    return names


def detect_dataset(cube, options: ChangeOptions | None = None, *, chunk: int | None = None, **kw):
    """Change detection on a cube Dataset held in memory (computed first if lazy), with the current
    dask scheduler (threads by default). Returns the cube with the change variables and the
    per-patch table added (``patch_*`` variables on dims ``patch_id``/``image``)."""
    import xarray as xr

    opts = options or ChangeOptions.from_config(None, **kw)
    cube = cube.load() if any(v.chunks is not None for v in cube.data_vars.values()) else cube
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    c = int(chunk or cube.attrs.get("tile_size", 512) or 512)
    chunks_yx = (tuple(min(c, ny - k) for k in range(0, ny, c)), tuple(min(c, nx - k) for k in range(0, nx, c)))
    from offnadir.change.dataset import CHANGE_VARS

    n_img = cube.sizes["image"]
    arrays = {"dsm": cube["dsm"].values, "visible": cube["visible"].values, "value": cube["value"].values}
    for name in ("dh", "dh_sigma"):  # same-date height change (another stage), used where present
        if name in cube:
            arrays[name] = np.asarray(cube[name].values, np.float32)
    for name in _var_names(opts):
        spec = CHANGE_VARS[name]
        shape = (ny, nx) if spec["dims"] == ("y", "x") else (n_img, ny, nx)
        arrays[name] = np.full(shape, spec["fill"], dtype=spec["dtype"])
    io = T.MemoryIO(arrays)
    run = _Runner(io, cube, opts, chunks_yx)
    red = _run_all(run, np.zeros((len(chunks_yx[0]), len(chunks_yx[1])), np.uint8), mark=False)
    out = cube.copy()
    for name in _var_names(opts):
        spec = CHANGE_VARS[name]
        out[name] = (spec["dims"], arrays[name], dict(spec["attrs"]))
    tab = run.table(red)
    if tab is not None:
        out = xr.merge([out, tab.drop_vars("image")], compat="override", combine_attrs="override")
    out.attrs.update(run.summary_attrs())
    out.attrs["change_patches"] = int(len(red["ids"])) if red is not None else 0
    return out


def _run_all(run: _Runner, done, *, mark: bool):
    run.context()
    if run.want_patch:
        run.segment(done)
    run.fit()
    run.robust_scales()
    red = run.patch_sums()
    run.red_ids = red["ids"] if red is not None else np.zeros(0, np.int64)
    run.decide(red)
    run.write_maps(done, mark)
    run.probability()
    return red


def detect_store(path, options: ChangeOptions | None = None, *, client=None, resume: bool = False,
                 quiet: bool = True) -> Path:
    """Change detection on a cube written to a Zarr store (``offnadir coregister``): the change
    variables and the per-patch table are added to the same store, tile by tile."""
    import xarray as xr
    import zarr

    from offnadir.change.dataset import layout
    from offnadir.store import _quiet_zarr

    opts = options or ChangeOptions()
    path = Path(path)
    with _quiet_zarr():
        cube = xr.open_zarr(str(path), consolidated=None)
    enc = cube["visible"].encoding.get("chunks") or cube["visible"].data.chunksize
    cy, cx = int(enc[-2]), int(enc[-1])
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    chunks_yx = (tuple(min(cy, ny - k) for k in range(0, ny, cy)), tuple(min(cx, nx - k) for k in range(0, nx, cx)))
    names = _var_names(opts)
    grid = (len(chunks_yx[0]), len(chunks_yx[1]))
    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        existing = set(g.array_keys())
        prior = g.attrs.get("change_options")
        reuse = (resume and PROGRESS in existing and all(n in existing for n in names)
                 and prior == json.dumps(opts.as_dict(), default=str))
        if not reuse:
            for name in list(existing):
                if name in names or name == PROGRESS or name.startswith("patch_") or name == "patch_id":
                    del g[name]
            tmpl = layout(cube, names, chunks_yx)
            tmpl.attrs = dict(g.attrs)  # xarray's append mode rewrites the group attributes
            enc = {n: {"chunks": (tuple(c[0] for c in tmpl[n].chunks)), "fill_value": _fill(n)} for n in names}
            tmpl.to_zarr(str(path), mode="a", compute=False, zarr_format=3, consolidated=False, encoding=enc)
            g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
            g.create_array(PROGRESS, shape=grid, chunks=(1, 1), dtype="uint8", fill_value=0,
                           dimension_names=("tile_y", "tile_x"),
                           attributes={"long_name": "change detection progress bits: 1 segmented, 4 maps written"})
            g.attrs["change_options"] = json.dumps(opts.as_dict(), default=str)
        done = np.asarray(g[PROGRESS][...])
    io = T.StoreIO(path)
    run = _Runner(io, cube, opts, chunks_yx, client=client, quiet=quiet)
    red = _run_all(run, done, mark=True)
    tab = run.table(red)
    with _quiet_zarr():
        if tab is not None:
            g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
            for name in list(g.array_keys()):
                if name.startswith("patch_") or name == "patch_id":
                    del g[name]
            tab = tab.drop_vars("image")
            tab.attrs = dict(g.attrs)  # xarray's append mode rewrites the group attributes
            tab.to_zarr(str(path), mode="a", zarr_format=3, consolidated=False)
            if opts.table_csv:
                from offnadir.change.dataset import table_to_csv

                table_to_csv(run.table(red), opts.table_csv)
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        g.attrs.update(run.summary_attrs())
        zarr.consolidate_metadata(str(path))
    return path


def _fill(name):
    from offnadir.change.dataset import CHANGE_VARS

    return CHANGE_VARS[name]["fill"]
