"""Simulator: a synthetic city seen off-nadir at two epochs, with its own truth.

:func:`simulate` draws a scene (:mod:`~offnadir.simulate.scene`), builds two physical pushbroom
cameras (:mod:`~offnadir.simulate.camera_model`), renders both images by **ray tracing** from the
image pixels into the box DSM (:mod:`~offnadir.simulate.render`, :mod:`~offnadir.simulate.views`;
one block of image rows at a time, rays skipping DSM blocks they pass above:
:mod:`~offnadir.simulate.tiles`, :mod:`~offnadir.simulate.bounded`), fits and writes RPC00B
models, and writes everything with the truth (:mod:`~offnadir.simulate.write`,
:mod:`~offnadir.simulate.truth`). Memory is about 170 bytes per DSM cell (mostly the two epochs'
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

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from offnadir.errors import ConfigError, OutputExistsError

__all__ = ["simulate", "SimulatedScene", "OUTPUT_FILES", "DEFAULT_DATES"]

OUTPUT_FILES = {
    "dsm": "dsm.tif",
    "dsm_epoch2": "dsm_epoch2.tif",
    "dtm": "dtm.tif",
    "base": "base.tif",
    "target": "target.tif",
    "truth_change": "truth_change.tif",
    "truth_elevated": "truth_elevated.tif",
    "truth_occluded": "truth_occluded.tif",
    "truth_shadow": "truth_shadow.tif",
    "truth_change_class": "truth_change_class.tif",
    "truth_structural": "truth_structural.tif",
    "gcps_base": "gcps_base.csv",
    "gcps_target": "gcps_target.csv",
    "scene_json": "scene.json",
}
DEFAULT_DATES = ("2021-06-01T10:40:00Z", "2023-09-12T10:20:00Z")
ELEVATED_M = 2.5
#: diffuse sky irradiance per band (B, G, R, NIR), relative to the direct sun
SKY = (0.30, 0.25, 0.20, 0.15)
from offnadir.simulate.radiometry import DN_SCALE  # noqa: E402  (re-exported: DN per unit of radiance)
#: epoch-2 nuisances
GAIN2 = (0.93, 1.04, 1.08, 0.95)
OFFSET1 = (60.0, 55.0, 50.0, 45.0)
OFFSET2 = (75.0, 62.0, 48.0, 40.0)
VEG_TINT2 = (1.05, 0.88, 1.30, 0.82)
#: a dry season at epoch 2 (harder scenes): vegetation browner and far less NIR-bright
VEG_TINT2_DRY = (1.15, 0.80, 1.50, 0.55)
#: option sets of :func:`simulate` (``preset=``, ``offnadir simulate --preset``); explicit options win.
#: ``hard``: one band, strong radiometric decorrelation between the dates, no acquisition time or
#: sun in the image files, 20 % of the trees changed (half cut, half grown), acquisition dates and
#: times drawn from the seed (so the sun differs per seed).
PRESETS = {
    "default": dict(bands=4, decorrelation=0.0, metadata=True, tree_changes=0.0, random_dates=False),
    "hard": dict(bands=1, decorrelation=1.0, metadata=False, tree_changes=0.2, random_dates=True),
}


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

    def camera(self, view: str = "base", *, biased: bool = True):
        """An :class:`offnadir.Camera` of the view: the RPC as written (``biased``) or the true one."""
        from offnadir.camera.camera import Camera

        rpc = getattr(self, f"{view}_rpc" if biased else f"{view}_rpc_true")
        cam = getattr(self, f"{view}_camera")
        return Camera(rpc=rpc, shape=cam.shape, sensor="OFFNADIR-SIM",
                      acquired=self.meta["views"][view]["acquired"]
                      if self.meta["views"][view].get("metadata_in_file", True) else None,
                      source=str(self.paths[view]),
                      model_format="simulated")


def _view_arg(v, name):
    try:
        off, az = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be (off_nadir_deg, azimuth_deg), e.g. (25, 270); got {v!r}.") from None
    if not (0.0 <= off <= 45.0) or not math.isfinite(az):
        raise ConfigError(f"{name}: off-nadir angle {off} must be between 0 and 45 degrees "
                          f"(and the azimuth a number); got {v!r}.")
    return off, az % 360.0


def simulate(out_dir, seed: int = 0, size: int = 256, cell: float = 0.5,
             base_view=(5.0, 90.0), target_view=(25.0, 270.0), bias_px: float = 0.0, *,
             supersample: int = 3, noise_dn: float = 6.0, center_lonlat=(5.44, 43.26), crs: str | None = None,
             base_height: float = 150.0, dates=DEFAULT_DATES, shadows: bool = True, altitude: float = 600e3,
             gsd: float | None = None, overwrite: bool = False, preset: str = "default", bands: int | None = None,
             decorrelation: float | None = None, metadata: bool | None = None,
             tree_changes: float | None = None) -> SimulatedScene:
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
    writes the same images and rasters as before these options existed."""
    from offnadir.simulate import scene as sc
    from offnadir.simulate import truth, views, write
    from offnadir.simulate.camera_model import PushbroomCamera, affine_apply, fit_rpc
    from offnadir.simulate.grid import Grid
    from offnadir.simulate.gcps import clearance, pick_gcps
    from offnadir.simulate.radiometry import to_dn
    from offnadir.simulate.sun import parse_utc, random_dates, sun_vector
    from offnadir.sun import sun_position

    t_start = time.perf_counter()
    size, supersample = int(size), int(supersample)
    if size < 32 or size > 4096:
        raise ConfigError(f"size {size} must be between 32 and 4096 cells per side.")
    if not (cell > 0):
        raise ConfigError(f"cell {cell} must be a positive number of metres.")
    if not 1 <= supersample <= 8:
        raise ConfigError(f"supersample {supersample} must be between 1 and 8 rays per pixel side.")
    views_req = {"base": _view_arg(base_view, "base_view"), "target": _view_arg(target_view, "target_view")}
    if not math.isfinite(bias_px) or abs(bias_px) > 100:
        raise ConfigError(f"bias_px {bias_px} must be a number of pixels between -100 and 100.")
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r} is not known; choose one of {', '.join(PRESETS)}.")
    opt = dict(PRESETS[preset])
    for k, v in (("bands", bands), ("decorrelation", decorrelation), ("metadata", metadata),
                 ("tree_changes", tree_changes)):
        if v is not None:
            opt[k] = v
    if opt["bands"] not in (1, 4):
        raise ConfigError(f"bands {opt['bands']} must be 1 (panchromatic) or 4 (B, G, R, NIR).")
    if not 0.0 <= float(opt["decorrelation"]) <= 1.0 or not 0.0 <= float(opt["tree_changes"]) <= 1.0:
        raise ConfigError(f"decorrelation {opt['decorrelation']} and tree_changes {opt['tree_changes']} must be "
                          "between 0 and 1.")
    harder = opt != PRESETS["default"]
    rng_h = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4A4D]))
    if opt["random_dates"] and tuple(dates) == DEFAULT_DATES:
        dates = random_dates(rng_h, center_lonlat)
    try:
        times = [parse_utc(d) for d in dates]
    except (TypeError, ValueError):
        raise ConfigError(f"dates must be two ISO 8601 UTC times such as {DEFAULT_DATES}; got {dates!r}.") from None
    if len(times) != 2:
        raise ConfigError(f"dates must hold two acquisition times (base, target); got {dates!r}.")
    gsd = float(cell if gsd is None else gsd)
    out = Path(out_dir)
    paths = {k: out / v for k, v in OUTPUT_FILES.items()}
    existing = [p.name for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{out}: already holds {', '.join(existing)}; pass overwrite=True "
                                "(`--overwrite`) to replace them or choose another directory.")
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
    north = grid.north_angle()
    c_lon, c_lat = (float(v) for v in grid.uv_to_lonlat(size / 2, size / 2))
    c_h = float(terrain[size // 2, size // 2])

    # ------------------------------------------------------------------ truth independent of views
    change = ((e1.dsm != e2.dsm) | (e1.material != e2.material)).astype(np.uint8)
    elevated = (((e1.dsm - terrain) > ELEVATED_M) | ((e2.dsm - terrain) > ELEVATED_M)).astype(np.uint8)

    # ------------------------------------------------------------------ cameras, RPCs
    rng_bias = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB1A5]))
    lon_c, lat_c = grid.uv_to_lonlat(np.array([0.0, size, size, 0.0]), np.array([0.0, 0.0, size, size]))
    pad_lon = 0.02 * (lon_c.max() - lon_c.min())
    pad_lat = 0.02 * (lat_c.max() - lat_c.min())
    domain = (lon_c.min() - pad_lon, lon_c.max() + pad_lon, lat_c.min() - pad_lat, lat_c.max() + pad_lat,
              h_min - 10.0, h_max + 10.0)
    cams, rpcs, rpcs_true, fits, bias = {}, {}, {}, {}, {}
    for name, (off, az) in views_req.items():
        cam = PushbroomCamera.looking_at(c_lon, c_lat, c_h, off, az, altitude=altitude, gsd=gsd)
        cam, shape = views.image_frame(cam, grid, z_bot, z_top)
        cams[name] = cam
        ang = rng_bias.uniform(0, 2 * math.pi)
        aff = (1.0, 0.0, bias_px * math.cos(ang), 0.0, 1.0, bias_px * math.sin(ang))
        bias[name] = aff
        fit_true = fit_rpc(cam.project, domain, source=f"simulated {name} (true)")
        rpcs_true[name] = fit_true.rpc
        if bias_px != 0.0:
            fit = fit_rpc(lambda lo, la, h, cam=cam, aff=aff: affine_apply(aff, *cam.project(lo, la, h)), domain,
                          source=f"simulated {name} (bias {bias_px:g} px)")
        else:
            fit = fit_true
        rpcs[name], fits[name] = fit.rpc, (fit, fit_true)

    # ------------------------------------------------------------------ rendering
    sky = np.asarray(SKY)
    epochs = {}
    for k, (name, e) in enumerate((("base", e1), ("target", e2))):
        s_el, s_az = sun_position(times[k], c_lon, c_lat)
        sun = sun_vector(s_el, s_az + north)
        albedo, side = e.albedo, e.side
        if k == 1:
            veg = (e.kind == sc.GRASS) | (e.kind == sc.TREE)
            tint = np.asarray(VEG_TINT2 if opt["decorrelation"] == 0 else VEG_TINT2_DRY, np.float32)[:, None]
            # in place: the epoch-2 raster keeps the reflectances the target image shows
            if opt["decorrelation"] > 0:
                sc.retexture(albedo, seed, cell, 0.3 * float(opt["decorrelation"]), out=albedo)
                sc.retexture(side, seed + 1, cell, 0.3 * float(opt["decorrelation"]), out=side)
            albedo[:, veg] *= tint
            side[:, veg] *= tint
        epochs[name] = dict(raster=e, sun=sun, sun_elevation=s_el, sun_azimuth=s_az, albedo=albedo, side=side)

    radiometry = {"base": dict(gain=[1.0] * 4, offset=list(OFFSET1), gamma=[1.0] * 4),
                  "target": dict(gain=list(GAIN2), offset=list(OFFSET2), gamma=[1.0] * 4)}
    if opt["decorrelation"] > 0:
        d = float(opt["decorrelation"])
        radiometry["target"] = dict(gain=list(1.0 + 0.4 * d * rng_h.uniform(-1, 1, 4)),
                                    offset=list(d * rng_h.uniform(-30.0, 150.0, 4)),
                                    gamma=list(1.0 + 0.35 * d * rng_h.uniform(-1, 1, 4)))
    images, vis_counts, occluded, lattices, lat_err = {}, {}, np.zeros(grid.shape, np.uint8), {}, {}
    shadow = np.zeros(grid.shape, np.uint8)
    for k, name in enumerate(("base", "target")):
        cam = cams[name]
        ep = epochs[name]
        e = ep["raster"]
        lat = views.ray_lattice(cam, grid, cam.shape, z_top, z_bot)
        lattices[name] = lat
        lat_err[name] = views.lattice_error(cam, grid, lat, n=64, seed=seed)
        nrm = views.normals(e.dsm, cell)
        rad, counts = views.render_view(lat, grid, e.dsm, cam.shape, ss=supersample, shading=dict(
            terrain=terrain, albedo=ep["albedo"], side=ep["side"], kind=e.kind, cell=cell, sun=ep["sun"], sky=sky,
            shadows=shadows, nrm=nrm))
        vis_counts[name] = counts
        occluded |= np.where(counts == 0, 1 << k, 0).astype(np.uint8)
        # no direct sun on the cell top at this epoch (cast shadow or facing away)
        dark = views.cast_shadows(e.dsm, ep["sun"], cell).astype(bool) if shadows else np.zeros(grid.shape, bool)
        dark |= np.tensordot(np.asarray(ep["sun"]), nrm, axes=1) <= 0
        shadow |= np.where(dark, 1 << k, 0).astype(np.uint8)
        del nrm, dark
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), k, 0x4015E]))
        images[name] = to_dn(rad, radiometry[name], int(opt["bands"]), rng, noise_dn)
        del rad
    # the target view over the epoch-1 surface (what a pipeline using dsm.tif computes)
    _, vis_counts["target_over_dsm"] = views.render_view(lattices["target"], grid, e1.dsm, cams["target"].shape,
                                                         ss=supersample)
    occluded |= np.where(vis_counts["target_over_dsm"] == 0, 4, 0).astype(np.uint8)
    # the stricter per-centre reference (line of sight from each cell's top centre to the satellite)
    occluded |= (views.centre_hidden(cams["base"], grid, e1.dsm) * 8).astype(np.uint8)
    occluded |= (views.centre_hidden(cams["target"], grid, e2.dsm) * 16).astype(np.uint8)

    # ------------------------------------------------------------------ GCPs
    gcps, dist = {}, clearance(elevated, grid.cell)
    for k, name in enumerate(("base", "target")):
        gcps[name] = pick_gcps(grid, e1, e2, terrain, elevated, change, vis_counts[name], supersample,
                               cams[name], seed + 17 * k, dist=dist)
    del dist

    # ------------------------------------------------------------------ write
    vdesc = {}
    for k, name in enumerate(("base", "target")):
        cam = cams[name]
        fit, fit_true = fits[name]
        zen, azi = cam.view_angles_at(c_lon, c_lat, c_h)
        rep = dict(
            file=OUTPUT_FILES[name], epoch=k + 1, acquired=dates[k], shape=list(cam.shape),
            requested_off_nadir_deg=views_req[name][0], requested_azimuth_deg=views_req[name][1],
            off_nadir_deg_at_centre=float(zen), azimuth_deg_at_centre=float(azi),
            sun_elevation_deg=epochs[name]["sun_elevation"], sun_azimuth_deg=epochs[name]["sun_azimuth"],
            camera=cam.describe(), rpc_fit=fit.report(), rpc_fit_true=fit_true.report(),
            rpc_true=fit_true.rpc.to_gdal(), bias_affine=list(bias[name]),
            ray_lattice_max_error_cells=lat_err[name],
            gcps=OUTPUT_FILES[f"gcps_{name}"], n_gcps=len(gcps[name]),
            radiometry=dict(gain=list(np.ones(4) if k == 0 else GAIN2), offset=list(OFFSET1 if k == 0 else OFFSET2),
                            dn_per_radiance=DN_SCALE, noise_dn=noise_dn, sky=list(SKY),
                            vegetation_tint=list(VEG_TINT2) if k == 1 else [1.0] * 4),
        )
        if harder:
            rep["radiometry"].update(radiometry[name], bands=int(opt["bands"]),
                                     vegetation_tint=list(VEG_TINT2 if opt["decorrelation"] == 0 else VEG_TINT2_DRY)
                                     if k == 1 else [1.0] * 4,
                                     retexture_strength=0.3 * float(opt["decorrelation"]) if k == 1 else 0.0)
            rep["metadata_in_file"] = bool(opt["metadata"])
        vdesc[name] = rep
        tags = dict(EPOCH=k + 1, VIEW_OFF_NADIR_DEG=f"{float(zen):.4f}", VIEW_AZIMUTH_DEG=f"{float(azi):.4f}",
                    SUN_ELEVATION_DEG=f"{epochs[name]['sun_elevation']:.4f}",
                    SUN_AZIMUTH_DEG=f"{epochs[name]['sun_azimuth']:.4f}",
                    BIAS_INJECTED_AFFINE=" ".join(f"{v:.6f}" for v in bias[name]),
                    SIMULATED_BY="offnadir.simulate")
        if not opt["metadata"]:
            tags = {t: v for t, v in tags.items() if not t.startswith("SUN_")}
        write.write_image(paths[name], images[name], rpcs[name], acquired=dates[k] if opt["metadata"] else None,
                          tags=tags)
        write.write_gcps(paths[f"gcps_{name}"], gcps[name])

    dh_min = truth.parallax_dh_min({n: (vdesc[n]["off_nadir_deg_at_centre"], vdesc[n]["azimuth_deg_at_centre"])
                                    for n in ("base", "target")}, gsd, ELEVATED_M)
    change_class = truth.change_classes(e1, e2, [dict(id=b.id, change=b.change) for b in model.buildings],
                                        sc.TREE, dh_min)
    structural = truth.structural(change_class, e2.dsm - e1.dsm)
    write.write_dsm(paths["dsm"], e1.dsm, grid, epoch=1, acquired=dates[0])
    write.write_dsm(paths["dsm_epoch2"], e2.dsm, grid, epoch=2, acquired=dates[1])
    write.write_dsm(paths["dtm"], terrain, grid, epoch=0, acquired=dates[0],
                    extra=dict(CONTENT="bare terrain (no buildings, no trees)"))
    write.write_grid_raster(paths["truth_change"], change, grid, description="change 0/1", tags=dict(
        MEANING="1: the surface changed in height or material between the epochs (demolished, new, "
                "raised or re-roofed buildings); sun, shadows, vegetation tint, gains and noise are not change"))
    write.write_grid_raster(paths["truth_change_class"], change_class, grid, description="change class", tags=dict(
        MEANING="; ".join(f"{k} {v}" for k, v in truth.CLASSES.items()),
        DH_MIN_M=f"{dh_min:.4f}", RULES="see offnadir.simulate.truth"))
    write.write_grid_raster(paths["truth_structural"], structural, grid, description="height change 0/1/2/255",
                            tags=dict(MEANING="1: loss (demolished, tree cut), 2: gain (new, raised, tree grown), "
                                              f"height change >= {dh_min:.3f} m; 0: none; 255: left out of the "
                                              "scores (re-roofed: material only; height change below one pixel "
                                              "of parallax)",
                                      EVALUATE="offnadir evaluate OUT.zarr truth_structural.tif"))
    write.write_grid_raster(paths["truth_elevated"], elevated, grid, description="elevated 0/1", tags=dict(
        MEANING=f"1: epoch-1 or epoch-2 surface more than {ELEVATED_M} m above the terrain"))
    write.write_grid_raster(paths["truth_occluded"], occluded, grid, description="occluded bits", tags=dict(
        MEANING="bit 1: hidden in the base view (epoch-1 surface); bit 2: hidden in the target view "
                "(epoch-2 surface); bit 4: hidden in the target view over the epoch-1 surface; "
                "bit 8 / 16: centre of the cell top hidden in the base / target view",
        METHOD=f"ray tracing, {supersample}x{supersample} rays per pixel; a cell is visible when a ray "
               "first hits its top; rims are uncertain by one cell"))
    write.write_grid_raster(paths["truth_shadow"], shadow, grid, description="no direct sun bits", tags=dict(
        MEANING="bit 1: cell top without direct sun at epoch 1 (cast shadow or facing away); bit 2: at epoch 2. "
                "Nuisance, not change."))

    counts = {int(b): int(n) for b, n in zip(*np.unique(np.r_[e1.building.ravel(), e2.building.ravel()],
                                                           return_counts=True)) if b}
    buildings = sc.building_records(model, grid.x0, grid.y0, counts)
    from offnadir._version import __version__

    meta = dict(
        generator=f"offnadir.simulate {__version__}", seed=int(seed), size=size, cell=float(cell),
        supersample=supersample, shadows=bool(shadows), bias_px=float(bias_px),
        grid=grid.describe(), center_lon=c_lon, center_lat=c_lat, center_h=c_h,
        heights=dict(datum="WGS84 ellipsoid (EPSG:4979 height)", terrain_min=float(terrain.min()),
                     terrain_max=float(terrain.max()), surface_max=h_max,
                     base_height=float(base_height)),
        rpc_domain=dict(zip(("lon_min", "lon_max", "lat_min", "lat_max", "h_min", "h_max"), map(float, domain))),
        views=vdesc,
        truth=dict(changed_cells=int(change.sum()), elevated_cells=int(elevated.sum()),
                   occluded_base_cells=int(((occluded & 1) > 0).sum()),
                   occluded_target_cells=int(((occluded & 2) > 0).sum()),
                   occluded_target_over_dsm_cells=int(((occluded & 4) > 0).sum()),
                   centre_hidden_base_cells=int(((occluded & 8) > 0).sum()),
                   centre_hidden_target_cells=int(((occluded & 16) > 0).sum()),
                   elevated_threshold_m=ELEVATED_M,
                   occlusion_method="ray tracing from the pixels (never forward projection)",
                   change_definition="dsm_epoch2 != dsm or material changed",
                   change_classes={truth.CLASSES[c]: int(n) for c, n in zip(*np.unique(change_class,
                                                                                        return_counts=True))},
                   structural_cells=int(np.isin(structural, (truth.LOSS, truth.GAIN)).sum()),
                   structural_ignored_cells=int((structural == truth.IGNORE).sum()),
                   structural_dh_min_m=dh_min,
                   structural_definition="height change >= structural_dh_min_m of a building or tree; re-roofs "
                                         "and smaller changes left out (offnadir.simulate.truth)"),
        changes={c: [b["id"] for b in buildings if b["change"] == c]
                 for c in ("demolished", "new", "raised", "reroofed")},
        buildings=buildings, trees=len(model.trees),
        **({"harder": dict(preset=preset, bands=int(opt["bands"]), decorrelation=float(opt["decorrelation"]),
                           metadata_in_files=bool(opt["metadata"]), tree_changes=float(opt["tree_changes"]),
                           trees_removed=trees_changed[0], trees_grown=trees_changed[1],
                           dates_from_seed=bool(opt["random_dates"]))} if harder else {}),
        files={k: v for k, v in OUTPUT_FILES.items()},
        layout=sc.model_to_dict(model),
        conventions=dict(pixels="RPC00B native: centre of the first pixel is (row 0, col 0)",
                         dsm_tags="VERTICAL_DATUM=ellipsoid, VERTICAL_CRS=EPSG:4979",
                         bias="the RPC in each image projects to bias_affine(true pixel); the GCPs give true pixels"),
    )
    meta["elapsed_s"] = None  # kept out of the file so it is byte-identical for a seed
    write.write_json(paths["scene_json"], meta)
    meta["elapsed_s"] = time.perf_counter() - t_start

    return SimulatedScene(
        out_dir=out, paths=paths, grid=grid, terrain=terrain, dsm=e1.dsm, dsm_epoch2=e2.dsm, change=change,
        elevated=elevated, occluded=occluded, shadow=shadow, base_image=images["base"],
        target_image=images["target"], base_camera=cams["base"], target_camera=cams["target"],
        base_rpc=rpcs["base"], target_rpc=rpcs["target"], base_rpc_true=rpcs_true["base"],
        target_rpc_true=rpcs_true["target"], bias=bias, buildings=buildings, meta=meta, model=model,
        epochs=(e1, e2), visible_counts=vis_counts, change_class=change_class, structural=structural)
