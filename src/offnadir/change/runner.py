"""The change-detection stage as dask work over the tiles of the cube: which task reads what, and
the small reductions between them. Wiring only: every task calls a function of
:mod:`~offnadir.change.tile`, :mod:`~offnadir.change.cells` or :mod:`~offnadir.change.fit`; the
client-side decisions are :mod:`~offnadir.change.decide` and :mod:`~offnadir.change.calibrate`.

Four passes over the cube (each a set of per-tile tasks; what they return is small and merged by
dask tree reductions), the rest on the client:

1. ``context``: height range, band sums, the tallest object, pixel-noise histograms;
2. ``segment``: ``patch``, ``elevated``, ``illumination`` per tile (with a halo), then the pairs of
   elevated patches facing each other across tile borders (from the border rows each task
   returns) and a union-find on the client; the tiles whose IDs moved are relabelled by the
   next pass's tasks (which do not read ``patch``);
3. ``evidence``: the cross-date structural ``evidence`` written per tile, its histograms (for the
   calibration) and the fixed sample of cells (:mod:`~offnadir.change.fit`) from which the
   client fits IR-MAD (``fit``: iterations in memory, no pass over the cube) and the robust scales;
4. ``sums``: per-patch sums (grouped by patch ID, tree-merged) and the ortho baseline's raw
   per-cell scores with their histograms; on the client the patch decisions (``decide``), the
   mixture calibrations (``calibrate``); ``ray``: :mod:`~offnadir.change.shadow_ray`'s reductions;
5. ``maps``: probability, ``change``, ``score`` (and the baseline's) per tile; with a store the
   per-cell history (:mod:`~offnadir.change.history`) from the ``change`` maps the task wrote.

With a Zarr store, tasks read and write regions of the store (bounded memory per task) and a
rerun with ``resume`` skips the tiles already segmented or written; without one (in-memory cube,
threaded scheduler) the same tasks work on numpy arrays.
"""

from __future__ import annotations

import json
import logging

import dask
import numpy as np

from offnadir.change import fit as F
from offnadir.change.dispatch import Dispatch, _tree
from offnadir.change import search_heights, segment
from offnadir.change import shadow_ray as SR
from offnadir.change import tile as T
from offnadir.change.options import ChangeOptions
from offnadir.cube.plan import Tile
from offnadir.errors import DataError
from offnadir.logs import say

# the per-tile task functions (module level: picklable)
from offnadir.change.tasks import (SEGMENTED, _add_stats, _add_sums, _evidence_tile, _fit_task,  # noqa: E402
                                   _hist_of, _maps_tile, _segment_and_mark, _stats_tile, _sums_tile)

_LOG = logging.getLogger("offnadir.change.runner")
#: automatic NDVI thresholds (Otsu) are never below this: no surface under 0.2 is vegetation
NDVI_MIN = 0.2


def tiles_of(chunks_y, chunks_x):
    out, i0 = [], 0
    for a, cy in enumerate(chunks_y):
        j0 = 0
        for b, cx in enumerate(chunks_x):
            out.append(Tile(a, b, i0, i0 + cy, j0, j0 + cx))
            j0 += cx
        i0 += cy
    return out


class Runner(Dispatch):
    """One run of the stage over a cube (``io``: :class:`~offnadir.change.tileio.StoreIO` or
    :class:`~offnadir.change.tileio.MemoryIO`). The passes are methods, run in :data:`PASSES` order
    by :func:`run_all`; benchmarks time them by name."""

    #: calibrate before decide: it starts the ray's tile tasks, which need the calibration, not the
    #: decisions, so the workers run them while the client decides
    PASSES = ("context", "segment", "evidence", "fit", "sums", "calibrate", "decide", "ray", "maps")

    def __init__(self, io, cube, opts: ChangeOptions, chunks_yx, *, client=None, quiet=True):
        from offnadir.change.illumination import small_coords_loaded

        cube = small_coords_loaded(cube)  # one round trip for the per-image coordinates, not one per use
        self.io, self.cube, self.opts, self.client, self.quiet = io, cube, opts, client, quiet
        self._futures = {}
        self.tiles = tiles_of(*chunks_yx)
        self.chunks_yx = chunks_yx
        self.shape = (cube.sizes["y"], cube.sizes["x"])
        self.n_images = cube.sizes["image"]
        self.n_bands = cube.sizes["band"]
        if self.n_images < 2:
            raise DataError("change detection needs at least two images (the first is the base); the cube has "
                            f"{self.n_images}.")
        # the grid from one variable: the Dataset's ``rio`` accessor scans every variable of the store
        # on each call (tens of them once the change maps and the patch table are written)
        grid = cube["dsm"] if "dsm" in cube else cube
        crs = grid.rio.crs
        tr = grid.rio.transform() if crs is not None else None
        if tr is not None:  # metres per cell; refuses non-square or geographic grids it cannot treat as square
            from offnadir.io.dsm import change_cell_size

            self.cell = change_cell_size(crs, tr, self.shape)
        else:
            self.cell = float(abs(cube["x"].values[1] - cube["x"].values[0]))
        self.targets = tuple(range(1, self.n_images))
        self.want_patch = opts.method == "patch"
        self.want_ortho = opts.method == "ortho" or bool(opts.baseline)
        self.red_ids = np.zeros(0, np.int64)
        self.red = None
        self.per_target, self.ortho = {}, {}
        #: (dated images, their days) when the maps pass also writes the history (a store's run)
        self.history = None

    def log(self, msg):
        say(_LOG, msg, self.quiet)

    #: the segment pass's arrays, written for the last time by the evidence pass (the joins)
    SEGMENTED_ARRAYS = ("patch", "elevated", "illumination")

    def segmented_io(self):
        """The I/O of the passes after the evidence pass: the segment pass's arrays no longer
        change, so a worker decodes each of their chunks once (:meth:`StoreIO.cached`), not once
        per halo read (the sums pass reads them twice, with halos)."""
        cached = getattr(self.io, "cached", None)
        return cached(self.SEGMENTED_ARRAYS) if cached is not None else self.io

    def context(self):  # -- pass 1
        from offnadir.change import cells as P
        from offnadir.change import sun_range as SR
        from offnadir.change.context import band_roles, image_band_names, resolve_sun, shadow_errors
        from offnadir.change.tileio import read_through_cache
        from offnadir.change import missing_shadow as MS

        opts = self.opts
        r = segment.opening_radius(opts, self.cell)
        st = self.reduce([dask.delayed(_stats_tile, pure=True)(self.io, self.shape, self.n_images, self.n_bands, t, r)
                          for t in self.tiles], _add_stats)
        n = np.maximum(st["n"], 1)[:, None]
        mean = st["s"] / n
        std = np.sqrt(np.maximum(st["ss"] / n - mean**2, 0.0))
        if st["n"][0] == 0:
            raise DataError("no DSM cell is visible in the base image: nothing to compare.")
        for t in self.targets:
            if st["n"][t] == 0:
                raise DataError(f"no DSM cell is visible in image {self.cube['image'].values[t]}: nothing to compare.")
        self.n_visible = st["n"]
        self.sigmas = [P.noise_sigma(st["noise"][k]) for k in range(self.n_images)]
        band_std = np.where(std[0] > 0, std[0], 1.0)
        # the sun's reads of the cube through the chunks the statistics' tasks decoded in this process
        sun, self.sun_report = resolve_sun(read_through_cache(self.cube, self.io), opts, self.log, self.client) \
            if opts.shadows else ((), None)
        names = image_band_names([im["path"] for im in json.loads(self.cube.attrs.get("images", "[]"))]) \
            if "images" in self.cube.attrs else []
        red, nir = band_roles(names, self.n_bands, opts) if opts.vegetation else (None, None)
        az = self.cube["azimuth"].values if "azimuth" in self.cube.coords else np.full(self.n_images, np.nan)
        off = self.cube["off_nadir"].values if "off_nadir" in self.cube.coords else np.full(self.n_images, np.nan)
        self.max_dh = search_heights.max_height_change(opts, st["above"])
        self.log(f"parallax searches cover height changes up to {self.max_dh:.1f} m "
                 f"({'option' if opts.max_height_change is not None else 'tallest object above the local ground'})")
        self.az, self.off = az, off
        shifts = tuple(T.parallax_offsets(az[t], off[t], self.max_dh, self.cell) if t else
                       (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)) for t in range(self.n_images))
        self.ctx = T.Context(shape=self.shape, n_images=self.n_images, n_bands=self.n_bands, cell=self.cell,
                             opts=opts, targets=self.targets, band_mean=mean, band_std=band_std,
                             h_range=(st["h_min"], st["h_max"]), sun=sun, red=red, nir=nir, shifts=shifts,
                             shadow_errors=shadow_errors(self.sun_report) if sun and opts.shadow_margin else (),
                             shadow_classes=MS.classifiers(self.sun_report) if sun else (),
                             sun_range=SR.ranges(self.sun_report, _LOG, relief=st["h_max"] - st["h_min"], cell=self.cell) if sun else ())
        return self.ctx

    def segment(self, done=None):  # -- pass 2: segmentation
        if not self.want_patch:
            return
        done = self.done if done is None else done
        ctx = self.shared(self.ctx)
        todo = [t for t in self.tiles if not (done[t.ti, t.tj] & SEGMENTED)]
        self.log(f"segmentation: {len(todo)} of {len(self.tiles)} tiles")
        strips = dict(self.compute([dask.delayed(_segment_and_mark, pure=False)(self.io, ctx, t) for t in todo],
                                   desc="segmentation"))
        if len(strips) == len(self.tiles):  # every tile segmented now: the border cells came back with them
            pairs = T.strip_pairs(strips, self.tiles, float(self.opts.roof_step))
        else:  # resumed: the tiles segmented before are read back from the store
            pairs = self.compute([dask.delayed(T.tile_border_pairs, pure=True)(self.io, ctx, t) for t in self.tiles],
                                 desc="patch borders")
            pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
        old, new = segment.join_components(pairs)
        self.joins = None
        if len(old):
            # relabelled by the evidence pass's tasks (no task of that pass reads ``patch``): no round of its own
            gi, gj = (old - 1) // self.shape[1], (old - 1) % self.shape[1]
            self.joins = (self.shared((old, new)), {self._tile_of(a, b) for a, b in zip(gi, gj)})
        self.log(f"patches joined across tile borders: {len(old)}")

    def _tile_of(self, i, j):
        cy, cx = self.chunks_yx
        return (int(np.searchsorted(np.cumsum(cy), i, side="right")),
                int(np.searchsorted(np.cumsum(cx), j, side="right")))

    # -- pass 3: evidence, its histograms, and the IR-MAD sample
    def evidence(self):
        from offnadir.change import cells as P
        from offnadir.change import evidence as EV

        window = P.window_cells(self.opts, self.cell)
        self.evidence_dh = {t: search_heights.evidence_height(self.opts, self.az[0], self.off[0], self.az[t], self.off[t], self.cell)
                            for t in self.targets}
        offsets = {t: EV.relative_offsets(self.az[0], self.off[0], self.az[t], self.off[t], self.evidence_dh[t],
                                          self.cell) for t in self.targets}
        self.has = {n: self.io.has(n) for n in ("elevated", "illumination", "dh", "dh_sigma")}
        self.sample_rate = F.sample_rate(self.n_visible[0])
        self.plan = {"window": window, "offsets": offsets, "sigmas": self.sigmas, "structural": self.want_patch,
                     "sample_rate": self.sample_rate, "want_patch": self.want_patch, "want_ortho": self.want_ortho}
        self.log(f"structural evidence: window {window} cells, noise sigmas "
                 f"{', '.join(f'{s:.3g}' for s in self.sigmas)}, {max(len(o) for o in offsets.values())} parallax "
                 f"offset(s) for height errors up to {max(self.evidence_dh.values(), default=0.0):.1f} m"
                 + (", with the height change dh" if self.has["dh"] else "")
                 + f"; IR-MAD sample rate {self.sample_rate:.3g}")
        cx, pl = self.shared(self.ctx), self.shared(self.plan)
        joins = getattr(self, "joins", None)  # the segment pass's joins across tile borders, applied first
        cached = getattr(self.io, "cached", None)  # elevated and illumination are final (patch: the joins)
        io = cached(("elevated", "illumination")) if cached is not None else self.io
        root = _tree([dask.delayed(_evidence_tile, pure=False)(io, cx, t, pl, self.has,
                                                               joins[0] if joins and (t.ti, t.tj) in joins[1] else None)
                      for t in self.tiles], P.add_evidence)
        # IR-MAD runs on the workers (single-threaded BLAS, no 8 MiB to the client), one task per
        # target and method; the first error in fit_all's order is raised
        names = [str(v) for v in self.cube["image"].values]
        parts = [(t, wp, wo) for t in self.targets for wp, wo in ((self.want_patch, False), (False, self.want_ortho))
                 if wp or wo]
        if self.client is None:
            out = dask.compute(dask.delayed(_hist_of, pure=True)(root),
                               *[dask.delayed(_fit_task, pure=True)(root, self.ctx, names, wp, wo, NDVI_MIN, t)
                                 for t, wp, wo in parts])
        else:
            out = self._fit_on_workers(root, parts, names)
        err = next((p for p in out[1:] if isinstance(p, DataError)), None)
        if err is not None:
            raise err
        self.hist = out[0]
        self.fitted = F.merge_fits(*out[1:]) if len(out) > 1 else \
            F.fit_all({}, self.ctx, names, False, False, NDVI_MIN)

    def _fit_on_workers(self, root, parts, names):
        """(histograms, fit parts...) with the fit tasks spread over the workers: dask would queue
        them all on the worker holding the sample (and Client.replicate took 1.5 s for its 8 MiB).
        Part k goes to worker k mod n, starting with the holder; the others fetch the sample."""
        from distributed import wait

        fut = self.client.compute(root)
        wait(fut)
        holder = list(self.client.who_has([fut]).get(fut.key, ()))
        workers = holder + [w for w in self.client.scheduler_info()["workers"] if w not in holder]
        futs = [self.client.submit(_hist_of, fut, pure=False)]
        for k, (t, wp, wo) in enumerate(parts):
            futs.append(self.client.submit(_fit_task, fut, self.ctx, names, wp, wo, NDVI_MIN, t, pure=False,
                                           workers=[workers[k % len(workers)]] if workers else None,
                                           allow_other_workers=True))
        return self.client.gather(futs)

    # -- IR-MAD on the sample, robust scales, NDVI thresholds (one task after the evidence pass)
    def fit(self):
        f = self.fitted
        self.models, self.omodels, self.scales, self.oscales = f["models"], f["omodels"], f["scales"], f["oscales"]
        self.ndvi_thresholds, self.irmad_iterations, self.ortho = f["ndvi"], f["iterations"], f["ortho"]
        self.log("IR-MAD on " + ", ".join(f"{n} sampled cells ({k})" for k, n in f["sampled"].items())
                 + ": iterations " + ", ".join(f"{k} {v}" for k, v in self.irmad_iterations.items()))

    # -- pass 4: per-patch sums and the ortho baseline's raw scores
    def sums(self):
        cx = self.shared(self.ctx)
        mo = self.shared((self.models, self.scales, self.ortho))
        io = self.segmented_io()
        parts = [dask.delayed(_sums_tile, pure=True)(io, cx, t, mo, self.want_patch, self.want_ortho)
                 for t in self.tiles]
        heights = SR.height_parts(self)  # the shadow ray's height histogram: no round of its own later
        if heights is None:
            out = self.reduce(parts, _add_sums)
        else:
            out, self.ray_heights = self.reduce_many((parts, _add_sums), (heights, SR.add))
        self.red = out.get("patch")
        self.hist.update(out.get("hist", {}))
        if out.get("shadow") is not None:  # missing shadows: loss evidence for their roofs (missing_shadow)
            from offnadir.change import missing_shadow as MS

            names = [str(v) for v in self.cube["image"].values]
            self.gone = MS.decide(out["shadow"], self.targets, names, self.sun_report, _LOG,
                                  enabled=self.opts.missing_shadows)
            from offnadir.change import shadow_ratio as SRT  # gone casters whose shadow's light did not change

            self.gone = SRT.veto(self.gone, self.segmented_io(), self.ctx, self.red, self.sun_report, names, _LOG)
            self.gone_missing = dict(self.gone)  # the missing-shadow rule's own decisions (rim_veto)
            from offnadir.change import longer_shadow as LS  # roofs whose shadow grew: gain evidence

            self.gone = LS.decide_targets(out["shadow"], self.gone, self.targets, MS.classifiers(self.sun_report),
                                          names, self.sun_report, _LOG)
            self.gone_patch_rules = dict(self.gone)  # before the crowns: the longer rule's claims (rim_veto)
            if self.opts.missing_shadows:  # crowns whose shadow went, summed per crown (crown_shadow)
                from offnadir.change import crown_shadow as CS

                self.gone = CS.decide_targets(out.get("patch"), out.get("crowns"), out["shadow"], self.gone,
                                              self.targets, self.cell, self.off, names, self.sun_report)
        if self.red is not None:
            self.red_ids = self.red["ids"]
            # the parallax profiles stay their non-empty (patch, offset) pairs (~3 % of the dense table)

    # -- client: decisions per patch
    def decide(self):
        from offnadir.change import decide as D
        from offnadir.change.illumination import facade_dark_for

        if not self.want_patch:
            return
        for t in self.targets:
            tb = D.target_table(self.red, t, self.n_bands, self.scales[t], self.ctx.shifts[t][2], self.models[t][0],
                                self.cell)
            tb.ndvi_thresholds = self.ndvi_thresholds.get(t)
            tb.tan_view = float(np.tan(np.radians(self.off[t])))  # criteria.rigid: one offset's height
            tb.extra["facade_dark"] = facade_dark_for(self.sun_report, t, float(self.az[t]), self.log)
            d = D.decide(tb, self.opts)
            d["used"] = tb.used
            d["ndvi_base"], d["ndvi_target"] = tb.ndvi_base, tb.ndvi_target
            d["facade_dark"] = tb.extra["facade_dark"]
            self.per_target[t] = d
        if getattr(self, "gone", None):  # a roof whose rim stayed did not move: no shadow rule decides it
            from offnadir.change import rim_veto as RV

            self.gone = RV.for_run(self.gone, getattr(self, "gone_missing", {}), getattr(self, "gone_patch_rules", {}),
                                   self.red_ids, self.per_target, self.sun_report, self.off, _LOG)

    # -- client: mixture calibration of every evidence histogram
    def calibrate(self):
        from offnadir.change import calibrate as C
        from offnadir.change import cells as P
        from offnadir.change import dh_evidence as DE

        self.cal_models = {k: P.calibration_model(k, v) for k, v in self.hist.items()}
        dh_rule = DE.coherence_rule(self.opts.elevated_height) if self.has["dh"] else None  # which dh count
        if dh_rule:
            self.log(f"dh is evidence where >= {dh_rule['min_share']:.2f} of its window answers the dh test as it does"
                     + (", or 'lower' where its small object answers so" if dh_rule.get("small_objects") else "")
                     + ("; a tie with the structural probability (both at their clips) goes to a removal down to the"
                        " local ground" if dh_rule.get("removal_ties") else ""))
        for (kind, t, s), m in sorted(self.cal_models.items()):
            self.log(f"calibration {kind} image {t} {'elevated' if s else 'ground'}: {C.summary(m)}")
        self.calibration = {"window_cells": self.plan["window"], "noise_sigma": self.sigmas,
                            "decision_p": P.DECISION_P,
                            "offsets": {str(t): len(v) for t, v in self.plan["offsets"].items()},
                            "dh_used": bool(self.has["dh"]), "max_height_change_m": self.max_dh,
                            "dh_coherence": dh_rule,
                            "evidence_height_m": {str(t): v for t, v in getattr(self, "evidence_dh", {}).items()},
                            "roof_evidence": "sqrt(R*S), the census ratio with the sign-reversal ratio, where no "
                                             "same-date dh measured the cell; R alone elsewhere and on ground",
                            "irmad_sample": {"rate": self.sample_rate, "iterations": self.irmad_iterations},
                            "models": {f"{k[0]}/{k[1]}/{'elevated' if k[2] else 'ground'}":
                                       {a: b for a, b in m.items() if a != "table"}
                                       for k, m in self.cal_models.items()}}
        self.ray_started = SR.start_pass(self)  # the ray's tile tasks run while the client decides

    def ray(self):  # new buildings' cast shadows down-sun: a likelihood ratio for ground cells
        self.ray_rules = SR.run_pass(self, getattr(self, "ray_started", None))

    # -- pass 5: maps
    def maps(self, mark=None):
        from offnadir.change import cells as P

        mark = self.mark if mark is None else mark
        decisions = {t: (self.red_ids, d["score"], d.get("rim_kept")) for t, d in self.per_target.items()}
        ortho = (("change_ortho", "score_ortho") if self.want_patch else ("change", "score")) if self.want_ortho \
            else None
        plan = {**self.plan, "ortho": ortho, "bound": self.opts.elevated_height, "decisions": decisions,
                "history": self.history, "gone": getattr(self, "gone", None), "ray": getattr(self, "ray_rules", None)}
        has = {**self.has, "patch": self.want_patch}
        cx, mo, pl = self.shared(self.ctx), self.shared(self.cal_models), self.shared(plan)
        # every tile, also on resume: its patch sums feed the table, and the maps are cheap
        io = self.segmented_io()
        grouped = self.reduce([dask.delayed(_maps_tile, pure=False)(io, cx, t, mo, has, pl, mark)
                               for t in self.tiles], P.add_grouped)
        for t, d in self.per_target.items():
            d["probability"] = P.patch_probability(grouped, self.red_ids, t)

    # -- results (offnadir.change.results)
    def table(self):
        from offnadir.change.results import table

        return table(self)

    def summary_attrs(self) -> dict:
        from offnadir.change.results import summary_attrs

        return summary_attrs(self)


def run_all(run: Runner, done, *, mark: bool) -> Runner:
    run.done, run.mark = done, mark
    for name in Runner.PASSES:
        getattr(run, name)()
    return run
