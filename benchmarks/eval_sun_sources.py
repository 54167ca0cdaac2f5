"""Survey: the acquisition time and sun offnadir reads for every real image under data/real
(PROVENANCE.md), with where each came from, and every time- or sun-like field the files hold.

Per image (with the camera model the image needs, as the tests use it): the time the almanac
would use (:func:`offnadir.io.acquisition_time.acquisition_time`) and its source, the vendor sun
if any (:func:`offnadir.io.acquisition.sun_from_metadata`), then the raw fields found in the
image's GDAL metadata (all domains), its GML coverage name and its model file whose name or
value looks like a time or a sun angle, so that a field nobody reads shows up.

The image's time is also its date (its date group), unless a date is given for it. Last, every
raster under data/real is opened and each TIFF ``DateTime`` tag (``TIFFTAG_DATETIME``) is listed
with the file's software tag and the time offnadir reads for it: the tag that TIFF 6.0 defines as
the file's creation time, which offnadir does not read as an acquisition time.

    python benchmarks/eval_sun_sources.py [--real /work/shared/data/real]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

#: image (relative to data/real) -> its camera model file when the image carries no RPC
IMAGES = {
    "s2p/tests/data/input_pair/img_01.tif": None,
    "s2p/tests/data/input_pair/img_02.tif": None,
    "s2p/tests/data/input_triplet/img_01.tif": None,
    "s2p/tests/data/input_triplet/img_02.tif": None,
    "s2p/tests/data/input_triplet/img_03.tif": None,
    "shareloc/tests/data/image/phr_ventoux/left_image.tif": "shareloc/tests/data/rpc/phr_ventoux/left_image.geom",
    "shareloc/tests/data/image/phr_ventoux/right_image.tif": "shareloc/tests/data/rpc/phr_ventoux/right_image.geom",
    "shareloc/tests/data/image/phr_ventoux/lowres_color_image.tif":
        "shareloc/tests/data/rpc/phr_ventoux/lowres_color_image.geom",
    "shareloc/tests/data/image/phr_gizeh/img1.tif": "shareloc/tests/data/rpc/phr_gizeh/img1.geom",
    "shareloc/tests/data/image/phr_gizeh/img2.tif": "shareloc/tests/data/rpc/phr_gizeh/img2.geom",
    "shareloc/tests/data/rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.tif": None,
    "shareloc/tests/data/rpc/wv3_20.NTF": None,
    "shareloc/tests/data/rpc/wv3_30.NTF": None,
    "orthority/tests/data/rpc/qb2_basic1b.tif": None,
    "picanteo/docs/tutorials/data/pre_event_img1.tif": "picanteo/docs/tutorials/data/pre_event_img1.geom",
    "picanteo/docs/tutorials/data/pre_event_img2.tif": "picanteo/docs/tutorials/data/pre_event_img2.geom",
    "picanteo/docs/tutorials/data/post_event_img1.tif": "picanteo/docs/tutorials/data/post_event_img1.geom",
    "picanteo/docs/tutorials/data/post_event_img2.tif": "picanteo/docs/tutorials/data/post_event_img2.geom",
}
#: camera model files without an image here (their own time / sun fields)
MODELS = [
    "gdal/autotest/gcore/data/rpc.vrt",
    "rpcm/tests/test_rpc_files/JAX_068_001_RGB.json",
    "rpcm/tests/test_rpc_files/rpc_WV1.xml",
    "rpcm/tests/test_rpc_files/rpc_WV2.xml",
    "rpcm/tests/test_rpc_files/rpc_WV3.xml",
    "rpcm/tests/test_rpc_files/rpc_PLEIADES.xml",
    "rpcm/tests/test_rpc_files/rpc_SPOT6.xml",
    "rpcm/tests/test_rpc_files/20191015_073816_ssc1d3_0011_basic_l1a_panchromatic_dn_RPC.TXT",
    "rpcm/tests/test_rpc_files/ENMAP01-____L1B-DT0000001011_20220609T081225Z_001_V010111_20230119T143357Z-METADATA.XML",
    "shareloc/tests/data/rpc/PHRDIMAP_P1BP--2017030824934340CP.XML",
    "shareloc/tests/data/rpc/PHRDIMAP_P1BP--2018122638935449CP.XML",
    "shareloc/tests/data/rpc/RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML",
    "shareloc/tests/data/rpc/phr_oise/RPC_PHR1A_P_202503191043438_SEN_7342362101-1.XML",
    "gdal/autotest/gcore/data/md_dg.RPB",
    "gdal/autotest/gcore/data/md_ge_rgb_0010000_rpc.txt",
]
_FIELD = re.compile(r"date|time|sun|idatim|fdt|acq", re.I)
_DS = re.compile(r"DS_[A-Z0-9]+_\d{15}_[A-Z0-9_]+")


def raw_fields(path: Path) -> list[str]:
    """Time/sun-like metadata fields of a raster (every domain) or lines of a text model file."""
    out = []
    suf = path.suffix.lower()
    if suf in (".tif", ".tiff", ".ntf", ".vrt"):
        import rasterio

        try:
            with rasterio.open(path) as ds:
                for ns in [None] + [n for n in (ds.tag_namespaces() or []) if n not in ("RPC", "IMAGE_STRUCTURE")]:
                    for k, v in ds.tags(ns=ns).items():
                        if k == "gml.root-instance":
                            out += sorted({f"gml:name {m}" for m in _DS.findall(v)})
                        elif _FIELD.search(k):
                            out.append(f"{(ns + ':') if ns else ''}{k}={str(v).strip()[:40]}")
        except Exception as e:  # noqa: BLE001 - a survey: say it and go on
            out.append(f"(GDAL cannot open it: {str(e)[:60]})")
    elif path.exists():
        text = path.read_text(errors="replace")
        keys = re.findall(r"<([A-Za-z_:]*(?:DATE|TIME|SUN|Date|Time|sun)[A-Za-z_]*)>([^<]{0,40})<", text)
        keys += re.findall(r"\"([a-z_]*(?:date|time|sun)[a-z_]*)\"\s*:\s*\"?([^,\"\n]{0,30})", text)
        keys += re.findall(r"^([\w.]*(?:date|time|sun|Time|Sun)[\w.]*)\s*[:=]\s*([^;\n]{0,40})", text, re.M)
        seen = {}
        for k, v in keys:
            seen.setdefault(k, v.strip())
        out += [f"{k}={v}" for k, v in list(seen.items())[:8]] + ([f"... {len(seen) - 8} more"] if len(seen) > 8 else [])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default="/work/shared/data/real")
    a = ap.parse_args(argv)
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    from offnadir.camera.readers import read_camera
    from offnadir.io.acquisition import sun_from_file, sun_from_metadata
    from offnadir.io.acquisition_time import acquisition_time
    from offnadir.io.image import open_image_source

    real = Path(a.real)
    print("== images (with their model where they carry none)")
    for rel, model in IMAGES.items():
        p = real / rel
        try:
            im = open_image_source(p, model=real / model if model else None)
            cam = im.camera
        except Exception as e:  # noqa: BLE001
            print(f"{rel}: cannot be opened ({str(e)[:80]})")
            continue
        at = acquisition_time(p, cam)
        sun = sun_from_metadata(p, real / model if model else None)
        print(f"{rel}")
        print(f"   time: {at.time + ' from ' + at.source if at else 'none'}")
        print(f"   sun:  {sun.describe() if sun else 'none in the metadata'}")
        for f in raw_fields(p) + (raw_fields(real / model) if model else []):
            print(f"   field: {f}")
    print("== camera model files without an image here")
    for rel in MODELS:
        p = real / rel
        try:
            cam = read_camera(p)
            t = cam.acquired
        except Exception as e:  # noqa: BLE001
            t = f"(model not read: {str(e)[:60]})"
        sun = sun_from_file(p)
        print(f"{rel}\n   time: {t or 'none'}\n   sun:  {sun.describe() if sun else 'none'}")
        for f in raw_fields(p):
            print(f"   field: {f}")
    tiff_datetimes(real)
    return 0


def tiff_datetimes(real: Path) -> None:
    """Every raster under ``real``: those with a TIFF DateTime tag, what it holds and the time
    offnadir reads for the image instead (none when no other field gives one)."""
    import rasterio

    from offnadir.io.image import open_image_source

    rasters, hits = 0, []
    for p in sorted(real.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in (".tif", ".tiff", ".ntf", ".vrt", ".jp2"):
            continue
        try:
            with rasterio.open(p) as ds:
                tags = ds.tags()
        except Exception:  # noqa: BLE001 - not a raster GDAL opens: not counted
            continue
        rasters += 1
        if tags.get("TIFFTAG_DATETIME"):
            try:
                t = open_image_source(p).camera.acquired or "none"
            except Exception as e:  # noqa: BLE001 - e.g. a model file elsewhere: the tag is what matters
                t = f"(camera not read: {str(e)[:50]})"
            hits.append((p.relative_to(real), tags["TIFFTAG_DATETIME"].strip(), tags.get("TIFFTAG_SOFTWARE"), t))
    print(f"== TIFF DateTime tags (TIFF 6.0: the file's creation time) on the {rasters} rasters under {real}")
    for rel, dt, sw, t in hits:
        print(f"{rel}: TIFFTAG_DATETIME {dt!r}, software {sw!r}; acquisition time offnadir reads: {t}")
    if not hits:
        print("none")


if __name__ == "__main__":
    sys.exit(main())
