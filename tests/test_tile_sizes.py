"""Tile (chunk) sizes of the plan: the even cut of an axis just over a chunk, the rule that picks it,
and that the cube does not depend on it."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math

import dask
import numpy as np
import pytest
from synthetic import affine_rpc, box_scene, write_dsm, write_image

from offnadir.cube import dataset as cube_ds
from offnadir.cube import graph
from offnadir.cube.plan import axis_tiles, describe_tiles, even_tile, pass_length, tile_sizes
from offnadir.pipeline import plan_cube


def test_even_tile_keeps_the_tile_count_and_evens_the_sizes():
    for size, chunk in itertools.product((17, 100, 1012, 1025, 1059, 2049, 3000, 4097), (16, 64, 512, 1024)):
        t = even_tile(size, chunk)
        reg, even = axis_tiles(size, chunk), axis_tiles(size, t)
        assert len(even) == len(reg) and t <= chunk and sum(even) == size
        assert max(even) - min(even) < len(even)  # equal within the tile count (regular chunks: the last smaller)


def test_pass_length_is_the_longest_core_of_a_greedy_schedule():
    assert pass_length([1012], [1024, 35], 2) == 1012 * 1024
    assert pass_length([1012], [530, 529], 2) == 1012 * 530
    assert pass_length([1], [683, 683, 683], 2) == 2 * 683  # three equal tiles: one core takes two
    assert pass_length([1], [1024, 1024, 1], 2) == 1025
    assert pass_length([2], [5, 5], 1) == 20  # one core: the total


def test_kahramanmaras_grid_is_cut_into_two_equal_tiles():
    # 1012 x 1059 cells, chunk 1024: was 1012 x 1024 + 1012 x 35 (one core idle in every pass)
    assert tile_sizes((1012, 1059), 1024) == (1012, 530)
    assert describe_tiles((1012, 1059), 1024, (1012, 530)) == "tiles: 1012 x 530 (2, evened out), chunk 1024 is " \
                                                               "the largest"


@pytest.mark.parametrize("shape,chunk", [((2048, 2048), 1024), ((256, 256), 1024), ((1024, 3072), 1024),
                                         ((855, 865), 192), ((855, 865), 300)])
def test_multiples_and_single_tiles_stay_regular(shape, chunk):
    assert tile_sizes(shape, chunk) == (min(chunk, shape[0]), min(chunk, shape[1]))


def test_three_tiles_on_an_axis_stay_regular():
    # 2049 = 1024 + 1024 + 1: even (683 x 3) puts two thirds of the axis on one of two cores
    assert tile_sizes((2049, 100), 1024) == (1024, 100)


def test_the_rule_never_lengthens_a_pass_and_keeps_chunk_the_largest():
    rng = np.random.default_rng(0)
    evened = 0
    for _ in range(300):
        chunk = int(rng.choice([16, 64, 100, 256, 1024]))
        shape = tuple(int(v) for v in rng.integers(1, 5 * chunk, 2))
        cy, cx = tile_sizes(shape, chunk)
        assert cy <= chunk and cx <= chunk
        regular = [axis_tiles(s, min(chunk, s)) for s in shape]
        chosen = [axis_tiles(shape[0], cy), axis_tiles(shape[1], cx)]
        assert [len(a) for a in chosen] == [len(a) for a in regular]  # no more tiles than the regular cut
        n = len(regular[0]) * len(regular[1])
        longer = [k for k in range(1, n + 1) if pass_length(*chosen, k) > pass_length(*regular, k)]
        assert not longer, (shape, chunk, (cy, cx), longer)
        if (cy, cx) != (min(chunk, shape[0]), min(chunk, shape[1])):
            evened += 1
            assert any(pass_length(*chosen, k) < pass_length(*regular, k) for k in range(2, n + 1))
    assert evened > 20  # the rule does pick the even cut


def _compute(ds):
    with dask.config.set(scheduler="threads"):
        return ds.compute()


def test_grid_just_over_a_chunk_gives_the_same_cube(tmp_path, caplog):
    # 100 x 133 cells, chunk 96: regular tiles 96 + 4 rows, 96 + 37 columns; evened 50 x 67. A tall
    # building sits across both cuts, so its occlusion strip crosses tile borders either way.
    heights = box_scene(n=133, boxes=((40, 70, 55, 85, 30.0),))[:100]
    dsm = write_dsm(tmp_path / "dsm.tif", heights)
    imgs = [write_image(tmp_path / f"img{k}.tif", affine_rpc(theta, phi), 400, 400)
            for k, (theta, phi) in enumerate(((25.0, 100.0), (20.0, 300.0)))]
    with caplog.at_level(logging.INFO, logger="offnadir.cube.plan"):
        plan = plan_cube(dsm, imgs, chunk=96)
    assert plan.tile_shape == (50, 67) and plan.chunks() == ((50, 50), (67, 66))
    assert [(t.i0, t.i1, t.j0, t.j1) for t in plan.tiles()] == [(0, 50, 0, 67), (0, 50, 67, 133),
                                                                (50, 100, 0, 67), (50, 100, 67, 133)]
    assert "tiles: 50 x 67 (4, evened out), chunk 96 is the largest" in caplog.text
    regular = dataclasses.replace(plan, tile=(96, 96))
    assert regular.chunks() == ((96, 4), (96, 37)) and regular.grid_shape == (2, 2)
    whole = dataclasses.replace(plan, tile=(100, 133))
    cubes = [_compute(cube_ds.cube_dataset(p, graph.cube_arrays(p))) for p in (plan, regular, whole)]
    assert cubes[0].attrs["tile_shape"] == [50, 67] and cubes[1].attrs["tile_shape"] == [96, 96]
    vis = cubes[0]["visible"].values
    assert (vis == 0).sum() > 200 and (vis == 1).sum() > 10_000  # relief occlusion and real content
    for other in cubes[1:]:
        for name in ("row", "col", "visible", "dsm", "value"):
            np.testing.assert_array_equal(cubes[0][name].values, other[name].values, err_msg=name)
    assert math.ceil(100 / 50) * math.ceil(133 / 67) == len(plan.tiles())
