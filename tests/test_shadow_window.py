"""missing_shadow.shadow_window: the one reading of the sure-shadow window that the missing-shadow and
crown-shadow sums share in a sums task. Its sure-shadow cells are training_classes' shadow class
(filtered over the whole array, an independent path) on the tile's core; the two rules' sums with
the window handed over in ``keep`` equal their sums each reading on its own, and the window's
arrays are read once per task."""

from __future__ import annotations

import math

import numpy as np
from test_crown_shadow import AZ, CELL, EL, _arrays, _scene

from offnadir.change import crown_shadow as CS
from offnadir.change import missing_shadow as MS
from offnadir.change import shadow_observed as SO


class _CountingIO:
    def __init__(self, io):
        self.io, self.reads = io, {}

    def read(self, name, key):
        self.reads[name] = self.reads.get(name, 0) + 1
        return self.io.read(name, key)

    def __getattr__(self, name):
        return getattr(self.io, name)


def _setup():
    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO

    h, lab, _, base, target = _scene()
    arrays = _arrays(h, lab, base, target)
    n = h.shape[0]
    rng = np.random.default_rng(3)
    arrays["visible"][1][rng.random((n, n)) < 0.002] = 0  # occluded cells break the target's sure shadows
    arrays["value"][0, 0][rng.random((n, n)) < 0.002] = np.nan  # no value: left out of the base's cells
    codes = arrays["illumination"][0]
    clfs = tuple(SO.calibrate(np.asarray(x, np.float64), codes, np.ones(h.shape, bool)) for x in (base, target))
    sun = ((math.radians(AZ), math.radians(EL)),) * 2
    ctx = Context(shape=(n, n), n_images=2, n_bands=1, cell=CELL, opts=ChangeOptions(), targets=(1,),
                  h_range=(100.0, 113.0), sun=sun, shadow_classes=clfs)
    return arrays, ctx, MemoryIO(arrays)


def _tiles(n, step):
    from offnadir.cube.plan import Tile

    return [Tile(a // step, b // step, a, min(a + step, n), b, min(b + step, n))
            for a in range(0, n, step) for b in range(0, n, step)]


def test_sure_cells_are_the_training_shadow_class_on_the_core():
    arrays, ctx, io = _setup()
    n = ctx.shape[0]
    total = [0, 0]
    for tile in _tiles(n, 64):
        sw = MS.shadow_window(io, ctx, tile)
        w = sw.window
        for k in range(2):
            shadow, _ = SO.training_classes(arrays["illumination"][k], arrays["visible"][k] == 1)
            x = arrays["value"][k].astype(np.float64).mean(axis=0)
            want = np.zeros((n, n), bool)
            want[tile.i0:tile.i1, tile.j0:tile.j1] = True
            want &= shadow & np.isfinite(x)
            ii, jj = np.nonzero(want)
            got_i, got_j, got_x = sw.sure[k]
            assert np.array_equal(got_i + w.i0, ii) and np.array_equal(got_j + w.j0, jj)
            assert np.array_equal(got_x, x[ii, jj])
            total[k] += len(ii)
        assert np.array_equal(sw.h, arrays["dsm"][w.yx].astype(np.float64))
        assert np.array_equal(sw.labels, np.where(arrays["elevated"][w.yx] == 1, arrays["patch"][w.yx], 0))
    assert min(total) > 100 and total[0] != total[1]  # shadows found; the occlusions and NaNs count


def test_both_rules_share_one_reading_and_sum_as_each_alone():
    _, ctx, io = _setup()
    assert CS.wanted(ctx)
    for tile in _tiles(ctx.shape[0], 96):
        alone = MS.tile_sums(io, ctx, tile), CS.tile_sums(io, ctx, tile)
        cio, keep = _CountingIO(io), {}
        shared = MS.tile_sums(cio, ctx, tile, keep=keep), CS.tile_sums(cio, ctx, tile, keep=keep)
        assert "shadow_window" in keep
        mio = _CountingIO(io)
        MS.tile_sums(mio, ctx, tile)
        # the crown rule reads nothing more; the missing-shadow sums read each array once, and the codes,
        # visibility and values once more over the roofs that receive a sure shadow (roof_references)
        assert cio.reads == mio.reads, (cio.reads, mio.reads)
        for name in ("dsm", "illumination", "visible", "elevated", "patch", "value"):
            assert cio.reads.get(name) in ((1,) if name in ("dsm", "elevated", "patch") else (1, 2)), (name, cio.reads)
        for a, s in zip(alone, shared):
            assert np.array_equal(a["ids"], s["ids"])
            assert a["rows"].keys() == s["rows"].keys()
            for key in a["rows"]:
                assert np.array_equal(a["rows"][key], s["rows"][key])
    assert len(alone[0]["ids"]) and len(alone[1]["ids"])
