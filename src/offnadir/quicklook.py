"""A PNG that shows a person what changed: base and target images in their own geometry, and the
co-registered base on the DSM grid with the change map over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _rgb(bands: np.ndarray, names) -> np.ndarray:
    """(bands, h, w) -> (h, w, 3) in 0..1 with a 2-98 % stretch; RGB from band names when known."""
    names = [str(n or "").upper() for n in names]
    if all(k in names for k in ("R", "G", "B")):
        idx = [names.index("R"), names.index("G"), names.index("B")]
    elif all(k in names for k in ("RED", "GREEN", "BLUE")):
        idx = [names.index("RED"), names.index("GREEN"), names.index("BLUE")]
    elif bands.shape[0] >= 3:
        idx = [0, 1, 2]
    else:
        idx = [0, 0, 0]
    out = np.stack([bands[i].astype(np.float64) for i in idx], axis=-1)
    ok = np.isfinite(out).all(axis=-1)
    if ok.any():
        lo, hi = np.percentile(out[ok], [2, 98])
        out = np.clip((out - lo) / max(hi - lo, 1e-9), 0, 1)
    out[~ok] = 0.0
    return out


def write_quicklook(store, png, *, base_image=None, target_image=None, target_index: int = 1,
                    truth=None, title: str | None = None) -> Path:
    """Write ``png`` from a result store (cube + change maps) and optionally the two image files
    and a truth raster on the DSM grid (its outline is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    import xarray as xr

    ds = xr.open_zarr(store)
    band_names = [None] * ds.sizes["band"]
    panels = []
    for path, label in ((base_image, "base image (its own geometry)"), (target_image, "target image")):
        if path is not None:
            with rasterio.open(path) as src:
                panels.append((_rgb(src.read(), src.descriptions), label))
    base_on_grid = _rgb(ds["value"].isel(image=0).values, band_names if ds.sizes["band"] < 3 else
                        _names_from(base_image, ds.sizes["band"]))
    target_on_grid = _rgb(ds["value"].isel(image=target_index).values, _names_from(base_image, ds.sizes["band"]))
    change = ds["change"].isel(image=target_index).values
    overlay = base_on_grid.copy()
    overlay[change == 2] = overlay[change == 2] * 0.35 + 0.65 * np.array([0.55, 0.55, 0.6])
    overlay[change == 1] = overlay[change == 1] * 0.3 + 0.7 * np.array([1.0, 0.1, 0.05])
    panels.append((target_on_grid, "target co-registered on the DSM grid"))
    panels.append((overlay, "change (red) / unobservable (grey) on the base"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.6), dpi=110)
    axes = np.atleast_1d(axes)
    for ax, (img, label) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    if truth is not None:
        with rasterio.open(truth) as src:
            t = src.read(1)
        axes[-1].contour(t > 0, levels=[0.5], colors=["yellow"], linewidths=0.8)
        axes[-1].set_title("change (red), unobservable (grey), truth outline (yellow)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png)
    plt.close(fig)
    return png


def _names_from(image_path, n):
    if image_path is None:
        return [None] * n
    import rasterio

    with rasterio.open(image_path) as src:
        return list(src.descriptions)[:n]
