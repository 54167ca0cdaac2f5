"""A simulated time series: one city seen at N dates, each from its own view and sun, with
buildings built, demolished, raised or re-roofed at known dates.

Built from the simulator's parts (:mod:`~offnadir.simulate.scene` for the city and its two
epochs, :mod:`~offnadir.simulate.views` for ray tracing, :mod:`~offnadir.simulate.camera_model`
for the cameras and RPCs, :mod:`~offnadir.simulate.write` for the files). The changes between
the scene's two epochs are split into connected pieces; each piece is given one change date
(dates 2..N in turn, so every later date brings some change), and the surface at date ``k`` is the
epoch-2 surface on the pieces changed at or before ``k`` and the epoch-1 surface elsewhere.

Output directory::

    dsm.tif                  the surface at the first date (what the pipeline uses)
    image_K.tif              image of date K (K = 0..N-1), RPC tags and acquisition time
    truth_change_date.tif    int32: index of the date at which the cell changed, -1 never
    series.json              dates, views, suns, per-piece change dates
    items.json               a JSON list of STAC items (pystac), one per image, with datetime,
                             view:off_nadir, view:azimuth, view:sun_azimuth, view:sun_elevation

``python -m offnadir.simulate.series OUT_DIR`` writes the default series.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offnadir.errors import ConfigError, OutputExistsError

#: (off-nadir deg, azimuth deg, ISO time) per date: views and suns differ from date to date
DEFAULT_SERIES = (
    (8.0, 100.0, "2019-05-20T10:30:00Z"),
    (22.0, 270.0, "2020-08-14T10:45:00Z"),
    (15.0, 200.0, "2021-10-03T10:15:00Z"),
    (18.0, 20.0, "2022-06-11T11:00:00Z"),
    (12.0, 320.0, "2023-04-27T10:35:00Z"),
)


@dataclass
class SimulatedSeries:
    out_dir: Path
    dsm: Path
    images: list  #: image paths, date order
    dates: list  #: ISO dates YYYY-MM-DD
    suns: list  #: (azimuth, elevation) degrees per image
    change_date: np.ndarray  #: (H, W) int32 date index of the change, -1 never
    items: Path


def simulate_series(out_dir, seed: int = 3, size: int = 160, cell: float = 0.5, views=DEFAULT_SERIES, *,
                    supersample: int = 2, noise_dn: float = 6.0, center_lonlat=(5.44, 43.26),
                    base_height: float = 150.0, altitude: float = 600e3, overwrite: bool = False) -> SimulatedSeries:
    """Write a series of ``len(views)`` dates (at least 2) into ``out_dir``; see the module doc."""
    from scipy import ndimage

    from offnadir.simulate import scene as sc
    from offnadir.simulate import views as vw
    from offnadir.simulate import write
    from offnadir.simulate import DN_SCALE, OFFSET1, SKY
    from offnadir.simulate.camera_model import PushbroomCamera, fit_rpc
    from offnadir.simulate.grid import Grid
    from offnadir.simulate.sun import parse_utc, sun_vector
    from offnadir.sun import sun_position

    views = [tuple(v) for v in views]
    if len(views) < 2:
        raise ConfigError(f"a series needs at least two dates; got {len(views)}.")
    out = Path(out_dir)
    names = [f"image_{k}.tif" for k in range(len(views))] + ["dsm.tif", "truth_change_date.tif", "series.json",
                                                               "items.json"]
    if any((out / n).exists() for n in names) and not overwrite:
        raise OutputExistsError(f"{out}: already holds a series; pass overwrite=True or choose another directory.")
    out.mkdir(parents=True, exist_ok=True)

    model = sc.generate(seed, size, cell, base_height)
    terrain, e1, e2, _ = sc.rasterize(model)
    changed = (e1.dsm != e2.dsm) | (e1.material != e2.material)
    pieces, n_pieces = ndimage.label(changed, structure=np.ones((3, 3)))
    # the pieces, in an order drawn from the seed, change at dates 1, 2, ..., N-1, 1, 2, ... in turn
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E41E5])).permutation(n_pieces)
    piece_date = np.r_[-1, 1 + (np.argsort(order) % (len(views) - 1))].astype(np.int32)
    change_date = piece_date[pieces]
    dh = e2.dsm - e1.dsm
    kinds = [_kind(dh[pieces == p + 1]) for p in range(n_pieces)]

    grid = Grid.centred(center_lonlat[0], center_lonlat[1], size, cell, None)
    h_min, h_max = float(min(e1.dsm.min(), e2.dsm.min())), float(max(e1.dsm.max(), e2.dsm.max()))
    z_top, z_bot = h_max + 1.0, h_min - 1.0
    north = grid.north_angle()
    c_lon, c_lat = (float(v) for v in grid.uv_to_lonlat(size / 2, size / 2))
    c_h = float(terrain[size // 2, size // 2])
    lon_c, lat_c = grid.uv_to_lonlat(np.array([0.0, size, size, 0.0]), np.array([0.0, 0.0, size, size]))
    pad_lon, pad_lat = 0.02 * (lon_c.max() - lon_c.min()), 0.02 * (lat_c.max() - lat_c.min())
    domain = (lon_c.min() - pad_lon, lon_c.max() + pad_lon, lat_c.min() - pad_lat, lat_c.max() + pad_lat,
              h_min - 10.0, h_max + 10.0)

    paths, dates, suns, records = [], [], [], []
    for k, (off, az, when) in enumerate(views):
        new = (change_date >= 0) & (change_date <= k)
        dsm = np.where(new, e2.dsm, e1.dsm)
        kind = np.where(new, e2.kind, e1.kind)
        albedo = np.where(new[None], e2.albedo, e1.albedo)
        side = np.where(new[None], e2.side, e1.side)
        cam = PushbroomCamera.looking_at(c_lon, c_lat, c_h, float(off), float(az), altitude=altitude, gsd=cell)
        cam, _ = vw.image_frame(cam, grid, z_bot, z_top)
        rpc = fit_rpc(cam.project, domain, source=f"simulated series date {k}").rpc
        t = parse_utc(when)
        s_el, s_az = sun_position(t, c_lon, c_lat)
        hits = vw.trace_view(cam, grid, dsm, cam.shape, ss=supersample)
        rad = vw.shade(hits, dsm=dsm, terrain=terrain, albedo=albedo, side=side, kind=kind, cell=cell,
                       sun=sun_vector(s_el, s_az + north), sky=np.asarray(SKY), shadows=True)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), k, 0x5E1E5]))
        gain = 1.0 + 0.05 * rng.uniform(-1, 1, 4)  # a sensor gain per date (radiometry is a weak witness)
        dn = rad * (DN_SCALE * gain)[:, None, None] + np.asarray(OFFSET1)[:, None, None]
        dn = dn + rng.normal(0.0, noise_dn, dn.shape) if noise_dn > 0 else dn
        img = np.clip(np.rint(dn), 0, 65535).astype(np.uint16)
        zen, azi = cam.view_angles_at(c_lon, c_lat, c_h)
        p = out / f"image_{k}.tif"
        write.write_image(p, img, rpc, acquired=when, tags=dict(
            EPOCH=k + 1, VIEW_OFF_NADIR_DEG=f"{float(zen):.4f}", VIEW_AZIMUTH_DEG=f"{float(azi):.4f}",
            SUN_ELEVATION_DEG=f"{s_el:.4f}", SUN_AZIMUTH_DEG=f"{s_az:.4f}", SIMULATED_BY="offnadir.simulate.series"))
        paths.append(p)
        dates.append(when[:10])
        suns.append((float(s_az), float(s_el)))
        records.append(dict(file=p.name, datetime=when, off_nadir_deg=float(zen), azimuth_deg=float(azi),
                            sun_azimuth_deg=float(s_az), sun_elevation_deg=float(s_el), gain=list(gain)))

    write.write_dsm(out / "dsm.tif", e1.dsm, grid, epoch=1, acquired=views[0][2])
    write.write_grid_raster(out / "truth_change_date.tif", change_date.astype(np.int32), grid,
                            description="date index of the change, -1 never", tags=dict(
                                MEANING="index (0-based, in series.json's date order) of the first date whose "
                                        "surface differs from the first date's; -1: never changed"))
    (out / "series.json").write_text(json.dumps(dict(
        seed=int(seed), size=int(size), cell=float(cell), dates=records,
        pieces=[dict(piece=int(p + 1), date_index=int(piece_date[p + 1]), cells=int((pieces == p + 1).sum()),
                     kind=kinds[p]) for p in range(n_pieces)],
        changed_cells_per_date=[int((change_date == k).sum()) for k in range(len(views))]), indent=1) + "\n")
    items = write_items(out / "items.json", paths, records, grid)
    return SimulatedSeries(out, out / "dsm.tif", paths, dates, suns, change_date, items)


def _kind(dh) -> str:
    """What a changed piece is, from its height change (metres): new, demolished, raised, lowered,
    or material only (re-roofed)."""
    med = float(np.median(dh)) if dh.size else 0.0
    if abs(med) < 0.5:
        return "material"
    if med > 0:
        return "new" if med > 5 else "raised"
    return "demolished" if med < -5 else "lowered"


def write_items(path: Path, images, records, grid) -> Path:
    """A JSON list of STAC items (pystac, view extension fields), one per image."""
    import pystac

    lon, lat = grid.uv_to_lonlat(np.array([0.0, grid.shape[1], grid.shape[1], 0.0]),
                                 np.array([0.0, 0.0, grid.shape[0], grid.shape[0]]))
    ring = [[float(a), float(b)] for a, b in zip(lon, lat)]
    geom = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
    bbox = [float(min(lon)), float(min(lat)), float(max(lon)), float(max(lat))]
    out = []
    for p, r in zip(images, records):
        from offnadir.simulate.sun import parse_utc

        it = pystac.Item(id=Path(p).stem, geometry=geom, bbox=bbox, datetime=parse_utc(r["datetime"]),
                         properties={"view:off_nadir": r["off_nadir_deg"], "view:azimuth": r["azimuth_deg"],
                                     "view:sun_azimuth": r["sun_azimuth_deg"],
                                     "view:sun_elevation": r["sun_elevation_deg"]},
                         stac_extensions=["https://stac-extensions.github.io/view/v1.0.0/schema.json"])
        it.add_asset("image", pystac.Asset(href=Path(p).name, media_type=pystac.MediaType.GEOTIFF,
                                           roles=["data"], title="image with RPC tags"))
        out.append(it.to_dict(include_self_link=False))
    Path(path).write_text(json.dumps(out, indent=1) + "\n")
    return Path(path)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m offnadir.simulate.series", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--dates", type=int, default=len(DEFAULT_SERIES), help=f"2..{len(DEFAULT_SERIES)}")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    if not 2 <= a.dates <= len(DEFAULT_SERIES):
        raise SystemExit(f"--dates must be between 2 and {len(DEFAULT_SERIES)}")
    s = simulate_series(a.out_dir, seed=a.seed, size=a.size, views=DEFAULT_SERIES[:a.dates], overwrite=a.overwrite)
    print(f"wrote {len(s.images)} images to {s.out_dir}; changed cells per date: "
          f"{[int((s.change_date == k).sum()) for k in range(len(s.images))]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
