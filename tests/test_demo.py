"""The README's main job: `offnadir demo` simulates, detects on a local cluster, scores, draws."""

from __future__ import annotations

import numpy as np
import rioxarray  # noqa: F401 - registers .rio
from PIL import Image

from offnadir.cli import main
from offnadir.store import open_dataset


def test_demo_writes_a_change_map_and_a_picture(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", str(out), "--size", "160", "--seed", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "elevated" in printed and "F1 gain over the ortho baseline" in printed
    # every changed building of the scene gets one line saying found, missed or not observable
    import json
    import re

    changed = [i for ids in json.loads((out / "scene" / "scene.json").read_text())["changes"].values() for i in ids]
    m = re.search(r"(\d+) found, (\d+) missed, (\d+) not observable", printed)
    assert m and sum(int(g) for g in m.groups()) >= len(changed) > 0
    ds = open_dataset(out / "result.zarr")  # the stored codes (xr.open_zarr masks 2, the CF fill, as NaN)
    change = ds["change"].sel(image="target").values
    assert set(np.unique(change)) <= {0, 1, 2} and (change == 1).sum() > 50
    assert ds.rio.crs is not None
    png = Image.open(out / "quicklook.png")
    assert png.size[0] > 1000 and png.size[1] > 300
    # the picture is not blank: the change overlay paints red pixels
    px = np.asarray(png.convert("RGB")).astype(int)
    assert ((px[..., 0] > 200) & (px[..., 1] < 80) & (px[..., 2] < 80)).sum() > 100
    # a second run refuses to overwrite, and says how
    assert main(["demo", str(out), "--size", "160", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
