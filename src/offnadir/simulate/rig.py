"""The simulated satellites: one physical pushbroom camera per view, framed on the scene, with the
RPC00B models fitted to it (true, and with the injected bias the image files carry)."""

from __future__ import annotations

import math

import numpy as np

from offnadir.simulate import views
from offnadir.simulate.camera_model import PushbroomCamera, affine_apply, fit_rpc


def rpc_domain(grid, size: int, h_min: float, h_max: float) -> tuple:
    """(lon_min, lon_max, lat_min, lat_max, h_min, h_max) the RPCs are fitted over: the grid's
    extent plus 2 %, the surface's height range plus 10 m."""
    lon_c, lat_c = grid.uv_to_lonlat(np.array([0.0, size, size, 0.0]), np.array([0.0, 0.0, size, size]))
    pad_lon = 0.02 * (lon_c.max() - lon_c.min())
    pad_lat = 0.02 * (lat_c.max() - lat_c.min())
    return (lon_c.min() - pad_lon, lon_c.max() + pad_lon, lat_c.min() - pad_lat, lat_c.max() + pad_lat,
            h_min - 10.0, h_max + 10.0)


def build_cameras(views_req: dict, grid, centre, z_bot: float, z_top: float, domain, *, seed: int, bias_px: float,
                  altitude: float, gsd: float):
    """Per view name (in ``views_req`` order): camera, RPC as written, true RPC, (fit, true fit),
    bias affine. The bias direction of each view is drawn in that order from the seed."""
    c_lon, c_lat, c_h = centre
    rng_bias = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB1A5]))
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
    return cams, rpcs, rpcs_true, fits, bias
