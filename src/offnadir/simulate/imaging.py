"""Imaging the two epochs: the sun of each epoch and its surface reflectances (vegetation tint,
re-texturing), then every view rendered by ray tracing, with the visibility and shadow truth that
falls out of the same rays."""

from __future__ import annotations

import numpy as np

from offnadir.simulate import views
from offnadir.simulate.presets import SKY, vegetation_tint2


def illuminate(e1, e2, times, centre_lonlat, north: float, opt: dict, seed: int, cell: float) -> list[dict]:
    """Per epoch (1, 2): its raster, sun vector on the grid and sun angles; epoch 2's albedo and
    side reflectance get the season's vegetation tint and, when ``decorrelation`` > 0, a new
    texture (in place: the epoch-2 raster keeps the reflectances the target image shows)."""
    from offnadir.simulate import scene as sc
    from offnadir.simulate.sun import sun_vector
    from offnadir.sun import sun_position

    c_lon, c_lat = centre_lonlat
    out = []
    for k, e in enumerate((e1, e2)):
        s_el, s_az = sun_position(times[k], c_lon, c_lat)
        sun = sun_vector(s_el, s_az + north)
        albedo, side = e.albedo, e.side
        if k == 1:
            veg = (e.kind == sc.GRASS) | (e.kind == sc.TREE)
            tint = vegetation_tint2(opt)[:, None]
            if opt["decorrelation"] > 0:
                sc.retexture(albedo, seed, cell, 0.3 * float(opt["decorrelation"]), out=albedo)
                sc.retexture(side, seed + 1, cell, 0.3 * float(opt["decorrelation"]), out=side)
            albedo[:, veg] *= tint
            side[:, veg] *= tint
        out.append(dict(raster=e, sun=sun, sun_elevation=s_el, sun_azimuth=s_az, albedo=albedo, side=side))
    return out


def render_views(view_epochs: dict, cams: dict, epochs: list[dict], grid, terrain, radiometry: dict, *, seed: int,
                 cell: float, supersample: int, shadows: bool, bands: int, noise_dn: float, z_top: float,
                 z_bot: float) -> dict:
    """Render every view of ``view_epochs`` (name -> epoch index 0/1, in order; the k-th view's
    noise is drawn from the seed and k). Returns images (DN), visible ray counts per cell, lattices
    and their errors, and the shadow bits (1 << epoch: no direct sun on the cell top)."""
    from offnadir.simulate.radiometry import to_dn

    sky = np.asarray(SKY)
    images, vis_counts, lattices, lat_err = {}, {}, {}, {}
    shadow = np.zeros(grid.shape, np.uint8)
    done_shadow = set()
    for k, (name, ep_k) in enumerate(view_epochs.items()):
        cam = cams[name]
        ep = epochs[ep_k]
        e = ep["raster"]
        lat = views.ray_lattice(cam, grid, cam.shape, z_top, z_bot)
        lattices[name] = lat
        lat_err[name] = views.lattice_error(cam, grid, lat, n=64, seed=seed)
        nrm = views.normals(e.dsm, cell)
        rad, counts = views.render_view(lat, grid, e.dsm, cam.shape, ss=supersample, shading=dict(
            terrain=terrain, albedo=ep["albedo"], side=ep["side"], kind=e.kind, cell=cell, sun=ep["sun"], sky=sky,
            shadows=shadows, nrm=nrm))
        vis_counts[name] = counts
        if ep_k not in done_shadow:  # one epoch, one sun, one surface: its shadows once
            dark = views.cast_shadows(e.dsm, ep["sun"], cell).astype(bool) if shadows \
                else np.zeros(grid.shape, bool)
            dark |= np.tensordot(np.asarray(ep["sun"]), nrm, axes=1) <= 0
            shadow |= np.where(dark, 1 << ep_k, 0).astype(np.uint8)
            done_shadow.add(ep_k)
            del dark
        del nrm
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), k, 0x4015E]))
        images[name] = to_dn(rad, radiometry[name], int(bands), rng, noise_dn)
        del rad
    return dict(images=images, vis_counts=vis_counts, lattices=lattices, lattice_error=lat_err, shadow=shadow)



def base_occlusion(cam, grid, e1, counts) -> np.ndarray:
    """Occlusion bits of the base view (epoch-1 surface): 1 no ray reaches the cell's top, 8 the
    line of sight from the centre of its top is blocked."""
    occluded = np.where(counts == 0, 1, 0).astype(np.uint8)
    occluded |= (views.centre_hidden(cam, grid, e1.dsm) * 8).astype(np.uint8)
    return occluded


def target_occlusion(name: str, base_bits, cams, lattices, vis_counts, grid, e1, e2, supersample: int) -> np.ndarray:
    """``truth_occluded`` for the base and the epoch-2 view ``name``: ``base_bits`` (1, 8) plus 2 no
    ray of the view reaches the cell's top (epoch-2 surface), 4 the same over the epoch-1 surface
    (what a pipeline using dsm.tif should find; its ray counts are added to ``vis_counts`` as
    ``NAME_over_dsm``), 16 the line of sight from the centre of the top is blocked (epoch 2)."""
    occluded = base_bits.copy()
    occluded |= np.where(vis_counts[name] == 0, 2, 0).astype(np.uint8)
    _, vis_counts[f"{name}_over_dsm"] = views.render_view(lattices[name], grid, e1.dsm, cams[name].shape,
                                                          ss=supersample)
    occluded |= np.where(vis_counts[f"{name}_over_dsm"] == 0, 4, 0).astype(np.uint8)
    occluded |= (views.centre_hidden(cams[name], grid, e2.dsm) * 16).astype(np.uint8)
    return occluded
