"""Simulator: a synthetic city seen off-nadir at two epochs, with its own truth.

:func:`simulate` draws a scene (:mod:`~offnadir.simulate.scene`), builds two physical pushbroom
cameras (:mod:`~offnadir.simulate.camera_model`), renders both images by **ray tracing** from the
image pixels into the box DSM (:mod:`~offnadir.simulate.render`, :mod:`~offnadir.simulate.views`;
one block of image rows at a time, rays skipping DSM blocks they pass above:
:mod:`~offnadir.simulate.tiles`, :mod:`~offnadir.simulate.bounded`), fits and writes RPC00B
models, and writes everything with the truth (:mod:`~offnadir.simulate.write`,
:mod:`~offnadir.simulate.truth`). :func:`simulate` only sequences the steps: options and presets
(:mod:`~offnadir.simulate.presets`), cameras and RPCs (:mod:`~offnadir.simulate.rig`), sun,
reflectances, rendering and visibility truth (:mod:`~offnadir.simulate.imaging`), files and
scene.json (:mod:`~offnadir.simulate.outputs`). Memory is about 170 bytes per DSM cell (mostly the two epochs'
rasters) plus the images: peak RSS 1.03 GB at 2048², 3.3 GB at 4096², 232-255 CPU-s at 4096²
(``python benchmarks/bench_simulate.py``). It is the built-in demo data and the independent
reference for the co-registration cube (which projects DSM cells forward through the RPC: the
simulator never does that for rendering or visibility).

Output directory::

    dsm.tif            epoch-1 DSM (what the pipeline uses), float32, metres above the WGS84 ellipsoid
    dsm_epoch2.tif     epoch-2 DSM (the surface the target image shows)
    dtm.tif            bare terrain
    base.tif           epoch-1 image, 4 bands (B, G, R, NIR) uint16, sensor geometry + RPC tags
    target.tif         epoch-2 image, idem
    truth_change.tif   uint8 1 where the surface changed in height or material between the epochs
    truth_change_class.tif uint8 class of each change: 1 new, 2 demolished, 3 raised, 4 re-roofed
                       (material only), 5 tree cut, 6 tree grown, 7 height change below one pixel
                       of parallax between the views (:mod:`~offnadir.simulate.truth`)
    truth_structural.tif uint8 the change a method is asked to find, in the height-change reference
                       format (as Kahramanmaras'): 1 loss (demolished, tree cut), 2 gain (new,
                       raised, tree grown), 0 none, 255 left out of the scores (re-roofs: a
                       material change, not a structural one; height changes below one pixel of
                       parallax between the views). ``offnadir evaluate OUT.zarr
                       truth_structural.tif`` scores it (with score AUC and object recall); the
                       reasons are in :mod:`offnadir.simulate.truth`
    truth_elevated.tif uint8 1 where the epoch-1 or epoch-2 surface is > 2.5 m above the terrain
    truth_occluded.tif uint8 bits: 1 hidden in the base view (epoch-1 surface), 2 hidden in the
                       target view (epoch-2 surface), 4 hidden in the target view over the epoch-1
                       surface (what a pipeline using dsm.tif should find for the target); 8 and
                       16: the centre of the cell's top is hidden in the base / target view (see
                       below)
    truth_shadow.tif   uint8 bits: 1 no direct sun at epoch 1, 2 no direct sun at epoch 2 (nuisance,
                       not change)
    gcps_base.csv      id,lon,lat,h,row,col: ground cells visible in the view, true pixel positions
    gcps_target.csv
    scene.json         parameters, cameras, buildings and their changes, RPC fit errors, bias

With ``new_views=2`` (``--new-views 2``) the second date is a same-date stereo pair, and also::

    target2.tif        epoch-2 image from a second view of the same pass (same time, sun and
                       radiometry as target.tif; B/H 0.3 by default, scene.json ``stereo``)
    gcps_target2.csv
    truth_occluded_target2.tif  as truth_occluded.tif, with target2 in place of the target

Visibility truth: a DSM cell is visible in a view when at least one of the ``supersample²``
rays per pixel first hits its top (or a low step of it); cells no ray reaches are occluded (bits
1, 2, 4). At 3 × 3 rays per pixel and GSD ≈ cell, a cell of which a sliver less than about a third
of a cell wide is visible can come out either way. A cell whose top is only partly visible counts
as visible; bits 8 and 16 give the stricter answer for the cell's centre alone (the straight line
from the centre of its top to the satellite is blocked), which is what a method that projects cell
centres should find. Bits 1 ⊆ 8 and 2 ⊆ 16; the cells in between are the partly visible rims,
about one cell wide. Compare an occlusion mask with the truth up to that band.
"""

from __future__ import annotations

import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from offnadir.errors import OutputExistsError
from offnadir.simulate.presets import (DEFAULT_DATES, ELEVATED_M, GAIN2, OFFSET1, OFFSET2, OUTPUT_FILES,  # noqa: F401
                                       PRESETS, SKY, VEG_TINT2, VEG_TINT2_DRY)
from offnadir.simulate.radiometry import DN_SCALE  # noqa: F401  (re-exported: DN per unit of radiance)

__all__ = ["simulate", "SimulatedScene", "OUTPUT_FILES", "DEFAULT_DATES", "PRESETS", "ELEVATED_M", "SKY", "GAIN2",
           "OFFSET1", "OFFSET2", "VEG_TINT2", "VEG_TINT2_DRY", "DN_SCALE"]


@dataclass
class SimulatedScene:
    """What :func:`simulate` wrote, with the truth and the cameras in memory."""

    out_dir: Path
    paths: dict
    grid: object  #: offnadir.simulate.grid.Grid
    terrain: np.ndarray
    dsm: np.ndarray  #: epoch 1 (as written, float32 values)
    dsm_epoch2: np.ndarray
    change: np.ndarray
    elevated: np.ndarray
    occluded: np.ndarray
    shadow: np.ndarray
    base_image: np.ndarray
    target_image: np.ndarray
    base_camera: object  #: PushbroomCamera (true geometry)
    target_camera: object
    base_rpc: object  #: offnadir RPC as written to base.tif (bias included)
    target_rpc: object
    base_rpc_true: object  #: RPC fitted to the true camera (no bias)
    target_rpc_true: object
    bias: dict  #: {"base": affine6, "target": affine6} applied after the true projection in the files
    buildings: list
    meta: dict
    model: object = field(repr=False, default=None)
    epochs: tuple = field(repr=False, default=())  #: (EpochRaster 1, 2); epoch 2's albedo/side as rendered
    visible_counts: dict = field(repr=False, default_factory=dict)
    change_class: np.ndarray = None  #: truth_change_class (see offnadir.simulate.truth)
    structural: np.ndarray = None  #: truth_structural: 1 loss, 2 gain, 0 none, 255 left out
    #: further views (``new_views=2``: "target2"): image, camera, rpc, rpc_true, occluded
    extra_views: dict = field(repr=False, default_factory=dict)

    def camera(self, view: str = "base", *, biased: bool = True):
        """An :class:`offnadir.Camera` of the view: the RPC as written (``biased``) or the true one."""
        from offnadir.camera.camera import Camera

        if view in self.extra_views:
            ev = self.extra_views[view]
            rpc, cam = ev["rpc" if biased else "rpc_true"], ev["camera"]
        else:
            rpc = getattr(self, f"{view}_rpc" if biased else f"{view}_rpc_true")
            cam = getattr(self, f"{view}_camera")
        return Camera(rpc=rpc, shape=cam.shape, sensor="OFFNADIR-SIM",
                      acquired=self.meta["views"][view]["acquired"]
                      if self.meta["views"][view].get("metadata_in_file", True) else None,
                      source=str(self.paths[view]),
                      model_format="simulated")


def simulate(out_dir, seed: int = 0, size: int = 256, cell: float = 0.5,
             base_view=(5.0, 90.0), target_view=(25.0, 270.0), bias_px: float = 0.0, *,
             supersample: int = 3, noise_dn: float = 6.0, center_lonlat=(5.44, 43.26), crs: str | None = None,
             base_height: float = 150.0, dates=DEFAULT_DATES, shadows: bool = True, altitude: float = 600e3,
             gsd: float | None = None, overwrite: bool = False, preset: str = "default", bands: int | None = None,
             decorrelation: float | None = None, metadata: bool | None = None,
             tree_changes: float | None = None, new_views: int = 1, target2_view=None) -> SimulatedScene:
    """Simulate a bi-temporal off-nadir scene into ``out_dir`` (see the module doc for the files).

    ``base_view``/``target_view``: (off-nadir = view zenith angle at the scene centre, azimuth from
    the ground to the satellite clockwise from north), degrees. ``bias_px``: size of a known image
    shift injected into the RPCs written to the images (the GCPs keep the true pixels, so
    :func:`offnadir.fit_bias` can remove it; 0 for none). ``gsd`` defaults to ``cell``. Deterministic
    for a seed.

    Harder scenes (``preset="hard"``, or each option alone): ``bands`` 1 writes one panchromatic
    band (the mean of the four band radiances) instead of B, G, R, NIR; ``decorrelation`` (0-1)
    re-renders the texture of every unchanged surface at epoch 2 (multiplicative, strength
    0.3 × decorrelation), applies a dry-season vegetation tint, and draws per-band epoch-2 gain
    (1 ± 0.4 d), offset (-30..150 d DN) and gamma (radiance^(1 ± 0.35 d)) from the seed;
    ``metadata=False`` writes images without acquisition time and sun angles (the truth keeps them
    in scene.json); ``tree_changes`` is the fraction of trees changed at epoch 2 (half cut, half
    grown 25-50 % taller; part of ``truth_change`` since the surface changed). The default preset
    writes the same images and rasters as before these options existed.

    ``new_views=2``: the second date is a same-date stereo pair: ``target2.tif`` (with
    ``gcps_target2.csv``) sees the epoch-2 surface at the same time, sun and radiometry as
    ``target.tif`` from ``target2_view`` (default: the target view moved along the orbit to B/H
    0.3, :func:`~offnadir.simulate.presets.stereo_partner`), and ``truth_occluded_target2.tif``
    holds its occlusion bits (as ``truth_occluded.tif`` with target2 in place of the target). Every
    other file is what ``new_views=1`` writes for the seed, byte for byte, except scene.json
    (``views.target2`` and ``stereo``)."""
    from offnadir.simulate import imaging, outputs, presets, rig, write
    from offnadir.simulate import scene as sc
    from offnadir.simulate.gcps import clearance, pick_gcps
    from offnadir.simulate.grid import Grid

    t_start = time.perf_counter()
    size, supersample = int(size), int(supersample)
    presets.check_basics(size, cell, supersample, bias_px)
    views_req = {"base": presets.view_arg(base_view, "base_view"),
                 "target": presets.view_arg(target_view, "target_view")}
    view_epochs = {"base": 0, "target": 1}  # view name -> epoch index (0: epoch 1, 1: epoch 2)
    stereo = presets.check_new_views(new_views) == 2
    if stereo:
        views_req["target2"] = presets.view_arg(presets.stereo_partner(views_req["target"]) if target2_view is None
                                                else target2_view, "target2_view")
        view_epochs["target2"] = 1
    opt = presets.resolve_preset(preset, bands=bands, decorrelation=decorrelation, metadata=metadata,
                                 tree_changes=tree_changes)
    harder = opt != PRESETS["default"]
    # one stream for the harder options, drawn in a fixed order: dates, tree changes, radiometry
    rng_h = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4A4D]))
    dates, times = presets.resolve_dates(dates, opt, rng_h, center_lonlat)
    gsd = float(cell if gsd is None else gsd)
    out = Path(out_dir)
    files = dict(OUTPUT_FILES, **(presets.STEREO_FILES if stereo else {}))
    paths = {k: out / v for k, v in files.items()}
    stale = [] if stereo else [out / v for v in presets.STEREO_FILES.values() if (out / v).exists()]
    existing = [p.name for p in list(paths.values()) + stale if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{out}: already holds {', '.join(existing)}; pass overwrite=True "
                                "(`--overwrite`) to replace them or choose another directory.")
    for p in stale:  # a pair's second image left by an earlier run would not belong to this scene
        p.unlink()
    out.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ scene
    model = sc.generate(seed, size, cell, base_height)
    terrain, e1, e2, tree_h = sc.rasterize(model)
    trees_changed = ([], [])
    if opt["tree_changes"] > 0:
        f = float(opt["tree_changes"])
        trees_changed = sc.change_trees(model, terrain, e2, tree_h, rng_h, f / 2, f / 2)
    del tree_h
    grid = Grid.centred(center_lonlat[0], center_lonlat[1], size, cell, crs)
    h_min = float(min(e1.dsm.min(), e2.dsm.min()))
    h_max = float(max(e1.dsm.max(), e2.dsm.max()))
    z_top, z_bot = h_max + 1.0, h_min - 1.0
    c_lon, c_lat = (float(v) for v in grid.uv_to_lonlat(size / 2, size / 2))
    centre = (c_lon, c_lat, float(terrain[size // 2, size // 2]))

    # ------------------------------------------------------------------ truth independent of views
    change = ((e1.dsm != e2.dsm) | (e1.material != e2.material)).astype(np.uint8)
    elevated = (((e1.dsm - terrain) > ELEVATED_M) | ((e2.dsm - terrain) > ELEVATED_M)).astype(np.uint8)

    # ------------------------------------------------------------------ cameras, RPCs, rendering
    domain = rig.rpc_domain(grid, size, h_min, h_max)
    cams, rpcs, rpcs_true, fits, bias = rig.build_cameras(views_req, grid, centre, z_bot, z_top, domain, seed=seed,
                                                          bias_px=bias_px, altitude=altitude, gsd=gsd)
    epochs = imaging.illuminate(e1, e2, times, (c_lon, c_lat), grid.north_angle(), opt, seed, cell)
    radiometry = presets.draw_radiometry(opt, rng_h)
    if stereo:  # one pass of one satellite: the pair's images share the sensor's radiometry
        radiometry["target2"] = radiometry["target"]
    r = imaging.render_views(view_epochs, cams, epochs, grid, terrain, radiometry, seed=seed, cell=cell,
                             supersample=supersample, shadows=shadows, bands=int(opt["bands"]), noise_dn=noise_dn,
                             z_top=z_top, z_bot=z_bot)
    vis_counts = r["vis_counts"]
    base_bits = imaging.base_occlusion(cams["base"], grid, e1, vis_counts["base"])
    occluded = imaging.target_occlusion("target", base_bits, cams, r["lattices"], vis_counts, grid, e1, e2,
                                        supersample)
    occluded2 = imaging.target_occlusion("target2", base_bits, cams, r["lattices"], vis_counts, grid, e1, e2,
                                         supersample) if stereo else None

    # ------------------------------------------------------------------ GCPs
    gcps, dist = {}, clearance(elevated, grid.cell)
    for k, name in enumerate(view_epochs):
        gcps[name] = pick_gcps(grid, e1, e2, terrain, elevated, change, vis_counts[name], supersample,
                               cams[name], seed + 17 * k, dist=dist)
    del dist

    # ------------------------------------------------------------------ write
    st = types.SimpleNamespace(
        paths=paths, files=files, view_epochs=view_epochs, views_req=views_req, cams=cams, fits=fits, rpcs=rpcs,
        bias=bias, epochs=epochs, dates=dates, centre=centre, lattice_error=r["lattice_error"], gcps=gcps,
        images=r["images"], radiometry=radiometry, opt=opt, harder=harder, preset=preset, noise_dn=noise_dn,
        grid=grid, e1=e1, e2=e2, terrain=terrain, model=model, tree_kind=sc.TREE, gsd=gsd, change=change,
        elevated=elevated, occluded=occluded, shadow=r["shadow"], supersample=supersample, shadows=shadows,
        seed=seed, size=size, cell=cell, bias_px=bias_px, base_height=base_height, h_max=h_max, domain=domain,
        trees_changed=trees_changed, layout=sc.model_to_dict(model))
    vdesc = outputs.write_views(st)
    change_class, structural, dh_min = outputs.write_truth(st, vdesc)
    counts = {int(b): int(n) for b, n in zip(*np.unique(np.r_[e1.building.ravel(), e2.building.ravel()],
                                                           return_counts=True)) if b}
    buildings = sc.building_records(model, grid.x0, grid.y0, counts)
    meta = outputs.scene_meta(st, vdesc, buildings, change_class, structural, dh_min)
    if stereo:
        outputs.write_occluded(paths["truth_occluded_target2"], occluded2, st, target="target2")
        meta["stereo"] = outputs.stereo_meta(vdesc, occluded2)
    meta["elapsed_s"] = None  # kept out of the file so it is byte-identical for a seed
    write.write_json(paths["scene_json"], meta)
    meta["elapsed_s"] = time.perf_counter() - t_start

    images = r["images"]
    return SimulatedScene(
        out_dir=out, paths=paths, grid=grid, terrain=terrain, dsm=e1.dsm, dsm_epoch2=e2.dsm, change=change,
        elevated=elevated, occluded=occluded, shadow=r["shadow"], base_image=images["base"],
        target_image=images["target"], base_camera=cams["base"], target_camera=cams["target"],
        base_rpc=rpcs["base"], target_rpc=rpcs["target"], base_rpc_true=rpcs_true["base"],
        target_rpc_true=rpcs_true["target"], bias=bias, buildings=buildings, meta=meta, model=model,
        epochs=(e1, e2), visible_counts=vis_counts, change_class=change_class, structural=structural,
        extra_views={"target2": dict(image=images["target2"], camera=cams["target2"], rpc=rpcs["target2"],
                                     rpc_true=rpcs_true["target2"], occluded=occluded2)} if stereo else {})
