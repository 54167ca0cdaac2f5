"""Mutations of real camera-model and GCP files, shared by ``tests/test_fuzz_readers.py``
(hypothesis drives them) and ``benchmarks/fuzz_readers.py`` (a seeded ``random.Random`` does).

Every mutation is a function ``(data: bytes, draw) -> bytes`` where ``draw`` offers
``integer(lo, hi)`` (inclusive) and ``choice(seq)``: the same engine runs under both drivers.
Text mutations work on the bytes read as Latin-1 (lossless for any byte), so they apply to
binary rasters too (e.g. numbers inside the GDAL metadata of a GeoTIFF).

The seed corpus is real data only (``/work/shared/data/real``, see ``PROVENANCE.md``): one or
more files of every format :func:`offnadir.camera.readers.read_camera` reads, and the GCP files
(orthority's surveyed GeoJSON, the same points written as CSV, and a GeoTIFF with GCP tags).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from conftest import REAL

#: format name -> real files used as seeds (small ones first where a format has several)
CAMERA_SEEDS = {
    "alos": ["gdal/autotest/gcore/data/alos/RPC-md_alos.txt"],
    "rpb": ["gdal/autotest/gcore/data/md_dg.RPB"],
    "rpc-txt": ["gdal/autotest/gcore/data/md_ge_rgb_0010000_rpc.txt",
                "rpcm/tests/test_rpc_files/rpc_PLANET_L1A.txt"],
    "dimap-v2": ["rpcm/tests/test_rpc_files/rpc_PLEIADES.xml",
                 "shareloc/tests/data/rpc/RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML"],
    "dimap-v1": ["shareloc/tests/data/rpc/PHRDIMAP_P1BP--2018122638935449CP.XML"],
    "maxar-xml": ["rpcm/tests/test_rpc_files/rpc_WV2.xml"],
    "enmap-xml": ["rpcm/tests/test_rpc_files/ENMAP01-____L1B-DT0000001011_20220609T081225Z_001_V010111_"
                  "20230119T143357Z-METADATA.XML"],
    "ossim-geom": ["shareloc/tests/data/rpc/phr_ventoux/left_image.geom",
                   "picanteo/docs/tutorials/data/pre_event_img1.geom"],
    "rpc-json": ["rpcm/tests/test_rpc_files/JAX_068_001_RGB.json"],
    "orthority-yaml": ["orthority/tests/data/rpc/rpc_param.yaml"],
    "vrt": ["gdal/autotest/gcore/data/rpc_5395.vrt", "gdal/autotest/gcore/data/rpc.vrt"],
    "geotiff": ["shareloc/tests/data/rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.tif",
                "orthority/tests/data/rpc/qb2_basic1b.tif"],
    "nitf": ["shareloc/tests/data/rpc/wv3_20.NTF"],
}
GCP_GEOJSON = "orthority/tests/data/rpc/gcps.geojson"
GCP_RASTER = "orthority/tests/data/rpc/qb2_basic1b.tif"
GCP_SEEDS = {"gcp-geojson": [GCP_GEOJSON], "gcp-csv": ["<csv from gcps.geojson>"], "gcp-raster": [GCP_RASTER]}


def seed_bytes(rel: str) -> bytes:
    if rel == "<csv from gcps.geojson>":
        return gcp_csv_from_geojson()
    return (REAL / rel).read_bytes()


def seed_name(rel: str) -> str:
    return "gcps.csv" if rel.startswith("<csv") else Path(rel).name


def gcp_csv_from_geojson() -> bytes:
    """orthority's surveyed GCPs rewritten as an offnadir GCP CSV (values unchanged)."""
    doc = json.loads((REAL / GCP_GEOJSON).read_text())
    lines = ["id,lon,lat,h,row,col"]
    for f in doc["features"]:
        lon, lat, h = f["geometry"]["coordinates"]
        col, row = f["properties"]["ji"]
        lines.append(f"{f['properties']['id']},{lon!r},{lat!r},{h!r},{row!r},{col!r}")
    return ("\n".join(lines) + "\n").encode()


# ------------------------------------------------------------------------------------- drivers


class RandomDraw:
    """``draw`` backed by ``random.Random`` (benchmark driver)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        return seq[self.rng.randrange(len(seq))]


class HypothesisDraw:
    """``draw`` backed by hypothesis ``st.data()`` (test driver: shrinkable, reproducible)."""

    def __init__(self, data):
        from hypothesis import strategies as st

        self.data = data
        self.st = st

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def choice(self, seq):
        return self.data.draw(self.st.sampled_from(list(seq)))


# ----------------------------------------------------------------------------------- mutations

_NUM = re.compile(rb"(?<![A-Za-z_0-9.])[-+]?\d+(?:\.\d*)?(?:[eEdD][-+]?\d+)?")
#: what a number may be replaced with: huge, overflowing, non-finite, empty, non-numeric, other types
BAD_NUMBERS = (
    b"9" * 400, b"-" + b"9" * 400, b"1e400", b"-1e400", b"1e-400", b"nan", b"NaN", b"inf", b"-Infinity",
    b"", b" ", b"abc", b"0", b"-0", b"0.0", b"-1", b"1e308", b"0x1F", b"1_000", b'"12"', b'""', b"[]",
    b"{}", b"[1, 2]", b"null", b"true", b"~", b"1.5.5", b"--3", b"\xff\xfe", b"1e99999999999",
)
_FIELD_LINE = re.compile(rb"[^\n]*\n")
_KV_VALUE = re.compile(rb"([A-Za-z_][A-Za-z0-9_.]*\s*(?:[:=]|\">)[ \t]*)([^\n;<,\]]*)")


def m_byte_flip(data: bytes, draw) -> bytes:
    if not data:
        return b"\xff"
    b = bytearray(data)
    for _ in range(draw.integer(1, 8)):
        i = draw.integer(0, len(b) - 1)
        b[i] = draw.choice((0, 0xFF, b[i] ^ (1 << draw.integer(0, 7)), draw.integer(0, 255)))
    return bytes(b)


def m_truncate(data: bytes, draw) -> bytes:
    return data[:draw.integer(0, max(0, len(data) - 1))]


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [data]


def m_delete_line(data: bytes, draw) -> bytes:
    lines = _lines(data)
    i = draw.integer(0, len(lines) - 1)
    n = draw.choice((1, 1, 2, 5))
    return b"".join(lines[:i] + lines[i + n:])


def m_duplicate_line(data: bytes, draw) -> bytes:
    lines = _lines(data)
    i = draw.integer(0, len(lines) - 1)
    j = draw.integer(0, len(lines))
    return b"".join(lines[:j] + [lines[i]] + lines[j:])


def m_replace_number(data: bytes, draw) -> bytes:
    nums = list(_NUM.finditer(data[:200_000]))
    if not nums:
        return data + draw.choice(BAD_NUMBERS)
    m = nums[draw.integer(0, len(nums) - 1)]
    return data[:m.start()] + draw.choice(BAD_NUMBERS) + data[m.end():]


def m_empty_value(data: bytes, draw) -> bytes:
    """Blank the value after ``key:`` / ``key =`` / ``key">`` (``line_off:``, ``lineOffset = ;``)."""
    kvs = list(_KV_VALUE.finditer(data[:200_000]))
    if not kvs:
        return data
    m = kvs[draw.integer(0, len(kvs) - 1)]
    return data[:m.start(2)] + draw.choice((b"", b" ", b'""', b"-", b".")) + data[m.end(2):]


def m_insert_bytes(data: bytes, draw) -> bytes:
    i = draw.integer(0, len(data))
    junk = draw.choice((b"\x00", b"\xff\xfe", b"\xc3", b"<", b"&", b"&bogus;", b"]]>", b"{", b"[", b'"',
                        b"\r", b"\t", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"<!ENTITY a 'b'>", b"*x", b"&a"))
    return data[:i] + junk * draw.integer(1, 3) + data[i:]


def m_encoding(data: bytes, draw) -> bytes:
    kind = draw.choice(("xmldecl", "utf16", "bom", "latin1", "utf32", "cp1252-decl"))
    if kind == "xmldecl":
        decl = b'<?xml version="1.0" encoding="' + draw.choice((b"bogus-8", b"UTF-16", b"ascii", b"", b"x" * 300)) + b'"?>'
        body = re.sub(rb"^\s*<\?xml[^>]*\?>", b"", data, count=1)
        return decl + b"\n" + body
    if kind == "utf16":
        return data.decode("latin-1").encode("utf-16")
    if kind == "utf32":
        return data.decode("latin-1").encode("utf-32")
    if kind == "bom":
        return draw.choice((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")) + data
    if kind == "latin1":
        return data.replace(b"e", b"\xe9", draw.integer(1, 5))
    return re.sub(rb"encoding=\"[^\"]*\"", b'encoding="cp1252"', data, count=1)


def m_deep_nesting(data: bytes, draw) -> bytes:
    """Deeply nested JSON/YAML lists (CPython's json recurses) or XML elements at a number."""
    depth = draw.choice((50, 1000, 20_000, 100_000))
    nums = list(_NUM.finditer(data[:200_000]))
    if not nums:
        return b"[" * depth + data + b"]" * depth
    m = nums[draw.integer(0, len(nums) - 1)]
    if data.lstrip()[:1] == b"<":
        depth = min(depth, 20_000)
        inner = b"<a>" * depth + m.group() + b"</a>" * depth
    else:
        inner = b"[" * depth + m.group() + b"]" * depth
    return data[:m.start()] + inner + data[m.end():]


def m_structural(data: bytes, draw) -> bytes:
    """For JSON/YAML documents: replace one value (any depth) by a value of another type."""
    text = data.decode("utf-8", errors="replace")
    yaml_doc = not text.lstrip().startswith("{")
    try:
        if yaml_doc:
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception:  # noqa: BLE001 - the seed was already mutated into something else
        return m_replace_number(data, draw)
    slots = []

    def walk(o):
        if isinstance(o, dict):
            for k in list(o):
                slots.append((o, k))
                walk(o[k])
        elif isinstance(o, list):
            for k in range(len(o)):
                slots.append((o, k))
                walk(o[k])

    walk(doc)
    if not slots:
        return data
    parent, key = slots[draw.integer(0, len(slots) - 1)]
    what = draw.choice(("delete", "type", "dup"))
    new = draw.choice((None, True, "", "abc", [], {}, [[1]], {"a": 1}, 10 ** 400, -(10 ** 30), 1e308,
                       "1e400", [1.0] * 19, [1.0] * 21, ["x"] * 20, 0, -5, 2.5, "nan"))
    if what == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif what == "dup" and isinstance(parent, list):
        parent.insert(key, parent[key])
    else:
        parent[key] = new
    if yaml_doc:
        import yaml

        try:
            return yaml.safe_dump(doc, sort_keys=False).encode()
        except Exception:  # noqa: BLE001 - e.g. huge ints are still dumpable; be safe
            return data
    return json.dumps(doc, allow_nan=True).encode()


def m_replace_number_same_width(data: bytes, draw) -> bytes:
    """Overwrite a number in place with a bad value of the same width, so that fixed-width layouts
    (ALOS lines, the NITF RPC00B TRE, TIFF offsets) stay aligned and the bad value reaches the parser."""
    nums = list(_NUM.finditer(data[:600_000]))
    if not nums:
        return data
    m = nums[draw.integer(0, len(nums) - 1)]
    w = m.end() - m.start()
    bad = draw.choice((b"9" * w, b"-" + b"9" * (w - 1), b"NaN", b"inf", b"+9.999999E+9", b"0" * w, b" " * w,
                       b"-0", b"x" * w, b"1E999", b"+0.000000E+0"))
    bad = bad[:w].ljust(w, b" ")
    return data[:m.start()] + bad + data[m.end():]


#: TIFF tag of the RPC coefficients (GeoTIFF RPC extension): 92 IEEE doubles
_TIFF_RPC_TAG = 50844
_BAD_DOUBLES = (float("nan"), float("inf"), -float("inf"), 0.0, 1e308, -1e308, 5e-324, 1e20, -1.0)


def m_tiff_rpc_double(data: bytes, draw) -> bytes:
    """Overwrite one of the 92 doubles of a little-endian TIFF's RPC tag (GDAL reads it as the RPC
    metadata domain): the only way byte-level fuzzing reaches the binary RPC of a GeoTIFF."""
    import struct

    if not data.startswith(b"II*\x00") or len(data) < 8:
        return m_byte_flip(data, draw)
    try:
        ifd = struct.unpack_from("<I", data, 4)[0]
        n = struct.unpack_from("<H", data, ifd)[0]
        for k in range(n):
            tag, typ, count, off = struct.unpack_from("<HHII", data, ifd + 2 + 12 * k)
            if tag == _TIFF_RPC_TAG and typ == 12 and off + 8 * count <= len(data):
                i = draw.integer(0, count - 1)
                b = bytearray(data)
                struct.pack_into("<d", b, off + 8 * i, draw.choice(_BAD_DOUBLES))
                return bytes(b)
    except struct.error:
        pass
    return m_byte_flip(data, draw)


MUTATIONS = {
    "byte_flip": m_byte_flip,
    "truncate": m_truncate,
    "delete_line": m_delete_line,
    "duplicate_line": m_duplicate_line,
    "replace_number": m_replace_number,
    "replace_number_same_width": m_replace_number_same_width,
    "tiff_rpc_double": m_tiff_rpc_double,
    "empty_value": m_empty_value,
    "insert_bytes": m_insert_bytes,
    "encoding": m_encoding,
    "deep_nesting": m_deep_nesting,
    "structural": m_structural,
}


def mutate(data: bytes, draw, n_ops: int | None = None) -> tuple[bytes, list[str]]:
    """Apply 1-3 random mutations; returns the new bytes and the names of the operations."""
    names = []
    for _ in range(n_ops if n_ops is not None else draw.integer(1, 3)):
        name = draw.choice(tuple(MUTATIONS))
        data = MUTATIONS[name](data, draw)
        names.append(name)
    return data, names


def check_camera(cam) -> None:
    """A camera the readers return must be usable: a validated RPC and a sane size."""
    from offnadir.camera.camera import Camera

    assert isinstance(cam, Camera), type(cam)
    cam.rpc.validated()
    if cam.shape is not None:
        assert len(cam.shape) == 2 and all(isinstance(v, int) and v > 0 for v in cam.shape), cam.shape


def check_gcps(g) -> None:
    import numpy as np

    from offnadir.camera.gcps import GCPs

    assert isinstance(g, GCPs) and len(g) > 0
    for a in (g.lon, g.lat, g.h, g.row, g.col):
        assert np.all(np.isfinite(a))
