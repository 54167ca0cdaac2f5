"""Raster I/O: DSM and image sources that pickle as their arguments and reopen on the worker."""
