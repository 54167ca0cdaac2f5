"""numba/numpy kernels that group per-cell values by patch ID: the ID table of a tile
(:func:`group_index`), look-ups of IDs in a sorted table (:func:`sorted_lookup`), per-ID sums and
counts, and the merge of per-tile tables (re-exported by :mod:`offnadir.change.kernels`). numpy and
numba only."""

from __future__ import annotations

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


# ----------------------------------------------------------------------------- grouped sums (numpy)
def group_index(ids):
    """(unique ids, inverse) of a 1-D int64 array, as ``np.unique(ids, return_inverse=True)``:
    the groups are found by hashing (O(n)), only the distinct ids are sorted."""
    ids = np.ascontiguousarray(ids, np.int64).ravel()
    if len(ids) < 4096:
        return np.unique(ids, return_inverse=True)
    # load factor <= 1/2: there are at most as many distinct ids as runs of equal ones (patch IDs
    # come in runs along a row: ~8x fewer than cells), so a table that fits the caches
    size = 1 << int(_count_runs(ids) * 2 - 1).bit_length()
    uniq, inv = _hash_groups(ids, size)
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[inv]


def unique_inverse(a):
    """``np.unique(a, return_inverse=True)`` of a 1-D array; int64 arrays through :func:`group_index`
    (the same arrays, found by hashing)."""
    a = np.asarray(a)
    if a.dtype == np.int64 and a.ndim == 1:
        return group_index(a)
    return np.unique(a, return_inverse=True)


@njit(**_NB)
def _count_runs(ids):
    """How many runs of equal values ``ids`` (non-empty) has."""
    n = 1
    for r in range(1, ids.shape[0]):
        n += ids[r] != ids[r - 1]
    return n


@njit(**_NB)
def _hash_groups(ids, size):
    """Distinct ids in order of first appearance and each element's index among them (open
    addressing, ``size`` a power of two larger than ``len(ids)``)."""
    keys = np.empty(size, np.int64)
    slot = np.full(size, -1, np.int64)
    uniq = np.empty(ids.shape[0], np.int64)
    inv = np.empty(ids.shape[0], np.int64)
    mask = np.uint64(size - 1)
    n = 0
    last_v = 0
    last_g = -1
    for r in range(ids.shape[0]):
        v = ids[r]
        if last_g >= 0 and v == last_v:  # patch IDs come in runs along a row: one probe per run
            inv[r] = last_g
            continue
        hsh = (np.uint64(v) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(17)
        q = hsh & mask
        while True:
            g = slot[q]
            if g < 0:
                slot[q] = n
                keys[q] = v
                uniq[n] = v
                inv[r] = n
                n += 1
                break
            if keys[q] == v:
                inv[r] = g
                break
            q = (q + np.uint64(1)) & mask
        last_v = v
        last_g = inv[r]
    return uniq[:n], inv


def sorted_lookup(values, ids):
    """Where each of ``values`` (int64, any shape) is in the sorted int64 ``ids`` (non-empty):
    (``idx``, ``hit``) with ``idx = min(np.searchsorted(ids, values), len(ids) - 1)`` and ``hit =
    ids[idx] == values``, the numbers of that numpy expression, with one binary search per run
    of equal values (patch IDs come in runs along a row) instead of one per cell."""
    v = np.ascontiguousarray(values, np.int64)
    ids = np.ascontiguousarray(ids, np.int64)
    idx = np.empty(v.shape, np.int64)
    hit = np.empty(v.shape, np.bool_)
    _sorted_lookup(v.reshape(-1), ids, idx.reshape(-1), hit.reshape(-1))
    return idx, hit


@njit(**_NB)
def _sorted_lookup(v, ids, idx, hit):
    n = ids.shape[0]
    last = 0
    k = -1
    for r in range(v.shape[0]):
        x = v[r]
        if k < 0 or x != last:
            lo = 0  # searchsorted 'left': the first position with ids[pos] >= x
            hi = n
            while lo < hi:
                mid = (lo + hi) >> 1
                if ids[mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            k = min(lo, n - 1)
            last = x
        idx[r] = k
        hit[r] = ids[k] == x


def group_sums(inv, n_groups, values):
    """Per-group sums of ``values`` (n,) or (n, k) float64 given the group index ``inv``: the sums
    ``np.bincount(inv, values[:, c])`` gives, in one pass over the rows."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        return np.bincount(inv, values, minlength=n_groups)
    out = np.zeros((n_groups, values.shape[1]))
    _add_rows(np.asarray(inv, np.int64), np.ascontiguousarray(values), out)
    return out


@njit(**_NB)
def _add_rows(dest, values, out):
    """``out[dest[r]] += values[r]`` for r in order (each sum in the order np.bincount adds)."""
    for r in range(dest.shape[0]):
        g = dest[r]
        for c in range(values.shape[1]):
            out[g, c] += values[r, c]


def prob_group_sums(inv, n_groups, prob, mask):
    """Per group and image, the sum of the finite values of ``prob`` (images, H, W) over the cells
    of ``mask`` (H, W; row-major order, ``inv``: their groups) and how many there are: the numbers
    of ``p = prob[:, mask].T.astype(np.float64); fin = np.isfinite(p); group_sums(inv, n,
    np.where(fin, p, 0.0)), group_sums(inv, n, fin.astype(np.float64))`` (the same additions in the
    same order, zeros included) without the gathered copies."""
    psum = np.zeros((n_groups, prob.shape[0]))
    pn = np.zeros((n_groups, prob.shape[0]))
    _prob_group_sums(np.asarray(inv, np.int64), np.ascontiguousarray(prob), np.ascontiguousarray(mask), psum, pn)
    return psum, pn


@njit(**_NB)
def _prob_group_sums(inv, prob, mask, psum, pn):
    ni, ny, nx = prob.shape
    r = 0
    for i in range(ny):
        for j in range(nx):
            if not mask[i, j]:
                continue
            g = inv[r]
            r += 1
            for k in range(ni):
                v = np.float64(prob[k, i, j])
                if np.isfinite(v):
                    psum[g, k] += v
                    pn[g, k] += 1.0
                else:
                    psum[g, k] += 0.0
                    pn[g, k] += 0.0


def level_counts(inv, n_groups, v, levels):
    """Per group, how many of its values exceed each of the ascending ``levels``: (n_groups,
    len(levels)) float64 (NaN exceeds none). numpy (a run takes these counts from
    :func:`mad_group_sums`; this is its twin in the tests)."""
    v = np.asarray(v, np.float64)
    levels = np.asarray(levels, np.float64)
    with np.errstate(invalid="ignore"):
        above = np.logical_and.accumulate(v[:, None] > levels[None, :], axis=1)
    out = np.zeros((n_groups, levels.shape[0]))
    for q in range(levels.shape[0]):
        out[:, q] = np.bincount(inv, above[:, q].astype(np.float64), minlength=n_groups)
    return out


def merge_grouped(ids_list, arrays_list):
    """Merge per-tile grouped tables: sum the rows with the same id (in the order of the tables).
    ``arrays_list`` is a list (one per table) of dicts name -> array with rows aligned to ids.
    Returns (sorted unique ids, dict name -> summed rows)."""
    if not ids_list:
        return np.zeros(0, np.int64), {}
    ids = np.concatenate(ids_list)
    uid, dest = np.unique(ids, return_inverse=True)
    dest = dest.astype(np.int64).ravel()
    out = {}
    for name in arrays_list[0]:
        first = np.asarray(arrays_list[0][name])
        acc = np.zeros((len(uid),) + first.shape[1:], first.dtype)
        flat = acc.reshape(len(uid), int(np.prod(first.shape[1:], dtype=np.int64)))
        seen = np.zeros(len(uid), np.bool_)
        k0 = 0
        for a in arrays_list:
            v = np.asarray(a[name])
            n = v.shape[0]
            if n:
                _merge_rows(dest[k0:k0 + n], np.ascontiguousarray(v.reshape(n, -1), flat.dtype), flat, seen)
            k0 += n
        out[name] = acc
    return uid, out


@njit(**_NB)
def _merge_rows(dest, values, out, seen):
    """First row of each destination copied, later ones added (the order np.add.reduceat sums)."""
    for r in range(dest.shape[0]):
        g = dest[r]
        if seen[g]:
            for c in range(values.shape[1]):
                out[g, c] += values[r, c]
        else:
            for c in range(values.shape[1]):
                out[g, c] = values[r, c]
            seen[g] = True
