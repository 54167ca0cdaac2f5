"""``offnadir info``: what offnadir understands of an image's camera model.

Shows the sensor, where the model came from and its format, the image size, the model's validity
domain, the ground footprint (at the model's height offset), the view geometry at the image centre
and, with ``--gcps``, each GCP's miss before and after the bias fit plus its leave-one-out miss.
``--json`` prints the same as one JSON object whose keys are always present (null when unknown).
"""

from __future__ import annotations

import argparse
import json
import math
import warnings

NAME = "info"
#: ring indices of the four image corners in Camera.footprint(n_edge=_N_EDGE)
_N_EDGE = 8
_CORNERS = (("top-left", 0), ("top-right", _N_EDGE), ("bottom-right", 2 * _N_EDGE), ("bottom-left", 3 * _N_EDGE))


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="describe an image's camera model (size, footprint, view angles, GCP residuals)",
        description="Describe the camera (RPC) model of an image or of a model file: sensor, model source "
                    "and format, image size, validity domain, ground footprint, view geometry at the "
                    "image centre and, with --gcps, the GCP residuals before and after bias compensation.",
    )
    p.add_argument("image", metavar="IMAGE_OR_RPC",
                   help="an image with RPC metadata (GeoTIFF, NITF, ...) or a camera model file "
                        "(.RPB, _rpc.txt, DIMAP XML, .geom, ...)")
    p.add_argument("--model", metavar="MODEL_FILE",
                   help="read the camera model from this file instead of the image; the image then gives "
                        "the size (and, for a CNES crop in sensor geometry, its position in the scene)")
    p.add_argument("--gcps", metavar="FILE",
                   help="ground control points (CSV with header lon,lat,h,row,col; GeoJSON; or an image "
                        "with GCP tags) to fit and report the bias compensation")
    p.add_argument("--bias-model", choices=("auto", "affine", "shift"), default="auto",
                   help="bias model fitted to the GCPs (default: auto = affine only if leave-one-out "
                        "shows it predicts better than a shift)")
    p.add_argument("--gcp-pixel-origin", choices=("center", "corner"), default=None,
                   help="where pixel (0, 0) of the GCP file is: the centre (CSV/GeoJSON default) or the "
                        "top-left corner (default for raster GCP tags) of the first pixel")
    p.add_argument("--strict-gcps", action="store_true",
                   help="reject GCPs outside the image (by default they are used with a warning, as GCPs "
                        "measured on the full scene a crop was cut from)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return p


def run(args) -> int:
    from offnadir.camera.gcps import read_gcps

    from offnadir.errors import NoCameraModelError

    try:
        camera = load_camera(args.image, args.model)
    except NoCameraModelError as e:
        if args.model is not None:
            raise
        raise NoCameraModelError(f"{e} On the command line: offnadir info {args.image} --model MODEL_FILE") from None
    gcps = None
    if args.gcps is not None:
        gcps = read_gcps(args.gcps, image=args.image, pixel_origin=args.gcp_pixel_origin)
    info = describe(camera, image=args.image, gcps=gcps, bias_model=args.bias_model, strict=args.strict_gcps)
    if args.json:
        print(json.dumps(_json_safe(info), indent=2, allow_nan=False))
    else:
        print(format_text(info))
    return 0


# ------------------------------------------------------------------------------------------ data
def load_camera(image, model=None):
    """The camera of ``image``; with ``model``, the camera read from that file and attached to
    ``image`` (its size and, for a crop in sensor geometry, its position in the full scene)."""
    from offnadir.camera.readers import read_camera
    from offnadir.io.acquisition_time import with_acquisition_time

    # the acquisition time the pipeline uses: the metadata's, else an Airbus dataset/product name's
    if model is None:
        return with_acquisition_time(read_camera(image), image)
    return with_acquisition_time(read_camera(model, image=image), image)


def describe(camera, *, image=None, gcps=None, bias_model: str = "auto", strict: bool = False) -> dict:
    """Everything ``offnadir info`` reports, as a dict of plain Python values (stable keys)."""
    from offnadir._version import __version__
    from offnadir.errors import ConvergenceError

    lon0, lon1, lat0, lat1, h0, h1 = camera.rpc.domain
    info = {
        "offnadir_version": __version__,
        "file": str(image) if image is not None else camera.source,
        "model_file": camera.source,
        "model_format": camera.model_format,
        "sensor": camera.sensor,
        "acquired": camera.acquired,
        "acquired_from": getattr(camera, "acquired_from", None) if camera.acquired else None,
        "image_size": None if camera.shape is None else {"rows": int(camera.shape[0]), "cols": int(camera.shape[1])},
        "validity_domain": {"lon_min": lon0, "lon_max": lon1, "lat_min": lat0, "lat_max": lat1,
                            "h_min": h0, "h_max": h1},
        "crop_affine": [float(v) for v in camera.crop],
        "footprint": None,
        "footprint_note": None,
        "view": None,
        "view_note": None,
        "gcps": None,
    }
    h = float(camera.rpc.height_off)
    if camera.shape is None:
        info["footprint_note"] = ("image size unknown (camera model file only): no footprint. Pass the image, "
                                  "or the image with --model MODEL_FILE.")
    else:
        try:
            ring = camera.footprint(h=h, n_edge=_N_EDGE)
        except ConvergenceError as e:
            info["footprint_note"] = f"footprint could not be computed: {e}"
        else:
            lons = [p[0] for p in ring]
            lats = [p[1] for p in ring]
            info["footprint"] = {
                "h": h,
                "corners": {name: [lons[i], lats[i]] for name, i in _CORNERS},
                "bbox": {"lon_min": min(lons), "lon_max": max(lons), "lat_min": min(lats), "lat_max": max(lats)},
                "ring": [[a, b] for a, b in ring],
            }
    try:
        v = camera.view_angles(h=h)
    except ConvergenceError as e:
        info["view_note"] = f"view angles could not be computed: {e}"
    else:
        info["view"] = {k: float(v[k]) for k in ("row", "col", "lon", "lat", "h", "off_nadir_deg", "azimuth_deg")}
        if camera.shape is None:
            info["view_note"] = "image size unknown: view taken at the pixel of the model's ground offset"
    if gcps is not None:
        info["gcps"] = _gcp_section(camera, gcps, bias_model, strict)
    return info


def _gcp_section(camera, gcps, bias_model, strict) -> dict:
    from offnadir.camera.bias import fit_bias, leave_one_out

    fitted = fit_bias(camera, gcps, model=bias_model, strict=strict)
    points = [dict(p) for p in fitted.bias_report]
    loo = None
    if len(gcps) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fit_bias has already warned about these GCPs
            loo = leave_one_out(camera, gcps, model=bias_model, strict=strict)
    for k, p in enumerate(points):
        p.pop("model", None)
        p["row_loo"] = loo[k]["row_loo"] if loo else None
        p["col_loo"] = loo[k]["col_loo"] if loo else None
        p["residual_loo"] = loo[k]["residual"] if loo else None

    def rms(key):
        vals = [p[key] for p in points if p[key] is not None]
        return math.sqrt(sum(v * v for v in vals) / len(vals)) if vals else None

    a, b, c, d, e, f = fitted.bias
    return {
        "file": gcps.source,
        "count": len(gcps),
        "outside_image": sum(1 for p in points if not p["in_image"]),
        "model": fitted.bias_report[0]["model"],
        "bias": {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f},
        "rms_before": rms("residual_before"),
        "rms_after": rms("residual"),
        "rms_leave_one_out": rms("residual_loo"),
        "mean_miss_before": sum(p["residual_before"] for p in points) / len(points),
        "points": points,
    }


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------ text
def format_text(info: dict) -> str:
    out = [str(info["file"])]

    def row(label, text):
        out.append(f"  {label:<15} {text}")

    row("sensor", info["sensor"] or "unknown")
    acquired, src = info["acquired"], info.get("acquired_from")
    row("acquired", (f"{acquired} (from {src})" if src else acquired) if acquired else "unknown")
    row("camera model", f"RPC00B, format {info['model_format'] or 'unknown'}, from {info['model_file']}")
    size = info["image_size"]
    row("image size", f"{size['rows']} rows x {size['cols']} cols" if size else "unknown (model file only)")
    if info["crop_affine"] != [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]:
        a, b, c, d, e, f = info["crop_affine"]
        row("crop affine", f"row' = {_lin(a, b, c, '.6g', '.6g')}; col' = {_lin(d, e, f, '.6g', '.6g')}")
    vd = info["validity_domain"]
    row("validity", f"lon {vd['lon_min']:.5f}..{vd['lon_max']:.5f}, lat {vd['lat_min']:.5f}..{vd['lat_max']:.5f}, "
                    f"h {vd['h_min']:.1f}..{vd['h_max']:.1f} m")
    fp = info["footprint"]
    if fp is None:
        row("footprint", info["footprint_note"])
    else:
        row("footprint", f"at h = {fp['h']:.1f} m (lon, lat of the outer pixel corners):")
        for name, (lon, lat) in fp["corners"].items():
            out.append(f"  {'':<15}   {name:<13} {lon:11.6f} {lat:11.6f}")
    v = info["view"]
    if v is None:
        row("view", info["view_note"])
    else:
        row("view", f"off-nadir {v['off_nadir_deg']:.2f}°, azimuth {v['azimuth_deg']:.2f}° "
                    f"(clockwise from north, ground to satellite)")
        where = f"at pixel (row {v['row']:.1f}, col {v['col']:.1f}), lon {v['lon']:.6f}, lat {v['lat']:.6f}, h {v['h']:.1f} m"
        out.append(f"  {'':<15} {where}")
        if info["view_note"]:
            out.append(f"  {'':<15} ({info['view_note']})")
    g = info["gcps"]
    if g is not None:
        out.append("")
        extra = f", {g['outside_image']} outside the image (*)" if g["outside_image"] else ""
        out.append(f"GCPs: {g['count']} from {g['file']}{extra}; bias model: {g['model']}")
        out.append("  misses in pixels, measured - predicted (row, col) and length:")
        w = max(8, *(len(p["id"]) for p in g["points"]))
        out.append(f"   {'id':<{w}} {'row':>9} {'col':>9}   {'before':^22}   {'after fit':^22}   {'left out':>8}")
        for p in g["points"]:
            star = " " if p["in_image"] else "*"
            loo = "" if p["residual_loo"] is None else f"{p['residual_loo']:8.2f}"
            out.append(
                f"  {star}{p['id']:<{w}} {p['row']:9.2f} {p['col']:9.2f}   "
                f"({p['residual_row_before']:6.2f},{p['residual_col_before']:6.2f}) {p['residual_before']:6.2f}   "
                f"({p['residual_row']:6.2f},{p['residual_col']:6.2f}) {p['residual']:6.2f}   {loo}")
        loo_rms = "" if g["rms_leave_one_out"] is None else f"{g['rms_leave_one_out']:8.2f}"
        out.append(f"   {'RMS':<{w}} {'':>9} {'':>9}   {'':15} {g['rms_before']:6.2f}   {'':15} "
                   f"{g['rms_after']:6.2f}   {loo_rms}")
        b = g["bias"]
        out.append(f"  fitted bias: row' = {_lin(b['a'], b['b'], b['c'], '.6f', '.3f')}")
        out.append(f"               col' = {_lin(b['d'], b['e'], b['f'], '.6f', '.3f')}")
        if g["outside_image"]:
            out.append("  (*) outside the image: used as measured on the full scene it was cropped from "
                       "(--strict-gcps rejects them)")
    return "\n".join(out)


def _lin(u, v, w, fmt_uv, fmt_w) -> str:
    """'u·row + v·col + w' with signs written as binary operators."""
    def term(x, fmt):
        return ("- " if x < 0 else "+ ") + format(abs(x), fmt)
    return f"{format(u, fmt_uv)}·row {term(v, fmt_uv)}·col {term(w, fmt_w)}"
