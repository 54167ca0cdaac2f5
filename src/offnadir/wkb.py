"""Well-Known Binary polygons (OGC 06-103r4 / ISO 19125-1 §8.2) from coordinate rings: the
geometry column of GeoPackage, GeoJSON and GeoParquet writers. numpy only."""

from __future__ import annotations

import struct

import numpy as np

_POLYGON = 3


def polygon_wkb(rings) -> bytes:
    """Little-endian WKB Polygon of ``rings`` (first the exterior, then holes; each an (n, 2)
    array of x, y, closed: first point == last point)."""
    parts = [struct.pack("<BII", 1, _POLYGON, len(rings))]
    for ring in rings:
        xy = np.ascontiguousarray(ring, dtype="<f8")
        if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] < 4:
            raise ValueError(f"a polygon ring needs >= 4 (x, y) points, got shape {xy.shape}")
        parts.append(struct.pack("<I", xy.shape[0]))
        parts.append(xy.tobytes())
    return b"".join(parts)


def polygon_rings(wkb: bytes) -> list[np.ndarray]:
    """The rings of a WKB Polygon (either byte order)."""
    order = "<" if wkb[0] == 1 else ">"
    kind, n = struct.unpack_from(order + "II", wkb, 1)
    if kind != _POLYGON:
        raise ValueError(f"not a WKB Polygon (type {kind})")
    off, rings = 9, []
    for _ in range(n):
        (m,) = struct.unpack_from(order + "I", wkb, off)
        off += 4
        rings.append(np.frombuffer(wkb, dtype=order + "f8", count=2 * m, offset=off).reshape(m, 2))
        off += 16 * m
    return rings


def bbox_of_wkb(geoms) -> list[float]:
    """[xmin, ymin, xmax, ymax] over WKB Polygons (their exteriors bound them)."""
    if len(geoms) == 0:
        return []
    ext = np.concatenate([polygon_rings(g)[0] for g in geoms])
    return [float(ext[:, 0].min()), float(ext[:, 1].min()), float(ext[:, 0].max()), float(ext[:, 1].max())]
