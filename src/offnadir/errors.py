"""Typed errors. Every message says what is wrong, where (file, field), and how to fix it.

The CLI turns any :class:`OffnadirError` into its message on stderr and exit code 2.
"""

from __future__ import annotations


class OffnadirError(Exception):
    """Base of every error offnadir raises on purpose (bad input, bad config, no convergence)."""

    exit_code = 2


class InputFileError(OffnadirError, FileNotFoundError):
    """A named input file does not exist or cannot be read."""


class NoCameraModelError(OffnadirError):
    """A file was read but holds no camera (RPC) model."""


class UnsupportedFormatError(OffnadirError):
    """A file looks like a camera model but in a format offnadir cannot read."""


class InvalidModelError(OffnadirError, ValueError):
    """A camera model was parsed but its numbers are unusable (NaN, zero scale, zero denominator)."""


class ConvergenceError(OffnadirError, ArithmeticError):
    """An iterative inverse (localisation) did not converge for some points."""

    def __init__(self, message: str, n_failed: int = 0, index=None):
        super().__init__(message)
        self.n_failed = n_failed
        self.index = index


class GCPError(OffnadirError, ValueError):
    """Ground control points are missing, too few, malformed or outside the image."""


class ConfigError(OffnadirError, ValueError):
    """A configuration file or command-line option is invalid."""


class DataError(OffnadirError, ValueError):
    """Raster input (DSM, image) is unusable: no CRS, all nodata, no overlap, ..."""


class OutputExistsError(OffnadirError, FileExistsError):
    """The output exists and --overwrite was not given."""


class ClusterError(OffnadirError, RuntimeError):
    """The dask cluster cannot run the work: no worker joined, or every worker was lost."""
