"""offnadir: change detection between off-nadir VHR satellite images.

Public API (imported lazily so ``import offnadir`` stays cheap):

* :func:`read_camera`, :class:`Camera`, :class:`RPC` — the RFM camera core;
* :func:`fit_bias`, :func:`read_gcps`, :func:`leave_one_out` — affine bias compensation from GCPs;
* :func:`coregister` — the co-registered cube (lazy ``xarray.Dataset``);
* :func:`run` — a whole job (cube, sweep, change) from a config, optionally on an existing
  ``distributed.Client``;
* :func:`simulate` — a synthetic off-nadir scene that knows its truth;
* :func:`detect`, :func:`evaluate` — change detection on a cube, and its accuracy against a truth;
* errors in :mod:`offnadir.errors`.
"""

from __future__ import annotations

import importlib

from offnadir._version import __version__
from offnadir.errors import (
    ConfigError,
    ConvergenceError,
    DataError,
    GCPError,
    InputFileError,
    InvalidModelError,
    NoCameraModelError,
    OffnadirError,
    OutputExistsError,
    UnsupportedFormatError,
)

_LAZY = {
    "Camera": "offnadir.camera.camera",
    "RPC": "offnadir.camera.rpc",
    "read_camera": "offnadir.camera.readers",
    "fit_bias": "offnadir.camera.bias",
    "read_gcps": "offnadir.camera.bias",
    "leave_one_out": "offnadir.camera.bias",
    "coregister": "offnadir.pipeline",
    "run": "offnadir.pipeline",
    "simulate": "offnadir.simulate",
    "detect": "offnadir.change",
    "evaluate": "offnadir.change.evaluate",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'offnadir' has no attribute {name!r}")


__all__ = [
    "__version__",
    *_LAZY,
    "OffnadirError",
    "InputFileError",
    "NoCameraModelError",
    "UnsupportedFormatError",
    "InvalidModelError",
    "ConvergenceError",
    "GCPError",
    "ConfigError",
    "DataError",
    "OutputExistsError",
]
