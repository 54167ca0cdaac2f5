"""Bad inputs and the clean error each must give, shared by tests/test_validation.py (which runs them
as tests) and docs/make_errors_table.py (which writes docs/errors.md from them).

Each case: ``argv(d)`` builds the command line from a folder ``d`` holding the scene of
:func:`make_scene`; the run must exit with ``exit`` (2: bad input), print exactly one
``offnadir: error:`` message (``lines`` lines long) holding every string of ``expect``, no traceback,
and leave no ``o.zarr`` (nor anything else new) in ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from rasterio.transform import from_origin
from synthetic import LAT0, LON0, affine_rpc, box_scene, write_dsm, write_image


@dataclass(frozen=True)
class Case:
    name: str
    what: str  # the input, in words, for the table
    argv: Callable[[Path], list[str]]
    expect: tuple[str, ...]
    exit: int = 2
    lines: int = 1


def make_scene(d: Path) -> Path:
    """A small scene: DSM, two 2-band images, a 1-band image, DSMs on geographic / non-square grids."""
    d.mkdir(parents=True, exist_ok=True)
    write_dsm(d / "dsm.tif", box_scene(n=64, boxes=((20, 40, 20, 40, 15.0),)))
    write_image(d / "a.tif", affine_rpc(10.0, 60.0), acquired="2021-06-01T10:00:00")
    write_image(d / "b.tif", affine_rpc(25.0, 250.0), acquired="2023-06-01T10:00:00")
    write_image(d / "pan.tif", affine_rpc(25.0, 250.0), bands=1, acquired="2023-06-01T10:00:00")
    h = box_scene(n=64, boxes=((20, 40, 20, 40, 15.0),)).astype(np.float32)
    deg = 1e-5  # about 0.81 m east-west by 1.11 m north-south at the scene's latitude
    _raster(d / "dsm_4326.tif", h, "EPSG:4326", from_origin(LON0 - 32 * deg, LAT0 + 32 * deg, deg, deg))
    write_dsm(d / "ok.tif", h)  # the DSM again, to derive the non-square one from
    with rasterio.open(d / "ok.tif") as src:
        crs, t = src.crs, src.transform
    _raster(d / "dsm_rect.tif", h, crs, from_origin(t.c, t.f, 0.5, 1.0))
    (d / "ok.tif").unlink()
    (d / "out").mkdir(exist_ok=True)
    return d


def _raster(path, h, crs, transform):
    with rasterio.open(path, "w", driver="GTiff", width=h.shape[1], height=h.shape[0], count=1, dtype="float32",
                       crs=crs, transform=transform) as dst:
        dst.write(h, 1)
        dst.update_tags(VERTICAL_DATUM="ellipsoid")


def _cube(d: Path, *extra: str) -> list[str]:
    return ["coregister", "--dsm", str(d / "dsm.tif"), "--image", str(d / "a.tif"), "-o", str(d / "o.zarr"),
            "--quiet", *extra]


def _detect(d: Path, *extra: str, dsm="dsm.tif", target="b.tif") -> list[str]:
    return ["detect", "--dsm", str(d / dsm), "--base", str(d / "a.tif"), "--target", str(d / target),
            "-o", str(d / "o.zarr"), "--quiet", *extra]


def _config(d: Path, body: str, name: str = "job.yaml", encoding: str = "utf-8") -> list[str]:
    text = f"dsm: {{path: dsm.tif}}\nimages: [a.tif, b.tif]\noutput: {{path: o.zarr}}\n{body}"
    (d / name).write_bytes(text.encode(encoding))
    return ["run", str(d / name), "--quiet"]


def _raw(d: Path, name: str, data: bytes) -> list[str]:
    (d / name).write_bytes(data)
    return ["run", str(d / name), "--quiet"]


ALIAS_BOMB = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 9)}]\n".encode() for k in range(8)) + \
    b"tiling: {chunk: *i}\n"

CASES = (
    Case("chunk_zero", "`--chunk 0`", lambda d: _cube(d, "--chunk", "0"), ("tiling.chunk", "0", ">= 16")),
    Case("chunk_negative", "`--chunk -5`", lambda d: _cube(d, "--chunk", "-5"), ("tiling.chunk", ">= 16")),
    Case("chunk_huge", "`tiling: {chunk: 1.0e+400}`", lambda d: _config(d, "tiling: {chunk: 1.0e+400}\n"),
         ("tiling.chunk", "must be int", "inf")),
    Case("workers_zero", "`--workers 0`", lambda d: _cube(d, "--workers", "0"), ("cluster.n_workers", ">= 1")),
    Case("workers_negative", "`--workers -1`", lambda d: _cube(d, "--workers", "-1"), ("cluster.n_workers", ">= 1")),
    Case("n_workers_negative", "`cluster: {n_workers: -2}`", lambda d: _config(d, "cluster: {n_workers: -2}\n"),
         ("job.yaml", "cluster.n_workers", "-2", ">= 1")),
    Case("lattice_step_zero", "`tiling: {lattice_step: 0}`", lambda d: _config(d, "tiling: {lattice_step: 0}\n"),
         ("job.yaml", "tiling.lattice_step", ">= 1")),
    Case("z_tol_negative", "`occlusion: {z_tol: -1}`", lambda d: _config(d, "occlusion: {z_tol: -1}\n"),
         ("occlusion.z_tol", ">= 0")),
    Case("z_tol_nan", "`occlusion: {z_tol: .nan}`", lambda d: _config(d, "occlusion: {z_tol: .nan}\n"),
         ("occlusion.z_tol", "finite", "nan")),
    Case("float_400_digits", "a 400-digit number in a float field (`change.spectral_sigma`)",
         lambda d: _config(d, "change: {spectral_sigma: 1" + "0" * 399 + "}\n"),
         ("change.spectral_sigma", "400 digits", "too large")),
    Case("criteria_list_item", "`change: {criteria: [[spectral]]}`",
         lambda d: _config(d, "change: {criteria: [[spectral]]}\n"), ("change.criteria[0]", "must be str")),
    Case("all_errors_at_once", "three bad fields in one config",
         lambda d: _config(d, "tiling: {chunk: 0, lattice_step: -1}\nocclusion: {z_tol: .inf}\n"),
         ("3 problems", "tiling.chunk", "tiling.lattice_step", "occlusion.z_tol"), lines=4),
    Case("scheduler_not_a_url", "`--scheduler notaurl`", lambda d: _cube(d, "--scheduler", "notaurl"),
         ("cluster.scheduler", "not a dask scheduler address", "tcp://")),
    Case("scheduler_http", "`--scheduler http://127.0.0.1:8787` (the dashboard)",
         lambda d: _cube(d, "--scheduler", "http://127.0.0.1:8787"), ("cluster.scheduler", "web address", "tcp://")),
    Case("scheduler_tls_no_certs", "`--scheduler tls://127.0.0.1:8786` without certificates",
         lambda d: _cube(d, "--scheduler", "tls://127.0.0.1:8786"), ("tls_ca_file", "--tls-ca-file", "deploy/README")),
    Case("tls_cert_missing", "`--tls-cert` naming a missing file",
         lambda d: _cube(d, "--scheduler", "tls://127.0.0.1:8786", "--tls-ca-file", str(d / "ca.pem"),
                         "--tls-cert", str(d / "ca.pem")), ("cluster.tls_ca_file", "not found"), lines=3),
    Case("dashboard_bad", "`--dashboard somewhere`", lambda d: _cube(d, "--dashboard", "somewhere"),
         ("cluster.dashboard", "HOST:PORT")),
    Case("table_csv_directory", "`detect --table-csv DIR` (a folder)",
         lambda d: _detect(d, "--table-csv", str(d / "out")), ("change.table_csv", "is a folder")),
    Case("table_csv_missing_folder", "`detect --table-csv missing/t.csv`",
         lambda d: _detect(d, "--table-csv", str(d / "missing" / "t.csv")), ("change.table_csv", "does not exist")),
    Case("one_band_target", "`detect` with a 1-band target and a 2-band base", lambda d: _detect(d, target="pan.tif"),
         ("pan.tif", "1 band", "2", "band by band")),
    Case("geographic_dsm", "`detect` on a DSM in EPSG:4326 (cells 0.81 m x 1.11 m)",
         lambda d: _detect(d, dsm="dsm_4326.tif"), ("dsm_4326.tif", "square cells", "gdalwarp")),
    Case("non_square_dsm", "`detect` on a projected DSM with 0.5 m x 1 m cells", lambda d: _detect(d, dsm="dsm_rect.tif"),
         ("dsm_rect.tif", "0.500 m (x) by 1.000 m (y)", "gdalwarp")),
    Case("latin1_config", "a Latin-1 config file",
         lambda d: _config(d, "# r\xe9sum\xe9\n", name="latin1.yaml", encoding="latin-1"),
         ("latin1.yaml", "line 4", "UTF-8")),
    Case("config_is_a_folder", "`offnadir run DIR`", lambda d: ["run", str(d / "out")], ("out", "is a folder")),
    Case("yaml_alias_bomb", "a YAML alias bomb (9 levels of 9 aliases)", lambda d: _raw(d, "bomb.yaml", ALIAS_BOMB),
         ("bomb.yaml", "line 2", "aliases")),
    Case("huge_value_not_echoed", "a 100,000-character string in a known field",
         lambda d: _config(d, "tiling: {chunk: " + "x" * 100000 + "}\n"), ("tiling.chunk", "100002 characters")),
)
