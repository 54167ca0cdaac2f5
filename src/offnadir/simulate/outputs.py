"""Writing a simulated scene: the images with their RPCs and tags, the GCPs, the DSMs, the truth
rasters and scene.json (see :mod:`offnadir.simulate` for the files). ``st`` is the
:class:`types.SimpleNamespace` :func:`offnadir.simulate.simulate` builds with everything drawn."""

from __future__ import annotations

import numpy as np

from offnadir.simulate import truth, write
from offnadir.simulate.presets import (ELEVATED_M, GAIN2, OFFSET1, OFFSET2, SKY, VEG_TINT2, VEG_TINT2_DRY,
                                       base_to_height)
from offnadir.simulate.radiometry import DN_SCALE


def write_views(st) -> dict:
    """Write every view's image and GCPs; return the per-view records of scene.json."""
    vdesc = {}
    c_lon, c_lat, c_h = st.centre
    for name, k in st.view_epochs.items():
        cam = st.cams[name]
        fit, fit_true = st.fits[name]
        ep = st.epochs[k]
        zen, azi = cam.view_angles_at(c_lon, c_lat, c_h)
        rep = dict(
            file=st.files[name], epoch=k + 1, acquired=st.dates[k], shape=list(cam.shape),
            requested_off_nadir_deg=st.views_req[name][0], requested_azimuth_deg=st.views_req[name][1],
            off_nadir_deg_at_centre=float(zen), azimuth_deg_at_centre=float(azi),
            sun_elevation_deg=ep["sun_elevation"], sun_azimuth_deg=ep["sun_azimuth"],
            camera=cam.describe(), rpc_fit=fit.report(), rpc_fit_true=fit_true.report(),
            rpc_true=fit_true.rpc.to_gdal(), bias_affine=list(st.bias[name]),
            ray_lattice_max_error_cells=st.lattice_error[name],
            gcps=st.files[f"gcps_{name}"], n_gcps=len(st.gcps[name]),
            radiometry=dict(gain=list(np.ones(4) if k == 0 else GAIN2), offset=list(OFFSET1 if k == 0 else OFFSET2),
                            dn_per_radiance=DN_SCALE, noise_dn=st.noise_dn, sky=list(SKY),
                            vegetation_tint=list(VEG_TINT2) if k == 1 else [1.0] * 4),
        )
        opt = st.opt
        if st.harder:
            rep["radiometry"].update(st.radiometry[name], bands=int(opt["bands"]),
                                     vegetation_tint=list(VEG_TINT2 if opt["decorrelation"] == 0 else VEG_TINT2_DRY)
                                     if k == 1 else [1.0] * 4,
                                     retexture_strength=0.3 * float(opt["decorrelation"]) if k == 1 else 0.0)
            rep["metadata_in_file"] = bool(opt["metadata"])
        vdesc[name] = rep
        tags = dict(EPOCH=k + 1, VIEW_OFF_NADIR_DEG=f"{float(zen):.4f}", VIEW_AZIMUTH_DEG=f"{float(azi):.4f}",
                    SUN_ELEVATION_DEG=f"{ep['sun_elevation']:.4f}",
                    SUN_AZIMUTH_DEG=f"{ep['sun_azimuth']:.4f}",
                    BIAS_INJECTED_AFFINE=" ".join(f"{v:.6f}" for v in st.bias[name]),
                    SIMULATED_BY="offnadir.simulate")
        if not opt["metadata"]:
            tags = {t: v for t, v in tags.items() if not t.startswith("SUN_")}
        write.write_image(st.paths[name], st.images[name], st.rpcs[name],
                          acquired=st.dates[k] if opt["metadata"] else None, tags=tags)
        write.write_gcps(st.paths[f"gcps_{name}"], st.gcps[name])
    return vdesc


OCCLUDED_MEANING = ("bit 1: hidden in the base view (epoch-1 surface); bit 2: hidden in the {t} view "
                    "(epoch-2 surface); bit 4: hidden in the {t} view over the epoch-1 surface; "
                    "bit 8 / 16: centre of the cell top hidden in the base / {t} view")


def write_occluded(path, occluded, st, target: str = "target") -> None:
    write.write_grid_raster(path, occluded, st.grid, description="occluded bits", tags=dict(
        MEANING=OCCLUDED_MEANING.format(t=target),
        METHOD=f"ray tracing, {st.supersample}x{st.supersample} rays per pixel; a cell is visible when a ray "
               "first hits its top; rims are uncertain by one cell"))


def write_truth(st, vdesc: dict):
    """Write the DSMs and the truth rasters; return (change_class, structural, dh_min)."""
    e1, e2, grid, dates, paths = st.e1, st.e2, st.grid, st.dates, st.paths
    dh_min = truth.parallax_dh_min({n: (vdesc[n]["off_nadir_deg_at_centre"], vdesc[n]["azimuth_deg_at_centre"])
                                    for n in ("base", "target")}, st.gsd, ELEVATED_M)
    change_class = truth.change_classes(e1, e2, [dict(id=b.id, change=b.change) for b in st.model.buildings],
                                        st.tree_kind, dh_min)
    structural = truth.structural(change_class, e2.dsm - e1.dsm)
    write.write_dsm(paths["dsm"], e1.dsm, grid, epoch=1, acquired=dates[0])
    write.write_dsm(paths["dsm_epoch2"], e2.dsm, grid, epoch=2, acquired=dates[1])
    write.write_dsm(paths["dtm"], st.terrain, grid, epoch=0, acquired=dates[0],
                    extra=dict(CONTENT="bare terrain (no buildings, no trees)"))
    write.write_grid_raster(paths["truth_change"], st.change, grid, description="change 0/1", tags=dict(
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
    write.write_grid_raster(paths["truth_elevated"], st.elevated, grid, description="elevated 0/1", tags=dict(
        MEANING=f"1: epoch-1 or epoch-2 surface more than {ELEVATED_M} m above the terrain"))
    write_occluded(paths["truth_occluded"], st.occluded, st)
    write.write_grid_raster(paths["truth_shadow"], st.shadow, grid, description="no direct sun bits", tags=dict(
        MEANING="bit 1: cell top without direct sun at epoch 1 (cast shadow or facing away); bit 2: at epoch 2. "
                "Nuisance, not change."))
    return change_class, structural, dh_min


def scene_meta(st, vdesc: dict, buildings: list, change_class, structural, dh_min: float) -> dict:
    """The content of scene.json."""
    from offnadir._version import __version__

    occluded, opt, terrain = st.occluded, st.opt, st.terrain
    c_lon, c_lat, c_h = st.centre
    meta = dict(
        generator=f"offnadir.simulate {__version__}", seed=int(st.seed), size=st.size, cell=float(st.cell),
        supersample=st.supersample, shadows=bool(st.shadows), bias_px=float(st.bias_px),
        grid=st.grid.describe(), center_lon=c_lon, center_lat=c_lat, center_h=c_h,
        heights=dict(datum="WGS84 ellipsoid (EPSG:4979 height)", terrain_min=float(terrain.min()),
                     terrain_max=float(terrain.max()), surface_max=st.h_max,
                     base_height=float(st.base_height)),
        rpc_domain=dict(zip(("lon_min", "lon_max", "lat_min", "lat_max", "h_min", "h_max"), map(float, st.domain))),
        views=vdesc,
        truth=dict(changed_cells=int(st.change.sum()), elevated_cells=int(st.elevated.sum()),
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
        buildings=buildings, trees=len(st.model.trees),
        **({"harder": dict(preset=st.preset, bands=int(opt["bands"]), decorrelation=float(opt["decorrelation"]),
                           metadata_in_files=bool(opt["metadata"]), tree_changes=float(opt["tree_changes"]),
                           trees_removed=st.trees_changed[0], trees_grown=st.trees_changed[1],
                           dates_from_seed=bool(opt["random_dates"]))} if st.harder else {}),
        files=dict(st.files),
        layout=st.layout,
        conventions=dict(pixels="RPC00B native: centre of the first pixel is (row 0, col 0)",
                         dsm_tags="VERTICAL_DATUM=ellipsoid, VERTICAL_CRS=EPSG:4979",
                         bias="the RPC in each image projects to bias_affine(true pixel); the GCPs give true pixels"),
    )
    return meta


def stereo_meta(vdesc: dict, occluded2) -> dict:
    """scene.json ``stereo``: the epoch-2 pair, its B/H at the scene centre, its occlusion counts."""
    va, vb = ((vdesc[n]["off_nadir_deg_at_centre"], vdesc[n]["azimuth_deg_at_centre"]) for n in ("target", "target2"))
    return dict(views=["target", "target2"], same_date=vdesc["target"]["acquired"],
                base_to_height=base_to_height(va, vb),
                occluded_target2_cells=int(((occluded2 & 2) > 0).sum()),
                occluded_target2_over_dsm_cells=int(((occluded2 & 4) > 0).sum()),
                centre_hidden_target2_cells=int(((occluded2 & 16) > 0).sum()),
                truth="truth_change, truth_structural, truth_change_class, truth_shadow are the pair's too (one "
                      "surface, one sun); truth_occluded_target2.tif has the occlusion bits of the base and "
                      "target2 (same layout as truth_occluded.tif)")
