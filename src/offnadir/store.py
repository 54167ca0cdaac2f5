"""The Zarr v3 store: laid out once from a lazy template, then filled tile by tile.

Each tile task writes its own chunk-aligned region of every variable and then sets its cell of
``tile_done`` (one chunk per tile, so no two tasks touch the same chunk). A rerun with
``resume=True`` skips tiles already done. Metadata is consolidated when the run completes.
"""

from __future__ import annotations

import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from offnadir.errors import OutputExistsError

DONE = "tile_done"


@contextmanager
def _quiet_zarr():
    """zarr warns that consolidated metadata and some dtypes are not yet in the v3 spec; we know."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        yield


def prepare(path, *, overwrite: bool = False, resume: bool = False) -> bool:
    """Check the output path. Returns True when an existing store should be resumed."""
    p = Path(path)
    if p.exists():
        if resume and (p / DONE).exists():
            return True
        if not overwrite:
            raise OutputExistsError(
                f"{p}: the output already exists. Pass --overwrite (config: output.overwrite: true) to replace it, "
                "--resume to finish an interrupted run, or choose another output path."
            )
        remove(p)
    return False


def remove(path) -> None:
    p = Path(path)
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def compressors():
    """Codecs of every cube array: Blosc LZ4 (level 1) with byte shuffle. On the 4096² cube of
    ``benchmarks/bench_cube.py`` writing a tile took 0.15 s of CPU with it against 0.28 s with
    zarr's default (Zstd), and the store is about a quarter smaller (shuffled float32 fields
    compress better)."""
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="lz4", clevel=1, shuffle="shuffle"),)


def create(path, template, grid_shape, encoding_fill: dict) -> None:
    """Write the layout (metadata, coordinates, empty arrays) of ``template`` (a lazy Dataset)."""
    import zarr

    enc = {}
    for name, var in template.data_vars.items():
        e = {"chunks": tuple(c[0] for c in var.chunks), "compressors": compressors()}
        if name in encoding_fill:
            e["fill_value"] = encoding_fill[name]
        enc[name] = e
    with _quiet_zarr():
        template.to_zarr(str(path), mode="w", compute=False, zarr_format=3, consolidated=False, encoding=enc)
        g = zarr.open_group(str(path), mode="r+")
        g.create_array(DONE, shape=tuple(grid_shape), chunks=(1, 1), dtype="uint8", fill_value=0,
                       dimension_names=("tile_y", "tile_x"),
                       attributes={"long_name": "1 where the tile has been written"})


def write_tile(path, plan, tile) -> tuple[int, int]:
    """Compute one tile and write it into its region; mark it done. Runs on a worker."""
    import zarr

    from offnadir.cube.tile import compute_tile

    res = compute_tile(plan, tile)
    region = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r+")
        for name, arr in res.items():
            g[name][(Ellipsis,) + region] = arr
        g[DONE][tile.ti, tile.tj] = 1
    return tile.ti, tile.tj


def done_tiles(path) -> set[tuple[int, int]]:
    import zarr

    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r")
        done = np.asarray(g[DONE][...])
    return {(int(a), int(b)) for a, b in zip(*np.nonzero(done))}


def finalize(path, attrs: dict | None = None) -> None:
    """Add run attributes and consolidate metadata (so ``xr.open_zarr`` reads it in one go)."""
    import zarr

    with _quiet_zarr():
        if attrs:
            g = zarr.open_group(str(path), mode="r+")
            g.attrs.update(attrs)
        zarr.consolidate_metadata(str(path))
