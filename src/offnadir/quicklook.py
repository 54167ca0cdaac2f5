"""A PNG that shows a person what changed: base and target images in their own geometry, and the
co-registered base on the DSM grid with the change map over it."""

from __future__ import annotations

import warnings
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
                    truth=None, truth_unobservable=None, title: str | None = None) -> Path:
    """Write ``png`` from a result store (cube + change maps) and optionally the two image files
    and a truth raster on the DSM grid (its outline is drawn). ``truth_unobservable``: a boolean
    mask on the grid of the truth objects no map can decide (hidden in a view); their outline is
    drawn dashed in cyan instead of yellow, so a user does not read them as misses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio

    from offnadir.store import open_dataset

    ds = open_dataset(store)  # the stored codes (visible 2 = outside), not CF-masked floats
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
        hidden = np.zeros(t.shape, bool) if truth_unobservable is None else np.asarray(truth_unobservable, bool)
        if (t > 0).any() and not hidden.all():
            axes[-1].contour((t > 0) & ~hidden, levels=[0.5], colors=["yellow"], linewidths=0.8)
        label = "change (red), unobservable (grey), truth outline (yellow)"
        if hidden.any():
            axes[-1].contour(hidden, levels=[0.5], colors=["cyan"], linewidths=1.0, linestyles="dashed")
            label += ",\ntruth hidden from a view, not observable (dashed cyan)"
        axes[-1].set_title(label, fontsize=9)
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


# --------------------------------------------------------------------------- any result store

#: overlay colours, saturated hues far from the grey base (and from each other for the common
#: colour-vision deficiencies: blue / vermilion / yellow, after Okabe & Ito's palette)
GAIN, LOSS, CHANGED = (0.0, 0.45, 0.70), (0.84, 0.37, 0.0), (0.94, 0.89, 0.26)
#: unobservable cells: a dark violet (not black: shadows in the grey base are black) under light hatching
UNOBSERVED = (0.30, 0.18, 0.40)


def _grey(ds) -> np.ndarray:
    """The base on the DSM grid as grey 0..1 (band mean, 2-98 % stretch), else the DSM."""
    if "value" in ds:
        with warnings.catch_warnings():  # cells the base does not see are NaN in every band
            warnings.simplefilter("ignore", RuntimeWarning)
            g = np.nanmean(np.asarray(ds["value"].isel(image=0).values, dtype=np.float64), axis=0)
    elif "dsm" in ds:
        g = np.asarray(ds["dsm"].values, dtype=np.float64)
    else:
        return np.full((ds.sizes["y"], ds.sizes["x"]), 0.5)
    ok = np.isfinite(g)
    if ok.any():
        lo, hi = np.percentile(g[ok], [2, 98])
        g = np.clip((g - lo) / max(hi - lo, 1e-9), 0, 1)
    g[~ok] = 0.0
    return g


def _nice_length(span: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k) near a fifth of ``span``."""
    target = span / 5.0
    k = np.floor(np.log10(target))
    return float(max(m * 10 ** k for m in (1, 2, 5) if m * 10 ** k <= target * 1.5))


def _scale_bar(ax, extent, metres_per_unit: float) -> None:
    x0, x1, y0, y1 = extent
    length_m = _nice_length((x1 - x0) * metres_per_unit)
    length = length_m / metres_per_unit
    bx, by = x0 + 0.05 * (x1 - x0), y0 + 0.06 * (y1 - y0)
    ax.plot([bx, bx + length], [by, by], color="black", linewidth=5, solid_capstyle="butt")
    ax.plot([bx, bx + length], [by, by], color="white", linewidth=2.5, solid_capstyle="butt")
    label = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    ax.text(bx + length / 2, by + 0.025 * (y1 - y0), label, ha="center", va="bottom", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})


def store_overlay(grey, change, dh=None):
    """(h, w, 3) RGB: the grey base, changed cells coloured (gain / loss by the sign of ``dh`` where
    it is known and not zero, else "changed"), unobservable cells darkened; and the masks drawn."""
    rgb = np.repeat(grey[..., None], 3, axis=-1) * 0.85 + 0.075  # keep pure black/white for the overlay
    changed = change == 1
    masks = {}
    if dh is not None:
        # the sweep writes dh = 0 where the DSM height itself agrees (no height change measured):
        # such cells changed in appearance only
        masks["gain"], masks["loss"] = changed & (dh > 0), changed & (dh < 0)
        masks["changed"] = changed & ~(masks["gain"] | masks["loss"])
    else:
        masks["changed"] = changed
    for key, colour in (("gain", GAIN), ("loss", LOSS), ("changed", CHANGED)):
        if key in masks:  # mostly colour, a little of the image so its texture still shows
            rgb[masks[key]] = 0.75 * np.asarray(colour) + 0.25 * rgb[masks[key]]
    masks["unobservable"] = change == 2
    rgb[masks["unobservable"]] = 0.75 * np.asarray(UNOBSERVED) + 0.25 * rgb[masks["unobservable"]]
    return rgb, masks


def write_store_quicklook(store, png, *, images=None, title: str | None = None) -> Path:
    """A PNG of any complete result store: per target image, the base on the DSM grid in grey with
    the change map over it, a legend, a scale bar and the grid's coordinates. A store without a
    change map shows the base with the cells hidden in each image hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from offnadir.export import grid, open_store, target_images

    ds = open_store(store, "draw a quicklook of")
    transform, crs = grid(ds)
    h, w = ds.sizes["y"], ds.sizes["x"]
    extent = (transform.c, transform.c + w * transform.a, transform.f + h * transform.e, transform.f)
    mpu = crs.linear_units_factor[1] if crs.is_projected else 111_320.0 * np.cos(np.radians(np.mean(extent[2:])))
    grey = _grey(ds)
    names = target_images(ds, images) or [str(ds["image"].values[0])]
    has_change = "change" in ds
    dpi = float(np.clip(w / 5.0, 110, 200))  # about one screen pixel per cell up to ~1000 cells across
    fig, axes = plt.subplots(1, len(names), figsize=(5.6 * len(names), 6.6), dpi=dpi, squeeze=False)
    for ax, im in zip(axes[0], names):
        if has_change:
            change = np.asarray(ds["change"].sel(image=im).values)
            dh = np.asarray(ds["dh"].sel(image=im).values, dtype=np.float64) if "dh" in ds else None
        else:  # a cube only: what the image does not see
            change = np.where(np.asarray(ds["visible"].sel(image=im).values) == 1, 0, 2)
            dh = None
        rgb, masks = store_overlay(grey, change, dh)
        ax.imshow(rgb, extent=extent, interpolation="nearest")
        if masks["unobservable"].any():
            with plt.rc_context({"hatch.color": (0.8, 0.8, 0.8), "hatch.linewidth": 0.5}):
                ax.contourf(masks["unobservable"].astype(float), levels=[0.5, 1.5], colors="none", hatches=["////"],
                            extent=extent, origin="upper")
        n = change.size
        t = ds["time"].sel(image=im).values if "time" in ds.coords else np.datetime64("NaT")
        date = "" if np.isnat(t) else str(t)[:10]
        stats = "".join(f", {k} {100 * masks[k].sum() / n:.1f} %" for k in ("gain", "loss", "changed")
                        if k in masks and masks[k].any())
        hidden = "unobservable" if has_change else "not visible"
        share = 100 * masks["unobservable"].sum() / n
        ax.set_title(f"{im}{' ' + date if date else ''}{stats}\n{hidden} {share:.1f} %", fontsize=9)
        _scale_bar(ax, extent, mpu)
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", labelrotation=30)
        unit = crs.linear_units if crs.is_projected else "degrees"
        ax.set_xlabel(f"x ({unit}), {crs.to_string()}", fontsize=8)
        ax.set_ylabel(f"y ({unit})", fontsize=8)
        handles = [Patch(facecolor=c, edgecolor="black", label=k) for k, c in
                   (("gain (dh > 0)", GAIN), ("loss (dh < 0)", LOSS), ("changed, no height change", CHANGED))
                   if has_change and k.split()[0] in masks]
        handles.append(Patch(facecolor=UNOBSERVED, edgecolor=(0.8, 0.8, 0.8), hatch="////",
                             label="unobservable (hidden/outside)" if has_change else "not visible"))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8,
                  frameon=False)
    base = str(ds["image"].values[0]) if "image" in ds.dims else "base"
    what = f"change against {base}" if has_change else "a cube without change maps"
    fig.suptitle(title or f"{Path(store).name}: {what} (grey: base on the DSM grid)", fontsize=10)
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png)
    plt.close(fig)
    return png
