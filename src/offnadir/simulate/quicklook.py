"""One PNG to eyeball a simulated scene: both images (true colour) and the truth layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _rgb(img: np.ndarray) -> np.ndarray:
    rgb = (img[[2, 1, 0]] if img.shape[0] >= 3 else img[[0, 0, 0]]).astype(np.float64)
    lo, hi = np.percentile(rgb, 1), np.percentile(rgb, 99.5)
    return np.clip((rgb - lo) / max(hi - lo, 1e-9), 0, 1).transpose(1, 2, 0)


def quicklook(scene, path) -> Path:
    """Write a 2 × 3 panel PNG of ``scene`` (a :class:`~offnadir.simulate.SimulatedScene`)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    m = scene.meta
    fig, ax = plt.subplots(2, 3, figsize=(18, 12))
    for k, name in enumerate(("base", "target")):
        v = m["views"][name]
        ax[0, k].imshow(_rgb(getattr(scene, f"{name}_image")), interpolation="nearest")
        ax[0, k].set_title(f"{name}: {v['acquired'][:10]}, off-nadir {v['off_nadir_deg_at_centre']:.1f}° "
                           f"az {v['azimuth_deg_at_centre']:.0f}°, sun el {v['sun_elevation_deg']:.0f}°")
    ax[0, 2].imshow(scene.dsm - scene.terrain, cmap="magma", interpolation="nearest")
    ax[0, 2].set_title("epoch-1 DSM − terrain (m)")
    ax[1, 0].imshow(scene.dsm_epoch2 - scene.dsm, cmap="RdBu_r", vmin=-15, vmax=15, interpolation="nearest")
    ax[1, 0].contour(scene.change, levels=[0.5], colors="k", linewidths=0.6)
    ax[1, 0].set_title("epoch-2 − epoch-1 DSM (m), truth_change outlined")
    occ = scene.occluded
    col = np.zeros(occ.shape + (3,))
    col[..., 0] = (occ & 1) > 0
    col[..., 2] = (occ & 2) > 0
    col[..., 1] = 0.35 * scene.elevated
    ax[1, 1].imshow(col, interpolation="nearest")
    ax[1, 1].set_title("occluded: red base, blue target; green elevated")
    ax[1, 2].imshow(scene.shadow, cmap="gray_r", interpolation="nearest")
    ax[1, 2].set_title("no direct sun (1 epoch 1, 2 epoch 2, 3 both)")
    for a in ax.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle(f"offnadir.simulate seed {m['seed']}, {m['size']}² cells of {m['cell']} m")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
