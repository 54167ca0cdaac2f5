"""Inputs and outputs named by URL: images read over HTTP range requests, stores on object storage.

* Images: ``http(s)://`` (and ``s3://``, ``gs://``... through GDAL's ``/vsis3/``, ``/vsigs/``) are
  opened by GDAL's virtual file systems, which read only the byte ranges a window needs (a COG's
  header, then its tiles). :func:`gdal_path` gives the name GDAL opens.
* Small sidecar files (an RPC text next to the image) are fetched whole into a temporary folder
  (:func:`fetch_sidecar`), keeping their file name, which some readers sniff.
* Stores: any fsspec URL; see :mod:`offnadir.store`.

A Windows drive letter (``C:\\x``) is not a URL: a scheme has two letters or more.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from pathlib import Path

from offnadir.errors import InputFileError

log = logging.getLogger("offnadir.io.remote")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
#: URL scheme -> GDAL virtual file system prefix
_VSI = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/", "az": "/vsiaz/"}


def is_url(path) -> bool:
    return isinstance(path, str) and bool(_URL.match(path))


def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def gdal_path(path) -> str:
    """The name GDAL/rasterio opens: local paths as they are, URLs through a ``/vsi`` prefix.

    HTTP URLs use GDAL's ``/vsicurl?url=...`` form (the URL percent-encoded), which holds no ``//``
    and so survives being passed through ``pathlib``."""
    if not is_url(path):
        return str(path)
    s = scheme(path)
    if s in ("http", "https"):
        return "/vsicurl?url=" + urllib.parse.quote(path, safe="")
    if s in _VSI:
        return _VSI[s] + path.split("://", 1)[1]
    raise InputFileError(f"{path}: offnadir reads images over http(s), s3, gs and az URLs; {s}:// is not one of "
                         "them. Copy the file locally or serve it over HTTP.")


def url_name(url: str) -> str:
    """The file name at the end of a URL (without query): ``http://h/a/b.tif?x=1`` -> ``b.tif``."""
    return Path(urllib.parse.urlparse(url).path).name


def url_stem(url: str) -> str:
    return Path(url_name(url)).stem


def fetch_sidecar(url: str, folder) -> Path:
    """Download a small file (a camera model) into ``folder``, under its own name."""
    import fsspec

    dest = Path(folder) / (url_name(url) or "model")
    try:
        with fsspec.open(url, "rb") as f:
            dest.write_bytes(f.read())
    except FileNotFoundError:
        raise InputFileError(f"{url}: not found on the server (the camera model URL). Check the URL.") from None
    except Exception as e:  # noqa: BLE001 - network/auth failures of any filesystem mean the same to the user
        raise InputFileError(f"{url}: cannot be downloaded ({type(e).__name__}: {e}). Check the URL and that the "
                             "server is reachable.") from None
    log.info("camera model %s fetched (%d bytes)", url, dest.stat().st_size)
    return dest
