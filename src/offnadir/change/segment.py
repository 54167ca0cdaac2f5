"""Patches: an over-segmentation of the base image on the DSM grid in which every patch is
roof-only (elevated) or ground-only, built tile by tile with results independent of the tiling.

* **Elevated cells**: height above the local ground > ``elevated_height`` (default 2.5 m), the
  local ground being the grey opening of the DSM by a square of side ``ground_window``
  (:func:`offnadir.change.segment_kernels.ground_estimate`).
* **Segmentable cells**: visible in the base image, finite base values and height. Hidden,
  outside and nodata cells get patch 0.
* **Elevated patches** are the 4-connected components of elevated segmentable cells whose
  neighbours differ by at most ``roof_step`` metres: a roof plane (gables included), split from
  higher rooftop structures and from other roofs by walls. They are labelled per tile and joined
  across tile borders by a union-find over the pairs of cells facing each other on the borders,
  so they are exactly the components of the whole grid.
* **Ground patches** are grid-anchored SLIC superpixels of the base bands (standardised by their
  global standard deviations) restricted to ground cells, then split into 4-connected pieces;
  pieces smaller than ``min_cells`` take the label of the piece they share the longest border
  with. A superpixel's cells lie within one block of its seed block, and a label depends on data
  within ``(2 n_iter + 1)`` blocks, so a tile read with a halo of :func:`segment_halo` cells gives
  the same labels as the whole grid.

IDs are 1 + the smallest global linear index of a patch's cells (``i * nx + j``): unique across
tiles, and identical whatever the tiling (tested: whole vs tiled patches are identical).
"""

from __future__ import annotations

import math

import numpy as np

from offnadir.change import segment_kernels as K


def opening_radius(opts, cell: float) -> int:
    return max(1, int(math.ceil(0.5 * opts.ground_window / cell)))


def segment_halo(opts, cell: float) -> int:
    """Halo (cells) that makes a tile's patches and elevated mask exact: SLIC labels are exact
    ``(2 n_iter + 1) S`` cells (plus one partial block) inside the window; a piece of a superpixel
    touching the core, and the pieces it may merge with, lie within ``3 S`` of the core; the
    elevated mask that restricts the superpixels depends on heights within ``2 r``."""
    r = opening_radius(opts, cell)
    S = opts.segment_step
    return (2 * max(opts.segment_iterations, 1) + 5) * S + 2 * r + 4


def elevated_mask(h, opts, cell: float):
    """Elevated cells of a height window (bool; False at nodata)."""
    g = K.ground_estimate(np.asarray(h, np.float64), opening_radius(opts, cell))
    with np.errstate(invalid="ignore"):
        return (np.asarray(h, np.float64) - g) > opts.elevated_height


def segment_window(h, base_values, base_visible, win, core, grid_shape, opts, cell, band_scale):
    """Patch IDs and elevated mask of the core of a window.

    ``h`` (H, W) heights, ``base_values`` (bands, H, W), ``base_visible`` (H, W) of the window whose
    first cell is global ``win = (gi0, gj0)``; ``core = (ci0, ci1, cj0, cj1)`` window-relative.
    Returns (patch (int64), elevated (uint8)) over the core. Elevated IDs are provisional (the
    component within the tile core) until joined across tiles."""
    gi0, gj0 = win
    ci0, ci1, cj0, cj1 = core
    NX = grid_shape[1]
    h = np.ascontiguousarray(h, np.float64)
    base_values = np.asarray(base_values)
    if base_values.dtype not in (np.float32, np.float64):
        base_values = base_values.astype(np.float64)
    feat = np.empty(base_values.shape, np.float64)
    seg = np.empty(h.shape, bool)
    K.slic_features(h, np.ascontiguousarray(base_values), np.ascontiguousarray(base_visible),
                    np.asarray(band_scale, np.float64), feat, seg)
    elev = elevated_mask(h, opts, cell)
    # ground: SLIC on the window, split into connected pieces
    gmask = seg & ~elev
    S = int(opts.segment_step)
    nbx = -(-NX // S)
    blk = np.zeros(h.shape, np.int64)
    K.slic_blocks(feat, gmask, gi0, gj0, S, nbx, float(opts.segment_compactness), int(opts.segment_iterations), blk)
    gl = np.zeros(h.shape, np.int64)
    K.label_components(blk, h, 0.0, False, gi0, gj0, NX, gl)
    if merge_fragments(blk, gl, int(opts.min_cells), win, NX):
        K.label_components(blk, h, 0.0, False, gi0, gj0, NX, gl)
    patch = gl[ci0:ci1, cj0:cj1].copy()
    # elevated: components inside the core only (joined across tiles later)
    ekey = (seg & elev)[ci0:ci1, cj0:cj1].astype(np.int64)
    el = np.zeros(ekey.shape, np.int64)
    K.label_components(ekey, np.ascontiguousarray(h[ci0:ci1, cj0:cj1]), float(opts.roof_step), True,
                       gi0 + ci0, gj0 + cj0, NX, el)
    patch = np.where(ekey > 0, el, patch)
    return patch, elev[ci0:ci1, cj0:cj1].astype(np.uint8)


def merge_fragments(blk, comp, min_size: int, win=(0, 0), NX: int | None = None) -> bool:
    """Give the pieces of superpixels smaller than ``min_size`` cells the superpixel label they
    share the longest border with (ties: the smallest label), in place on ``blk``. Local: a piece
    and its neighbours lie within two blocks. ``comp`` holds the pieces' IDs from
    :func:`kernels.label_components` for the window at global ``win`` on a grid ``NX`` wide (default:
    the window is the grid). Returns whether anything moved."""
    NX = comp.shape[1] if NX is None else int(NX)
    return bool(K.merge_small_pieces(blk, comp, int(min_size), int(win[0]), int(win[1]), NX))


def border_pairs(lab_a, lab_b, el_a, el_b, h_a, h_b, dz):
    """Pairs (id_a, id_b) of elevated patches facing each other across a tile border (1-D strips
    of the last row/column of one tile and the first of the next) that belong together."""
    with np.errstate(invalid="ignore"):
        ok = (lab_a > 0) & (lab_b > 0) & (el_a == 1) & (el_b == 1) & (np.abs(h_a - h_b) <= dz)
    if not ok.any():
        return np.zeros((0, 2), np.int64)
    pairs = np.stack([lab_a[ok], lab_b[ok]], axis=1).astype(np.int64)
    return np.unique(pairs, axis=0)


def join_components(pairs) -> tuple[np.ndarray, np.ndarray]:
    """Union-find over ID pairs: (old ids, new ids) for every ID whose component's smallest ID
    differs from it (the smallest ID of a component is its global smallest linear index + 1)."""
    if len(pairs) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ids, inv = np.unique(pairs.ravel(), return_inverse=True)
    par = np.arange(len(ids))

    def find(a):
        while par[a] != a:
            par[a] = par[par[a]]
            a = par[a]
        return a

    e = inv.reshape(-1, 2)
    for a, b in e:
        ra, rb = find(a), find(b)
        if ra != rb:
            if ra < rb:  # ids are sorted: the smaller index is the smaller id
                par[rb] = ra
            else:
                par[ra] = rb
    root = np.array([find(k) for k in range(len(ids))])
    new = ids[root]
    moved = new != ids
    return ids[moved], new[moved]


def relabel(patch, old, new):
    """Replace IDs ``old`` (sorted) by ``new`` in a patch array."""
    if len(old) == 0:
        return patch
    from offnadir.change.kernels import sorted_lookup  # np.searchsorted's numbers, one search per run

    idx, hit = sorted_lookup(patch, old)
    out = patch.copy()
    out[hit] = new[idx[hit]]
    return out
